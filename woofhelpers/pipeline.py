"""A ``tf.data`` input pipeline built from a split's manifest.

Files are read and decoded in parallel, resized, optionally augmented, batched and
prefetched. Decoding is by content, not by name: grayscale and CMYK JPEGs come out
as RGB, and a PNG saved with a ``.JPEG`` name decodes as the PNG it is. A JPEG at
least twice (4x, 8x) the target size on its shortest side is decoded straight to a
half (quarter, eighth) of its size, which is what makes the pipeline fast (see
``benchmarks/README.md``). Each image becomes a square in one of three ways
(:data:`CROPS`): squashed whole, as the original exercise did (the default), or a
centred or random square cut out of it while the JPEG is decoded. Before
training, :func:`scan` decodes every file once with the very same function and
reports each one that fails (truncated, zero-byte, not an image) by path; those
are excluded and counted, so an epoch never stops on a bad file.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from woofhelpers import catalog
from woofhelpers.splits import Split

if TYPE_CHECKING:
    import keras
    import numpy as np
    import tensorflow as tf

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at import time


def decode(contents: tf.Tensor) -> tf.Tensor:
    """Decode image bytes (JPEG of any colour model, PNG, GIF, BMP) to ``uint8`` RGB.

    ``contents`` is a scalar string tensor; the result has shape ``(height, width, 3)``.
    """
    import tensorflow as tf

    return tf.io.decode_image(contents, channels=3, expand_animations=False)


def _decode_at_least(contents, image_size_px: int):
    """Decode to ``uint8`` RGB, as small as libjpeg can make it while both sides keep at
    least ``image_size_px`` pixels: a JPEG whose shortest side is at least 2, 4 or 8
    times the target is decoded at 1/2, 1/4 or 1/8 of its size (``decode_jpeg(ratio=...)``
    scales in the DCT, which both saves work and averages the pixels it drops). Other
    files, and JPEGs too small to scale, decode at full size with :func:`decode`."""
    import tensorflow as tf

    def jpeg():
        shape = tf.image.extract_jpeg_shape(contents)
        shortest = tf.minimum(shape[0], shape[1])
        # 0, 1, 2, 3 -> ratio 1, 2, 4, 8: the largest ratio that does not go below the target.
        index = tf.add_n([tf.cast(shortest >= r * image_size_px, tf.int32) for r in (2, 4, 8)])
        branches = [lambda r=r: tf.io.decode_jpeg(contents, channels=3, ratio=r) for r in (1, 2, 4, 8)]
        return tf.switch_case(index, branches)

    return tf.cond(tf.io.is_jpeg(contents), jpeg, lambda: decode(contents))


# How an image that is not square becomes a square: "squash" stretches the whole image
# (the original exercise, and Keras' image_dataset_from_directory); "centre" keeps the
# largest centred square; "random" keeps a random square of 60-100% of the shortest side.
CROPS = ("squash", "centre", "random")
RANDOM_CROP_SCALE = (0.6, 1.0)  # the side of a random crop, as a share of the shortest side


def _check_crop(crop: str) -> None:
    if crop not in CROPS:
        raise ValueError(f"crop={crop!r}: choose one of {', '.join(repr(c) for c in CROPS)}")


def _crop_window(size, crop: str, seed):
    """``(corner, side)`` of the square that ``crop`` keeps from an image of ``size``
    (height, width) pixels: ``corner`` is (top, left), int32 of shape (2,), and ``side`` an
    int32 scalar. A random window is drawn from the stateless ``seed`` (shape (2,)): the
    same seed, the same window. (Whole vectors, not scalars: every op costs time in the
    pipeline, once per image.)"""
    import tensorflow as tf

    shortest = tf.reduce_min(size)
    if crop == "centre":
        return (size - shortest) // 2, shortest
    low, high = RANDOM_CROP_SCALE
    draws = tf.random.stateless_uniform([3], seed=seed)  # in [0, 1): the scale, then the place
    side = tf.cast(tf.round(tf.cast(shortest, tf.float32) * (low + (high - low) * draws[0])), tf.int32)
    side = tf.clip_by_value(side, 1, shortest)
    room = size - side  # how far the window can move down and across
    return tf.minimum(tf.cast(draws[1:] * tf.cast(room + 1, tf.float32), tf.int32), room), side


def _scaled_window(size, corner, side, ratio):
    """The window ``(top, left, side, side)`` in the pixels of a JPEG decoded at 1/``ratio``
    scale (libjpeg makes it ``ceil(size / ratio)``): the same centre, the side rounded down."""
    import tensorflow as tf

    scaled_side = side // ratio
    # round(centre / ratio - scaled_side / 2), with centre = corner + side / 2, in whole numbers
    corner = (2 * corner + side - ratio * scaled_side + ratio) // (2 * ratio)
    corner = tf.clip_by_value(corner, 0, -(-size // ratio) - scaled_side)
    return tf.concat([corner, tf.fill([2], scaled_side)], 0)


def _decode_square(contents, image_size_px: int, crop: str, seed):
    """Decode only the square window that ``crop`` keeps (:func:`_crop_window`), as
    ``uint8`` RGB. A JPEG's window is cut while it is decoded
    (``decode_and_crop_jpeg``: rows below the window are never decoded, columns beside it
    skip the inverse DCT and colour conversion), at 1/2, 1/4 or 1/8 scale when the window
    is at least 2, 4 or 8 times the target, as :func:`_decode_at_least` does for the whole
    image. Other files (PNG, GIF, BMP) are decoded whole and then cut."""
    import tensorflow as tf

    def jpeg():
        size = tf.image.extract_jpeg_shape(contents)[:2]
        corner, side = _crop_window(size, crop, seed)
        # 0, 1, 2, 3 -> ratio 1, 2, 4, 8: the largest ratio that does not go below the target.
        index = tf.reduce_sum(tf.cast(side >= tf.constant([2, 4, 8]) * image_size_px, tf.int32))
        window = _scaled_window(size, corner, side, tf.bitwise.left_shift(1, index))
        branches = [
            lambda r=r: tf.image.decode_and_crop_jpeg(contents, window, channels=3, ratio=r) for r in (1, 2, 4, 8)
        ]
        return tf.switch_case(index, branches)

    def other():
        image = decode(contents)
        corner, side = _crop_window(tf.shape(image)[:2], crop, seed)
        return tf.slice(image, tf.concat([corner, [0]], 0), tf.stack([side, side, 3]))

    return tf.cond(tf.io.is_jpeg(contents), jpeg, other)


def _stateless_seed(seed):
    """A seed of shape (2,) for ``tf.random.stateless_*``: from an int, a pair, or a tensor
    of either; ``None`` draws one from TensorFlow's global generator."""
    import tensorflow as tf

    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
    return tf.stack([seed, tf.zeros_like(seed)]) if seed.shape.rank == 0 else seed


