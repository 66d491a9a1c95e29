"""File-level splits, saved as manifests.

A split is three lists of files: ``train``, ``validation`` and ``test``. Each is
fixed by file name and seed, saved as a CSV manifest under ``<root>/splits/``, and
identified by a fingerprint (a hash of the manifest), so two runs can prove they
used the same images. Nothing here shuffles a ``tf.data`` pipeline and then takes
or skips batches from it: that is how the original exercise's test set leaked into
its validation set.

Four splits are built in:

- :func:`official`: Imagewoof's own ``train/`` for training, its ``val/`` divided by
  file into validation and test (trials 1-3).
- :func:`pooled`: ``train/`` and ``val/`` pooled and divided 80/20 at random with
  seed 123, file for file as Keras divided the original trial 4's pooled folder
  (trials 4-5).
- :func:`pooled_leakage_free`: a documented variant of ``pooled``, not something the
  original did: every ``ILSVRC2012_val_*`` file is held out as the test set first,
  the rest is pooled and divided as ``pooled`` divides (the ``*_honest`` trials).
- :func:`leakage_free`: the test set is every ``ILSVRC2012_val_*`` file, ImageNet
  validation images that an ImageNet-pretrained network never trained on.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from woofhelpers import catalog, data, labels
from woofhelpers.io import write_text_atomically

PARTS = ("train", "validation", "test")
SPLIT_NAMES = ("official", "pooled", "pooled_leakage_free", "leakage_free")


@dataclass(frozen=True)
class Split:
    """Which files are for training, validation and test.

    ``parts`` maps each of ``train``, ``validation``, ``test`` to a tuple of paths
    relative to ``root`` (POSIX style, e.g. ``"val/n02086240/ILSVRC2012_val_00000293.JPEG"``).
    The label of a file is the index of its class folder in ``labels.WNIDS``.
    ``excluded`` lists files left out because they could not be decoded.
    """

    name: str
    root: Path
    parts: dict[str, tuple[str, ...]]
    excluded: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if set(self.parts) != set(PARTS):
            raise ValueError(f"a split needs exactly the parts {PARTS}, got {sorted(self.parts)}")
        seen: dict[str, str] = {}
        for part in PARTS:
            for path in self.parts[part]:
                if path in seen:
                    raise ValueError(f"{path} is in both {seen[path]} and {part} of split {self.name!r}")
                seen[path] = part

    def paths(self, part: str) -> list[Path]:
        """Absolute paths of the files of ``part``."""
        return [self.root / p for p in self._part(part)]

    def labels(self, part: str) -> np.ndarray:
        """Labels (0-9) of the files of ``part``, in the same order as :meth:`paths`."""
        return np.array([catalog.label_of(p) for p in self._part(part)], dtype=np.int64)

    def sizes(self) -> dict[str, int]:
        """Number of files in each part."""
        return {part: len(self.parts[part]) for part in PARTS}

    def manifest(self) -> str:
        """The split as CSV text: ``part,path,label,wnid`` per file."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["part", "path", "label", "wnid"])
        for part in PARTS:
            for path in self.parts[part]:
                wnid = catalog.class_of(path)
                writer.writerow([part, path, labels.label_index(wnid), wnid])
        return out.getvalue()

    def fingerprint(self) -> str:
        """First 16 hex digits of the SHA-256 of :meth:`manifest`."""
        return hashlib.sha256(self.manifest().encode()).hexdigest()[:16]

    def without(self, paths: list[str] | tuple[str, ...]) -> Split:
        """A copy with ``paths`` removed from every part and recorded in ``excluded``."""
        drop = set(paths)
        return Split(
            self.name,
            self.root,
            {part: tuple(p for p in self.parts[part] if p not in drop) for part in PARTS},
            tuple(sorted(set(self.excluded) | drop)),
        )

    def save(self) -> Path:
        """Write the manifest to ``<root>/splits/<name>.csv`` (atomically) and return its path.
        A manifest already there with the same content is left as it is: nothing is written."""
        folder = self.root / "splits"
        target = folder / f"{self.name}.csv"
        text = self.manifest()
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if target.read_text() == text:
                return target
        folder.mkdir(exist_ok=True)
        write_text_atomically(target, text)
        return target

    def _part(self, part: str) -> tuple[str, ...]:
        if part not in PARTS:
            raise ValueError(f"unknown part {part!r}; choose one of {PARTS}")
        return self.parts[part]


def load_manifest(path: str | Path, root: str | Path | None = None) -> Split:
    """Read a manifest written by :meth:`Split.save` back into a :class:`Split`."""
    path = Path(path)
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["part"] not in parts:
                raise ValueError(f"{path}: unknown part {row['part']!r} in row {row}")
            parts[row["part"]].append(row["path"])
    return Split(path.stem, Path(root) if root else path.parent.parent, {k: tuple(v) for k, v in parts.items()})


