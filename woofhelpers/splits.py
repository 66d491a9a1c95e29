"""File-level splits, saved as manifests.

A split is three lists of files: ``train``, ``validation`` and ``test``. Each is
fixed by file name and seed, saved as a CSV manifest under ``<root>/splits/``, and
identified by a fingerprint (a hash of the manifest), so two runs can prove they
used the same images. Nothing here shuffles a ``tf.data`` pipeline and then takes
or skips batches from it: that is how the original exercise's test set leaked into
its validation set.

Three splits are built in:

- :func:`official`: Imagewoof's own ``train/`` for training, its ``val/`` divided by
  file into validation and test (trials 1-3).
- :func:`pooled`: ``train/`` and ``val/`` pooled and divided 80/20 at random with
  seed 123, as the original trial 4 did (trials 4-5).
- :func:`leakage_free`: the test set is every ``ILSVRC2012_val_*`` file, ImageNet
  validation images that an ImageNet-pretrained network never trained on.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from woofhelpers import data, labels

PARTS = ("train", "validation", "test")
SPLIT_NAMES = ("official", "pooled", "leakage_free")


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
        return np.array([labels.label_index(p.split("/")[-2]) for p in self._part(part)], dtype=np.int64)

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
                wnid = path.split("/")[-2]
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
        """Write the manifest to ``<root>/splits/<name>.csv`` (atomically) and return its path."""
        folder = self.root / "splits"
        folder.mkdir(exist_ok=True)
        target = folder / f"{self.name}.csv"
        data.write_text_atomically(target, self.manifest())
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


def _class_of(path: str) -> str:
    return path.split("/")[-2]


def _stratified(paths: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Divide ``paths`` into (rest, held out) with ``fraction`` of each class held out."""
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise ValueError(f"fraction {fraction} must be between 0 and 1")
    rest, held = train_test_split(paths, test_size=fraction, random_state=seed, stratify=[_class_of(p) for p in paths])
    return sorted(rest), sorted(held)


def official(root: str | Path, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Imagewoof's own split: ``train/`` trains; ``val/`` is divided by file,
    stratified by class, into validation and test (``test_fraction`` of it).

    The original exercise took its test set as ``n_batches // 5`` batches of ``val``
    (3 of 13, about 20%) from a pipeline that reshuffled, so its test images changed
    at every evaluation; here they are fixed files.
    """
    root = Path(root)
    validation, test = _stratified(_files(root, "val"), test_fraction, seed)
    return Split(
        "official", root, {"train": tuple(_files(root, "train")), "validation": tuple(validation), "test": tuple(test)}
    )


def pooled(root: str | Path, validation_fraction: float = 0.2, seed: int = 123, test_fraction: float = 0.2) -> Split:
    """The original trial 4 split: ``train/`` and ``val/`` pooled, shuffled with
    ``seed`` (123), the last ``validation_fraction`` held out, as Keras'
    ``image_dataset_from_directory(validation_split=0.2, seed=123)`` does. The test
    set is the first ``test_fraction`` of that held-out part (the original took
    ``n_batches // 5`` batches of it), fixed by file here.

    On Imagewoof v1 this gives 10,364 training and 2,590 held-out images, as the
    original reported. Most of the held-out images are ImageNet training images.
    """
    root = Path(root)
    pool = np.array(_files(root, "train") + _files(root, "val"))
    np.random.RandomState(seed).shuffle(pool)
    n_held = int(validation_fraction * len(pool))
    held = list(pool[len(pool) - n_held :])
    n_test = int(test_fraction * len(held))
    return Split(
        "pooled",
        root,
        {"train": tuple(pool[: len(pool) - n_held]), "validation": tuple(held[n_test:]), "test": tuple(held[:n_test])},
    )


def leakage_free(root: str | Path, validation_fraction: float = 0.1, seed: int = 0) -> Split:
    """A split whose test set is every ImageNet validation image (``ILSVRC2012_val_*``).

    An ImageNet-pretrained ResNet50 was trained on every other Imagewoof file, so
    only these give an honest test of it. Training and validation are the
    remaining files, ``validation_fraction`` of each class held out for validation.
    """
    root = Path(root)
    every = _files(root, "train") + _files(root, "val")
    test = sorted(p for p in every if data.is_imagenet_val(p))
    if not test:
        raise ValueError(f"{root} holds no ILSVRC2012_val_* files, so it has no leakage-free test set")
    train, validation = _stratified([p for p in every if not data.is_imagenet_val(p)], validation_fraction, seed)
    return Split("leakage_free", root, {"train": tuple(train), "validation": tuple(validation), "test": tuple(test)})


def make(name: str, root: str | Path, **options: Any) -> Split:
    """Build the split called ``name`` (one of :data:`SPLIT_NAMES`) and save its manifest."""
    builders = {"official": official, "pooled": pooled, "leakage_free": leakage_free}
    if name not in builders:
        raise ValueError(f"unknown split {name!r}; choose one of {SPLIT_NAMES}")
    split = builders[name](root, **options)
    split.save()
    return split


def leakage_free_test(split: Split) -> tuple[str, ...]:
    """The ImageNet validation files that ``split`` neither trains nor validates on.

    For any split, these are images that neither the pretrained base nor this
    split's training has seen: an honest test set to report beside the split's own.
    """
    used = set(split.parts["train"]) | set(split.parts["validation"])
    every = _files(split.root, "train") + _files(split.root, "val")
    return tuple(p for p in every if data.is_imagenet_val(p) and p not in used and p not in split.excluded)