def _load_uint8(path, image_size_px: int, crop: str = "squash", seed=None):
    """Read, decode, crop (see :data:`CROPS`) and resize one file to ``uint8`` of shape
    (size, size, 3): what one element of the pipeline is, and what the file cache stores.
    ``seed`` (shape (2,)) fixes a random crop."""
    import tensorflow as tf

    contents = tf.io.read_file(path)
    if crop == "squash":  # the whole image, stretched: the original exercise's pipeline
        image = _decode_at_least(contents, image_size_px)
    else:
        image = _decode_square(contents, image_size_px, crop, _stateless_seed(seed) if crop == "random" else None)
    return resize(image, image_size_px)


def resize(image: tf.Tensor | np.ndarray, image_size_px: int) -> tf.Tensor:
    """Resize a decoded image (``uint8`` RGB of shape (height, width, 3), a tensor or a NumPy
    array) to a ``uint8`` square of shape (size, size, 3), as every image of the pipeline is:
    stretched bilinearly, the values rounded to whole numbers. ``wh.predict`` resizes a
    learner's photo with it, so the model sees a photo as it saw its training images."""
    import tensorflow as tf

    resized = tf.image.resize(image, (image_size_px, image_size_px), method="bilinear")
    return tf.cast(tf.round(tf.clip_by_value(resized, 0, 255)), tf.uint8)


