"""A ``tf.data`` input pipeline built from a split's manifest.

Files are read and decoded in parallel, resized, optionally augmented, batched and
prefetched. Decoding is by content, not by name: grayscale and CMYK JPEGs come out
as RGB, and a PNG saved with a ``.JPEG`` name decodes as the PNG it is. Before
training, :func:`scan` decodes every file once with the very same function and
reports each one that fails (truncated, zero-byte, not an image) by path; those
are excluded and counted, so an epoch never stops on a bad file.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from woofhelpers.splits import Split

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at import time


def decode(contents):
    """Decode image bytes (JPEG of any colour model, PNG, GIF, BMP) to ``uint8`` RGB.

    ``contents`` is a scalar string tensor; the result has shape ``(height, width, 3)``.
    """
    import tensorflow as tf

    return tf.io.decode_image(contents, channels=3, expand_animations=False)


def load_image(path, image_size_px: int):
    """Read, decode and resize one file to ``float32`` of shape (size, size, 3), values 0-255.

    Resizing stretches to a square, bilinearly, as ``keras.utils.image_dataset_from_directory``
    does, so trials see the same pixels as the original exercise.
    """
    import tensorflow as tf

    image = decode(tf.io.read_file(path))
    return tf.image.resize(image, (image_size_px, image_size_px), method="bilinear")


@dataclass(frozen=True)
class ScanReport:
    """What :func:`scan` found: how many files it decoded and which ones failed, with why."""

    checked: int
    unreadable: dict[str, str]  # relative path -> reason

    def __str__(self) -> str:
        lines = [f"scanned {self.checked} files: {self.checked - len(self.unreadable)} readable, {len(self.unreadable)} unreadable"]
        lines += [f"  excluded {path}: {why}" for path, why in sorted(self.unreadable.items())]
        return "\n".join(lines)


def _why_unreadable(path: Path) -> str:
    head = path.read_bytes()[:16]
    if not head:
        return "zero-byte file"
    known = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")
    if not head.startswith(known):
        return f"not an image (starts with {head[:8]!r})"
    return "corrupt or truncated image data"


def scan(split: Split, *, verbose: bool = True) -> tuple[Split, ScanReport]:
    """Decode every file of ``split`` once; return the split without the unreadable ones.

    Uses :func:`decode`, the function training uses, in a parallel ``tf.data``
    pipeline; a file whose decode fails is dropped by ``ignore_errors`` and its path
    is what is missing from the output. The report lists each excluded file with a
    reason, and is printed unless ``verbose=False``.
    """
    import tensorflow as tf

    every = [p for part in ("train", "validation", "test") for p in split.parts[part]]
    ds = tf.data.Dataset.from_tensor_slices([str(split.root / p) for p in every] or [""])
    ds = ds.map(lambda p: (p, tf.shape(decode(tf.io.read_file(p)))), num_parallel_calls=AUTOTUNE)
    ds = ds.ignore_errors()
    readable = {Path(p.decode()).relative_to(split.root).as_posix() for p, _ in ds.as_numpy_iterator()} if every else set()
    unreadable = {p: _why_unreadable(split.root / p) for p in every if p not in readable}
    report = ScanReport(len(every), unreadable)
    if verbose:
        print(report)
    return split.without(list(unreadable)), report


def augmentation():
    """The augmentation the original exercise defined (and never applied): a horizontal
    flip and a rotation of up to 0.2 of a full turn, as Keras layers."""
    import keras

    return keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.2)], name="augmentation")


def dataset(
    split: Split,
    part: str,
    *,
    image_size_px: int,
    batch_size: int,
    shuffle: bool | None = None,
    augment: bool = False,
    seed: int = 0,
    cache: bool | str = False,
):
    """A batched ``tf.data.Dataset`` of ``(images, labels)`` for one part of ``split``.

    ``images`` is float32 of shape (batch, size, size, 3) with values 0-255 (apply
    the model's preprocessing in the model); ``labels`` is int64 of shape (batch,).
    ``shuffle`` defaults to ``True`` for ``train`` only; the order is fixed by ``seed``
    and changes each epoch. ``cache`` keeps resized images in memory (``True``) or in
    a file (a path). Scan the split first (:func:`scan`): an unreadable file here
    stops the epoch, by design, rather than being skipped silently.
    """
    import tensorflow as tf

    if image_size_px < 32:
        raise ValueError(f"image_size_px={image_size_px}: ResNet50 needs at least 32")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    paths = [str(p) for p in split.paths(part)]
    if not paths:
        raise ValueError(f"part {part!r} of split {split.name!r} is empty")
    shuffle = part == "train" if shuffle is None else shuffle
    ds = tf.data.Dataset.from_tensor_slices((paths, split.labels(part)))
    if shuffle and not cache:
        # Shuffle file names, not decoded images: the buffer stays small.
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda p, y: (load_image(p, image_size_px), y), num_parallel_calls=AUTOTUNE)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
        if shuffle:
            # After the cache, or every epoch would replay the first epoch's order.
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        layers = augmentation()
        ds = ds.map(lambda x, y: (layers(x, training=True), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