def _files(root: Path, split: str) -> list[str]:
    """Relative paths of one split folder, sorted, through the layout check."""
    found = data.list_images(root)[split]
    return [p.relative_to(root).as_posix() for wnid in labels.WNIDS for p in found[wnid]]


def _stratified(paths: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Divide ``paths`` into (rest, held out) with ``fraction`` of each class held out."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise ValueError(f"fraction {fraction} must be between 0 and 1")
    rest, held = train_test_split(
        paths, test_size=fraction, random_state=seed, stratify=[catalog.class_of(p) for p in paths]
    )
    return sorted(rest), sorted(held)


def official(root: str | Path, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Imagewoof's own split: ``train/`` trains; ``val/`` is divided by file,
    stratified by class, into validation and test (``test_fraction`` of it).

    The original exercise took its test set as ``n_batches // 5`` batches of ``val``
    (3 of 13, about 20%) from a pipeline that reshuffled, so its test images changed
    at every evaluation; here they are fixed files. On Imagewoof v1 that is 400
    validation and 100 test files, all ImageNet validation images, so trials 1-3's own
    test is leakage-free: 100 images, 10 per class (the original's "test" was 96).
    """
    root = Path(root)
    validation, test = _stratified(_files(root, "val"), test_fraction, seed)
    return Split(
        "official", root, {"train": tuple(_files(root, "train")), "validation": tuple(validation), "test": tuple(test)}
    )


def pooled_folder_order(paths: list[str] | tuple[str, ...]) -> list[str]:
    """``paths`` (relative, ``<train or val>/<wnid>/<file name>``) in the order in which
    Keras' ``image_dataset_from_directory`` lists a folder that holds one sub-folder per
    wnid with all these files copied into it, before it shuffles them.

    Keras (``index_directory`` and ``iter_valid_files`` in ``keras/src/utils/dataset_utils.py``,
    the same in the Keras 2 of 2021) takes the class folders in sorted name order and,
    inside each, the files sorted by name, concatenated class by class. File names sort
    as Python strings, so a class's ``ILSVRC2012_val_*`` files come before its
    ``<wnid>_<n>.JPEG`` files, and ``n02086240_1357`` before ``n02086240_15154``.
    Raises ``ValueError`` when two files of one class share a name: one folder could
    not hold both.
    """
    seen: dict[tuple[str, str], str] = {}
    for path in paths:
        key = (catalog.class_of(path), path.split("/")[-1])
        if key in seen:
            raise ValueError(
                f"{seen[key]} and {path} have the same name in class {key[0]}, so a pooled folder"
                " would hold only one of them; rename one before pooling"
            )
        seen[key] = path
    return [seen[key] for key in sorted(seen)]


def _keras_division(pool: list[str], validation_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, validation) as ``image_dataset_from_directory(validation_split=...,
    seed=seed)`` divides a folder whose files Keras lists as ``pool``: the list shuffled
    with ``np.random.RandomState(seed)``, the last ``int(validation_fraction * n)``
    files held out."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction {validation_fraction} must be between 0 and 1")
    files = list(pool)
    np.random.RandomState(seed).shuffle(files)
    n_validation = int(validation_fraction * len(files))
    if n_validation == 0:
        raise ValueError(
            f"int({validation_fraction} * {len(files)} files) is 0: nothing to validate on;"
            " use more files or a larger validation_fraction"
        )
    return files[: len(files) - n_validation], files[len(files) - n_validation :]


def pooled(root: str | Path, validation_fraction: float = 0.2, seed: int = 123, test_fraction: float = 0.2) -> Split:
    """The original trial 4 split, file for file: ``train/`` and ``val/`` pooled and
    divided as Keras' ``image_dataset_from_directory(pooled_folder,
    validation_split=0.2, subset=..., seed=123)`` divided them.

    What the original did (``Trial4_ImageWolfClassifier.ipynb`` in
    github.com/GateraGael/Resnet50_TransferLearning_ImageWoof, commit 1b4ed52, cells 6-14):
    it loaded ``./Data/imagewoof_all/``, a folder prepared outside the notebook with one
    sub-folder per class, named by its wnid, holding that class's ``train/`` and
    ``val/`` files together: the notebook counts 12,954 ``*/*.JPEG`` files in it and
    prints ``class_names`` as the ten wnids in sorted order. (Its terrier names were a
    display table only, applied after loading, so their swap changes no folder, no
    order and no label.) Two calls with ``validation_split=0.2, seed=123`` and
    ``subset="training"`` / ``"validation"`` gave 10,364 and 2,590 files.

    Here the files stay where they are: :func:`pooled_folder_order` lists them as Keras
    lists that folder, and they are shuffled with ``np.random.RandomState(seed)`` and
    the last ``int(validation_fraction * n)`` held out, as Keras does
    (``tests/test_splits.py`` checks the result against Keras itself). ``train`` is
    Keras' training files in Keras' order.

    The original's "test" was ``validation.take(n_batches // 5)``: 16 of 81 batches of
    32 (512 images; trial 5, batch 10: 51 of 259 batches, 510 images) of a dataset that
    reshuffled at every pass. Here it is fixed by file: ``test`` is the first
    ``test_fraction`` of the held-out files in Keras' order, ``validation`` the rest. On
    Imagewoof v1 (12,954 files): 10,364 train, 2,072 validation, 518 test. Most of the
    held-out files are ImageNet training images; only about a fifth of the test part's
    are ImageNet validation files (see :func:`pooled_leakage_free`).
    """
    root = Path(root)
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction {test_fraction} must be between 0 and 1")
    train, held = _keras_division(
        pooled_folder_order(_files(root, "train") + _files(root, "val")), validation_fraction, seed
    )
    n_test = int(test_fraction * len(held))
    return Split(
        "pooled", root, {"train": tuple(train), "validation": tuple(held[n_test:]), "test": tuple(held[:n_test])}
    )


def pooled_leakage_free(root: str | Path, validation_fraction: float = 0.2, seed: int = 123) -> Split:
    """What trial 4's split would be with an honest test set: a documented variant
    beside :func:`pooled`, not something the original did.

    Every ImageNet validation file (``ILSVRC2012_val_*``: 500 on Imagewoof v1, 50 per
    class) is held out first, as the test set; neither the pretrained base nor the
    training sees one. The remaining files are pooled and divided exactly as
    :func:`pooled` divides (Keras' order, ``seed``, the last ``validation_fraction``
    held out), and all the held-out part validates. On v1: 9,964 train, 2,490
    validation, 500 test.
    """
    root = Path(root)
    every = _files(root, "train") + _files(root, "val")
    test = sorted(p for p in every if catalog.is_imagenet_val(p))
    if not test:
        raise ValueError(f"{root} holds no ILSVRC2012_val_* files, so it has no leakage-free test set")
    train, validation = _keras_division(
        pooled_folder_order([p for p in every if not catalog.is_imagenet_val(p)]), validation_fraction, seed
    )
    return Split(
        "pooled_leakage_free", root, {"train": tuple(train), "validation": tuple(validation), "test": tuple(test)}
    )


def leakage_free(root: str | Path, validation_fraction: float = 0.1, seed: int = 0) -> Split:
    """A split whose test set is every ImageNet validation image (``ILSVRC2012_val_*``).

    An ImageNet-pretrained ResNet50 was trained on every other Imagewoof file, so
    only these give an honest test of it. Training and validation are the
    remaining files, ``validation_fraction`` of each class held out for validation.
    """
    root = Path(root)
    every = _files(root, "train") + _files(root, "val")
    test = sorted(p for p in every if catalog.is_imagenet_val(p))
    if not test:
        raise ValueError(f"{root} holds no ILSVRC2012_val_* files, so it has no leakage-free test set")
    train, validation = _stratified([p for p in every if not catalog.is_imagenet_val(p)], validation_fraction, seed)
    return Split("leakage_free", root, {"train": tuple(train), "validation": tuple(validation), "test": tuple(test)})


def make(name: str, root: str | Path, **options: Any) -> Split:
    """Build the split called ``name`` (one of :data:`SPLIT_NAMES`) and save its manifest.

    The manifest is a record of the split, not an input to it: it is written only when it
    is missing or out of date (:meth:`Split.save`), and a dataset folder that cannot be
    written (a read-only mount, a shared folder) is read all the same, without one; the
    split's fingerprint, which every trial result records, identifies it either way.
    Raises ``ValueError`` when a class has too few files to give every part at least one.
    """
    builders = {
        "official": official,
        "pooled": pooled,
        "pooled_leakage_free": pooled_leakage_free,
        "leakage_free": leakage_free,
    }
    if name not in builders:
        raise ValueError(f"unknown split {name!r}; choose one of {SPLIT_NAMES}")
    try:
        split = builders[name](root, **options)
    except ValueError as error:
        # scikit-learn's stratified division refuses parts with fewer files than classes.
        if not any("sklearn" in frame.filename for frame in traceback.extract_tb(error.__traceback__)):
            raise
        raise ValueError(
            f"split {name!r} cannot be built from {root}: it needs at least one file of each class in each"
            f" part, and there are too few ({error}); use a dataset with more images per class"
        ) from error
    try:
        split.save()
    except OSError as error:
        if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    return split


def leakage_free_test(split: Split) -> tuple[str, ...]:
    """The ImageNet validation files that ``split`` neither trains nor validates on.

    For any split, these are images that neither the pretrained base nor this
    split's training has seen: an honest test set to report beside the split's own.
    """
    used = set(split.parts["train"]) | set(split.parts["validation"])
    every = _files(split.root, "train") + _files(split.root, "val")
    return tuple(p for p in every if catalog.is_imagenet_val(p) and p not in used and p not in split.excluded)