def load_image(
    path: tf.Tensor | str, image_size_px: int, *, crop: str = "squash", seed: int | tuple[int, int] | None = None
) -> tf.Tensor:
    """Read, decode and resize one file to ``float32`` of shape (size, size, 3), values 0-255.

    ``crop`` says how an image that is not square becomes a square (:data:`CROPS`):

    - ``"squash"`` (the default, and the original exercise's): the whole image is stretched
      to a square, bilinearly, as ``keras.utils.image_dataset_from_directory`` does; a wide
      dog comes out narrower and taller than it is.
    - ``"centre"``: the largest centred square is kept and resized; the proportions stay
      true, the edges of the long side are lost. The usual choice for evaluation.
    - ``"random"``: a random square, 60-100% of the shortest side, anywhere in the image
      (a standard training augmentation). ``seed`` (an int) fixes it; ``None`` draws one.

    Both crops are cut while the JPEG is decoded (``tf.image.decode_and_crop_jpeg``), so
    the pixels they discard are never fully decoded (``benchmarks/README.md``).

    A JPEG much larger than the target is first decoded at a half, quarter or eighth
    of its size (see :func:`_decode_at_least`), so its pixels are averages of the full-size
    ones rather than bilinear samples of them: within a few levels of 255 of Keras's,
    slightly smoother, and cheaper to decode. The resized values are
    rounded to whole numbers, as in a resized image saved to disk: the pipeline carries
    ``uint8`` (see :func:`dataset`).
    """
    import tensorflow as tf

    _check_crop(crop)
    return tf.cast(_load_uint8(path, image_size_px, crop, seed), tf.float32)


# Bump when what load_image produces changes, so old cache folders are not reused.
_CACHE_FORMAT = "2"  # 2: uint8 (1 was float32)
_GLOB_CHARACTERS = set("*?[\\")


def _cache_names(cache_dir: Path, paths: list[str], image_size_px: int, crop: str = "squash") -> list[str]:
    """One cache file per source file, named by its path, size, modification time, the
    target size, the crop and the cache format: a changed source file gets a new name.
    (A squashed image's name has no crop in it, as before crops existed, so caches made
    then are still used.)"""
    names = []
    for path in paths:
        stat = os.stat(path)
        key = f"{_CACHE_FORMAT}|{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}|{image_size_px}"
        key += "" if crop == "squash" else f"|{crop}"
        names.append(str(cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".tensor")))
    return names


def _remove_abandoned_temporaries(cache_dir: Path) -> None:
    """Delete ``*.tmp-<pid>-*`` files whose writing process no longer runs (it was killed
    between writing and renaming); a live process's temporaries are left alone."""
    for tmp in cache_dir.glob("*.tmp-*"):
        try:
            pid = int(tmp.name.split(".tmp-")[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def _publish(tmp, final) -> bool:
    """Rename a fully written temporary cache file into place (atomic on one filesystem)."""
    tmp, final = tmp.numpy().decode(), final.numpy().decode()
    try:
        os.replace(tmp, final)
    except FileNotFoundError:  # a second iterator over the same dataset got there first
        return os.path.isfile(final)
    return True


def _read_cached(cached, image_size_px: int):
    import tensorflow as tf

    image = tf.io.parse_tensor(tf.io.read_file(cached), tf.uint8)
    return tf.ensure_shape(image, (image_size_px, image_size_px, 3))


def _make_cached(path, cached, tmp, image_size_px: int, crop: str = "squash"):
    """Decode, crop and resize ``path``, write the result to ``tmp``, rename ``tmp`` to
    ``cached`` once it is complete, and return the image."""
    import tensorflow as tf

    image = _load_uint8(path, image_size_px, crop)
    written = tf.io.write_file(tmp, tf.io.serialize_tensor(image))
    with tf.control_dependencies([written]):
        renamed = tf.py_function(_publish, [tmp, cached], tf.bool)
    with tf.control_dependencies([renamed]):
        return tf.identity(image)


def _mark_when_exhausted(flag, element_spec):
    """A dataset of no elements that sets ``flag`` when it is reached: concatenated after
    the pipeline, it runs once every element before it has been produced."""
    import tensorflow as tf

    marker = tf.data.Dataset.range(1).map(lambda _: flag.assign(True))
    marker = marker.filter(lambda done: tf.logical_not(done))  # always empty
    return marker.map(lambda _: tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), element_spec))


