"""The catalog: what the course works on, as facts it can check against.

The published Imagewoof archives (:data:`VERSIONS`: URL, image counts per split and per
class, how many are ImageNet validation images), where an archive is fetched from
(:func:`archive_url`), how a file's path says its class (:func:`class_of`) and whether it
is one of ImageNet's validation images (:func:`is_imagenet_val`), and the smallest image
ResNet50 accepts (:data:`MIN_IMAGE_SIZE_PX`). Nothing here reads or writes a file.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from woofhelpers import labels

# ResNet50 halves its input five times: it needs images of at least 32 px.
MIN_IMAGE_SIZE_PX = 32

SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass(frozen=True)
class Version:
    """A published Imagewoof archive: where it lives and what it must contain.

    ``class_counts`` gives, per split and class (wnid), the number of images and how many
    of them are ImageNet validation images (``ILSVRC2012_val_*``), counted in the real
    archives; :func:`woofhelpers.synthetic.replica` builds archives of exactly that shape.
    """

    name: str
    url: str
    counts: dict[str, int]  # images per split, as published
    note: str
    class_counts: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict)


def _per_class(wnids: tuple[str, ...], totals: tuple[int, ...], imagenet_val: tuple[int, ...]) -> dict:
    return {w: (n, v) for w, n, v in zip(wnids, totals, imagenet_val, strict=True)}


# Counted in the real archives (file names by class folder). The wnids in label order:
# Shih-Tzu, Rhodesian ridgeback, beagle, English foxhound, Border terrier, Australian
# terrier, golden retriever, Old English sheepdog, Samoyed, dingo.
_V1_COUNTS = {
    "train": _per_class(labels.WNIDS, (1300, 1300, 1300, 754, 1300, 1300, 1300, 1300, 1300, 1300), (0,) * 10),
    "val": _per_class(labels.WNIDS, (50,) * 10, (50,) * 10),
}
_V2_COUNTS = {
    "train": _per_class(
        labels.WNIDS, (941, 942, 932, 580, 949, 943, 949, 928, 921, 940), (34, 35, 35, 37, 35, 32, 32, 37, 28, 33)
    ),
    "val": _per_class(
        labels.WNIDS, (409, 408, 418, 224, 401, 407, 401, 422, 429, 410), (16, 15, 15, 13, 15, 18, 18, 13, 22, 17)
    ),
}


VERSIONS: dict[str, Version] = {
    v.name: v
    for v in (
        Version(
            "imagewoof-320",
            "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof-320.tgz",
            {"train": 12_454, "val": 500},
            "v1, used by the original exercise; val/ is exactly ImageNet's 500 validation images of the ten breeds",
            _V1_COUNTS,
        ),
        Version(
            "imagewoof2-320",
            "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-320.tgz",
            {"train": 9_025, "val": 3_929},
            "v2, fast.ai's current split; ships noisy_imagewoof.csv; English foxhound is under-represented",
            _V2_COUNTS,
        ),
    )
}
# v1 by default: the course reproduces the original exercise, whose trials and
# reported numbers (12,454 / 500 images, 3 test batches of val) only exist on v1.
# Its val/ folder is also exactly the leakage-free ImageNet-validation images.
DEFAULT_VERSION = "imagewoof-320"


def version(name: str) -> Version:
    """The published archive called ``name`` (one of :data:`VERSIONS`)."""
    if name not in VERSIONS:
        raise ValueError(f"unknown Imagewoof version {name!r}; choose one of {sorted(VERSIONS)}")
    return VERSIONS[name]


def archive_url(name: str = DEFAULT_VERSION, mirror: str | None = None) -> str:
    """Where the archive ``name`` is fetched from: fast.ai's URL, or ``<mirror>/<name>.tgz``
    when a mirror is named (a base URL, or a local folder: then the path of the file in it).
    A profile names its mirror in ``archive_mirror`` (``WOOF_ARCHIVE_MIRROR``)."""
    spec = version(name)
    if not mirror:
        return spec.url
    file_name = f"{spec.name}.tgz"
    if mirror.startswith("file://"):
        mirror = mirror[len("file://") :]
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{file_name}"
    return str(Path(mirror).expanduser() / file_name)


def class_of(path: str | Path) -> str:
    """The class (wnid) of a dataset file: the name of the folder that holds it
    (``train/n02086240/x.JPEG`` -> ``n02086240``)."""
    return Path(path).parent.name


def label_of(path: str | Path) -> int:
    """The label (0-9, the order of ``wh.labels.WNIDS``) of a dataset file, from its folder."""
    return labels.label_index(class_of(path))


def is_imagenet_val(path: str | Path) -> bool:
    """Whether a file is one of ImageNet's validation images (``ILSVRC2012_val_*``).

    An ImageNet-pretrained network never trained on these; every other Imagewoof
    file (``<wnid>_<n>.JPEG``) is an ImageNet *training* image it has seen.
    """
    return Path(path).name.startswith("ILSVRC2012_val_")