def _shuffled(columns, shuffle: bool, seed: int):
    """File names (and what goes with them) as a dataset, shuffled when asked: the file
    names are what is shuffled, never decoded images, so the buffer stays small. The same
    seed gives the same order, epoch by epoch, whatever the columns."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        ds = ds.shuffle(len(columns[0]), seed=seed, reshuffle_each_iteration=True)
    return ds


@dataclass(frozen=True)
class ScanReport:
    """What :func:`scan` found: how many files it decoded and which ones failed, with why."""

    checked: int
    unreadable: dict[str, str]  # relative path -> reason

    def __str__(self) -> str:
        lines = [
            f"scanned {self.checked} files: {self.checked - len(self.unreadable)} readable,"
            f" {len(self.unreadable)} unreadable"
        ]
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
    readable = (
        {Path(p.decode()).relative_to(split.root).as_posix() for p, _ in ds.as_numpy_iterator()} if every else set()
    )
    unreadable = {p: _why_unreadable(split.root / p) for p in every if p not in readable}
    report = ScanReport(len(every), unreadable)
    if verbose:
        print(report)
    return split.without(list(unreadable)), report


def augmentation(seed: int | None = None) -> keras.Sequential:
    """The augmentation the original exercise defined (and never applied): a horizontal
    flip and a rotation of up to 0.2 of a full turn, as Keras layers. With ``seed`` the
    draws are fixed: the same seed, applied to the same batches in the same order, gives
    the same images (each call still draws afresh)."""
    import keras

    flip_and_turn = [keras.layers.RandomFlip("horizontal", seed=seed), keras.layers.RandomRotation(0.2, seed=seed)]
    return keras.Sequential(flip_and_turn, name="augmentation")


def dataset(
    split: Split,
    part: str,
    *,
    image_size_px: int,
    batch_size: int,
    shuffle: bool | None = None,
    augment: bool = False,
    seed: int = 0,
    cache: bool | str | os.PathLike = False,
    crop: str = "squash",
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(images, labels)`` for one part of ``split``.

    ``images`` is ``uint8`` of shape (batch, size, size, 3), values 0-255 (``float32``
    with ``augment``); ``labels`` is int64 of shape (batch,). A Keras model whose input
    is float32 (every model of this course) converts the images itself, inside its
    compiled step and on its own device: a quarter of the bytes to batch, cache and send
    to a GPU, and a quarter of the CPU time of later, cached epochs
    (``benchmarks/README.md``). Apply the model's preprocessing in the model.
    ``shuffle`` defaults to ``True`` for ``train`` only; the order is fixed by ``seed``
    and changes each epoch; what is shuffled is the list of file names, never decoded
    images, so memory does not grow with the dataset.

    ``cache`` keeps resized images for later epochs: ``True`` in memory (all of them:
    only for small datasets, one byte per value), or a folder path (created if needed):
    one file per image, the very values an uncached epoch gives (``uint8``), written to a temporary name
    and renamed when complete, so a run stopped half-way leaves only whole files, and
    the next run reuses them and makes the rest. A source file that changes (size or
    modification time) is decoded afresh. Later epochs only read, which is much faster
    than decoding (``benchmarks/README.md``). Scan the split
    first (:func:`scan`): an unreadable file here stops the epoch, by design, rather
    than being skipped silently.

    ``crop`` is how each image becomes a square (see :func:`load_image`): ``"squash"``
    (the default, the original exercise's), ``"centre"`` (evaluation) or ``"random"``
    (training: a new window for every image in every epoch, the windows fixed by ``seed``
    as the order is). Random crops cannot be cached: a cache would give every epoch the
    first epoch's windows.
    """
    import tensorflow as tf

    _check_crop(crop)
    if crop == "random" and cache:
        raise ValueError(
            f"crop='random' with cache={cache!r}: a cache would give every epoch the first epoch's"
            " random crops; cache crop='centre' or 'squash' images, or leave cache=False"
        )
    if image_size_px < catalog.MIN_IMAGE_SIZE_PX:
        raise ValueError(f"image_size_px={image_size_px}: ResNet50 needs at least {catalog.MIN_IMAGE_SIZE_PX}")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    paths = [str(p) for p in split.paths(part)]
    if not paths:
        raise ValueError(f"part {part!r} of split {split.name!r} is empty")
    shuffle = part == "train" if shuffle is None else shuffle
    if cache is True:
        ds = tf.data.Dataset.from_tensor_slices((paths, split.labels(part)))
        ds = ds.map(lambda p, y: (_load_uint8(p, image_size_px, crop), y), num_parallel_calls=AUTOTUNE).cache()
        if shuffle:
            # After the cache, or every epoch would replay the first epoch's order. The
            # buffer holds references to the cached images, not copies.
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    else:
        if cache:
            cache_dir = Path(cache).expanduser().resolve()
            if _GLOB_CHARACTERS & set(str(cache_dir)):
                raise ValueError(f"cache={str(cache)!r}: choose a folder whose path has none of * ? [ \\")
            if cache_dir.exists() and not cache_dir.is_dir():
                raise ValueError(f"cache={str(cache)!r} is a file; pass a folder for the resized images")
            cache_dir.mkdir(parents=True, exist_ok=True)
            _remove_abandoned_temporaries(cache_dir)
            cached = _cache_names(cache_dir, paths, image_size_px, crop)
            have = [os.path.isfile(c) for c in cached]  # left by an earlier run, whole
            labels = split.labels(part)
            if all(have):  # only read: one cached file per image, no Python call per image
                ds = _shuffled((cached, labels), shuffle, seed)
                ds = ds.map(lambda c, y: (_read_cached(c, image_size_px), y), num_parallel_calls=AUTOTUNE)
            else:
                # The first pass decodes what is missing and caches it; at its end it sets
                # ``complete``, and later epochs of this dataset then only read (a dataset
                # built again on the complete cache reads faster still: one column fewer,
                # no branch per image).
                token = f".tmp-{os.getpid()}-{secrets.token_hex(4)}"  # no two datasets share a temporary
                complete = tf.Variable(False, trainable=False, name="cache_complete")

                def load(p, y, c, t, h):
                    image = tf.cond(
                        tf.logical_or(complete, h),
                        lambda: _read_cached(c, image_size_px),
                        lambda: _make_cached(p, c, t, image_size_px, crop),
                    )
                    return image, y

                columns = (paths, labels, cached, [c + token for c in cached], have)
                ds = _shuffled(columns, shuffle, seed).map(load, num_parallel_calls=AUTOTUNE)
                ds = ds.concatenate(_mark_when_exhausted(complete, ds.element_spec))
        elif crop == "random":
            # One stateless seed per image, drawn in order before the parallel map and anew
            # each epoch: the windows are fixed by ``seed`` whatever the threads do.
            ds = _shuffled((paths, split.labels(part)), shuffle, seed)
            draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2, drop_remainder=True)
            ds = tf.data.Dataset.zip(ds, draws).map(
                lambda item, s: (_load_uint8(item[0], image_size_px, crop, s), item[1]), num_parallel_calls=AUTOTUNE
            )
        else:
            ds = _shuffled((paths, split.labels(part)), shuffle, seed)
            ds = ds.map(lambda p, y: (_load_uint8(p, image_size_px, crop), y), num_parallel_calls=AUTOTUNE)
    ds = ds.batch(batch_size)
    if augment:  # Keras' augmentation layers work in float32
        # Seeded, and one batch after the other (no parallel calls): the layers' random state
        # advances batch by batch, so an epoch's augmented images depend only on ``seed``,
        # as its order does, and a resumed run sees what an uninterrupted one saw.
        layers = augmentation(seed)
        ds = ds.map(lambda x, y: (layers(tf.cast(x, tf.float32), training=True), y))
    return ds.prefetch(AUTOTUNE)
