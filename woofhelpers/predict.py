"""Classify a photo of your own, and say when the answer means nothing.

:func:`read_photo` turns a file (or an ``http(s)://`` URL) into ``uint8`` RGB pixels, as a
phone or a web page hands them over: turned upright as its EXIF orientation says,
grayscale, palette and CMYK images converted to RGB, a transparent background laid onto
white, a very large photo downsized. What it changed is listed in the :class:`Photo`'s
``notes``, never done silently. It refuses, with a ``ValueError`` that names the file and
the fix, a file that is not an image, a truncated or corrupt one, one under
:data:`MIN_SIDE_PX` on its shortest side, and one over :data:`MAX_PIXELS` pixels.

:func:`photo` resizes the pixels as the course's input pipeline resizes its training
images (``wh.pipeline.resize``) and returns the model's top breeds as a
:class:`Prediction`. A ten-breed model always answers one of its ten breeds: a cat comes
back as "92% Samoyed" if nothing else is asked. So, given ``imagenet_model`` (ResNet50
with its 1000-way ImageNet classifier, ``wh.baseline.imagenet_classifier(profile)``),
:func:`photo` also asks ImageNet what the photo shows, and :func:`judge` applies this rule,
kept as data in :data:`DOG_CLASSES` and :data:`DOG_THRESHOLD`:

1. ``dog probability`` = ImageNet's probabilities summed over its dog classes
   (:data:`DOG_CLASSES`: indices 151-268, ImageNet-1k's 118 domestic breeds, and 273, the
   dingo, one of the ten). Below :data:`DOG_THRESHOLD`: **not a dog**.
2. Otherwise ImageNet's most probable dog class decides: one of the ten breeds'
   (``wh.labels.IMAGENET_INDICES``) is **one of the ten**, any other is **another dog**.

A softmax probability is not a confidence: it is what the last layer's outputs become
once they are made to sum to 1, among the classes the model knows, and on photos unlike
its training images it can be high for a wrong answer. :func:`measure_rule` measures how
often the rule is right on photos whose kind is known.

Taught in the chapter *Is my dog one of the ten?*.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from woofhelpers import catalog, labels, pipeline

if TYPE_CHECKING:
    import keras
    import pandas as pd

# What read_photo accepts and what it does to large photos.
MIN_SIDE_PX = catalog.MIN_IMAGE_SIZE_PX  # ResNet50's smallest input; a smaller photo holds too little
MAX_PIXELS = 100_000_000  # 100 megapixels: beyond any camera photo; refused, not decoded
KEEP_LONGEST_SIDE_PX = 2048  # a larger photo is downsized to this on reading (the model sees far fewer pixels)
MAX_DOWNLOAD_BYTES = 50 * 2**20
DOWNLOAD_TIMEOUT_S = 30

# The out-of-distribution rule (see the module docstring).
DOG_CLASSES: tuple[int, ...] = (*range(151, 269), 273)
DOG_THRESHOLD = 0.5
KINDS = ("one of the ten", "another dog", "not a dog")
IMAGENET_CLASSES = 1000


def _short_name(imagenet_index: int) -> str:
    """ImageNet's first name for a class: ``"tabby"`` for 281, ``"Samoyed"`` for 258."""
    return labels.imagenet_synset(imagenet_index)[1].split(", ")[0]


# --- reading a photo -------------------------------------------------------------------


@dataclass(frozen=True)
class Photo:
    """A photo as :func:`read_photo` reads it: ``pixels`` is ``uint8`` of shape (height,
    width, 3); ``size_px`` is the file's own (width, height), before any turn or downsizing;
    ``notes`` says what was changed on reading (turned, converted, composited, downsized)."""

    source: str
    pixels: np.ndarray
    size_px: tuple[int, int]
    notes: tuple[str, ...] = ()


def _is_url(path) -> bool:
    return isinstance(path, str) and path.lower().startswith(("http://", "https://"))


def _download(url: str) -> bytes:
    """The bytes at ``url`` (at most :data:`MAX_DOWNLOAD_BYTES`), or a ``ValueError``."""
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 (http(s) only)
            data = response.read(MAX_DOWNLOAD_BYTES + 1)
    except (urllib.error.URLError, OSError) as error:
        raise ValueError(
            f"could not download {url}: {error}; check the address, or download it and pass the file"
        ) from None
    if len(data) > MAX_DOWNLOAD_BYTES:
        raise ValueError(
            f"{url} is larger than {MAX_DOWNLOAD_BYTES // 2**20} MiB; download a smaller copy of the photo"
        )
    return data


def _open(source: str, file):
    """``PIL.Image.open`` with this module's size limits instead of PIL's own."""
    from PIL import Image, UnidentifiedImageError

    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # PIL's decompression-bomb check: MAX_PIXELS is checked below, with the numbers
    try:
        image = Image.open(file)
    except UnidentifiedImageError:
        raise ValueError(
            f"{source} is not an image that can be read (JPEG, PNG, GIF, BMP, WebP, TIFF); pass a photo file"
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(
            f"{source} is {width} x {height} px = {width * height / 1e6:.0f} megapixels, more than the"
            f" {MAX_PIXELS / 1e6:.0f} megapixels read here; save a smaller copy (a few megapixels is plenty:"
            " the model sees it at its input size)"
        )
    if min(width, height) < MIN_SIDE_PX:
        raise ValueError(
            f"{source} is {width} x {height} px: too small to classify; use a photo at least"
            f" {MIN_SIDE_PX} px on its shortest side"
        )
    return image


def _to_rgb(image, notes: list[str]):
    """RGB, whatever the colour model; transparency laid onto white (said in ``notes``)."""
    from PIL import Image

    mode = image.mode
    if mode == "P" and "transparency" in image.info or mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:  # some pixel is (partly) transparent
            notes.append("transparent background laid onto white")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode.startswith("I;16"):  # 16-bit grayscale: keep the top 8 bits
        notes.append("16-bit grayscale, reduced to 8 bits and copied into three channels")
        return Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8)).convert("RGB")
    if mode in ("1", "L", "I", "F"):
        notes.append("grayscale, copied into three channels")
    elif mode == "CMYK":
        notes.append("CMYK colours converted to RGB")
    return image.convert("RGB") if mode != "RGB" else image


def open_photo(path: str | Path) -> Photo:
    """Read a photo file, or an ``http(s)://`` URL, as a :class:`Photo` (see :func:`read_photo`)."""
    from PIL import Image, ImageOps

    if _is_url(path):
        source, file = str(path), io.BytesIO(_download(str(path)))
    else:
        file = Path(path).expanduser()
        source = str(file)
        if not file.is_file():
            raise FileNotFoundError(f"{source}: no such file; pass the path of a photo (or an http(s):// URL)")
    image = _open(source, file)
    size_px = image.size
    notes: list[str] = []
    try:
        if getattr(image, "n_frames", 1) > 1:
            notes.append(f"first of its {image.n_frames} frames")
        image.load()
        orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image, notes)
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(
            f"{source}: the image data is truncated or corrupt ({error}); copy the photo again from where it came from"
        ) from None
    if orientation not in (1, None):
        notes.insert(0, f"turned upright as its EXIF orientation ({orientation}) says")
    if max(image.size) > KEEP_LONGEST_SIDE_PX:
        before = image.size
        image.thumbnail((KEEP_LONGEST_SIDE_PX, KEEP_LONGEST_SIDE_PX), Image.Resampling.BILINEAR)
        notes.append(f"downsized from {before[0]} x {before[1]} to {image.size[0]} x {image.size[1]} px")
    return Photo(source, np.asarray(image, dtype=np.uint8), size_px, tuple(notes))


def read_photo(path: str | Path) -> np.ndarray:
    """A photo's pixels, ``uint8`` RGB of shape (height, width, 3), from a file path or an
    ``http(s)://`` URL.

    Turned upright as its EXIF orientation says; grayscale, palette and CMYK images
    converted to RGB; a transparent background laid onto white; a photo longer than
    :data:`KEEP_LONGEST_SIDE_PX` on a side downsized to it. :func:`open_photo` returns the
    same pixels with notes saying which of these happened. Raises ``ValueError`` (naming
    the file and what to do) for a file that is not an image, truncated or corrupt image
    data, a photo under :data:`MIN_SIDE_PX` px on its shortest side or over
    :data:`MAX_PIXELS` pixels; ``FileNotFoundError`` for a path with no file.
    """
    return open_photo(path).pixels


# --- the out-of-distribution rule --------------------------------------------------------


@dataclass(frozen=True)
class ImageNetView:
    """What ImageNet's classifier says about a photo, and the rule's verdict (:func:`judge`).

    ``kind`` is one of :data:`KINDS`; ``top`` is ImageNet's top three as ``(index, name,
    probability)``; ``dog`` is its most probable dog class, the same way."""

    kind: str
    dog_probability: float
    top: tuple[tuple[int, str, float], ...]
    dog: tuple[int, str, float]

    @property
    def is_dog(self) -> bool:
        return self.kind != "not a dog"

    @property
    def one_of_the_ten(self) -> bool:
        return self.kind == "one of the ten"


def judge(imagenet_probabilities: Sequence[float] | np.ndarray) -> ImageNetView:
    """Apply the rule of the module docstring to ImageNet's 1000 probabilities for one photo."""
    p = np.asarray(imagenet_probabilities, dtype=np.float64).reshape(-1)
    if p.shape != (IMAGENET_CLASSES,):
        raise ValueError(f"expected ImageNet's {IMAGENET_CLASSES} probabilities, got {p.shape[0]} values")
    dog_probability = float(p[list(DOG_CLASSES)].sum())
    dog_index = max(DOG_CLASSES, key=lambda i: p[i])
    if dog_probability < DOG_THRESHOLD:
        kind = "not a dog"
    elif dog_index in labels.IMAGENET_INDICES:
        kind = "one of the ten"
    else:
        kind = "another dog"
    top = tuple((int(i), _short_name(int(i)), float(p[i])) for i in np.argsort(-p, kind="stable")[:3])
    return ImageNetView(kind, dog_probability, top, (dog_index, _short_name(dog_index), float(p[dog_index])))


# --- classifying a photo -------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """A model's answer for one photo, with ImageNet's view of it when one was asked.

    ``breeds`` is the model's top breeds as ``(name, probability)``, most probable first;
    ``imagenet`` is ``None`` when :func:`photo` got no ``imagenet_model``."""

    source: str
    size_px: tuple[int, int]
    notes: tuple[str, ...]
    breeds: tuple[tuple[str, float], ...]
    imagenet: ImageNetView | None = None

    @property
    def breed(self) -> str:
        """The model's most probable breed."""
        return self.breeds[0][0]

    @property
    def is_dog(self) -> bool | None:
        return None if self.imagenet is None else self.imagenet.is_dog

    @property
    def one_of_the_ten(self) -> bool | None:
        return None if self.imagenet is None else self.imagenet.one_of_the_ten

    @property
    def imagenet_top(self) -> tuple[tuple[int, str, float], ...] | None:
        return None if self.imagenet is None else self.imagenet.top

    @property
    def verdict(self) -> str:
        """One sentence: the model's answer in ImageNet's context."""
        breed, probability = self.breeds[0]
        answer = f"{breed} ({probability:.0%})"
        if self.imagenet is None:
            return (
                f"the model says {answer}, but it answers one of its ten breeds whatever the photo shows;"
                " pass imagenet_model to check that it is a dog of the ten"
            )
        if self.imagenet.kind == "not a dog":
            return (
                f"not a dog, as far as ImageNet can tell (it says: {self.imagenet.top[0][1]}): the ten-breed"
                f" model's answer, {answer}, means nothing here"
            )
        if self.imagenet.kind == "another dog":
            return (
                f"a dog, but not one of the ten breeds according to ImageNet (it says: {self.imagenet.dog[1]}):"
                f" the ten-breed model's answer, {answer}, can only be one of its ten"
            )
        return f"one of the ten: {answer} (ImageNet says: {self.imagenet.dog[1]})"

    def __str__(self) -> str:
        width, height = self.size_px
        lines = [f"{self.source} ({width} x {height} px)"]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  the model's top {len(self.breeds)} of its ten breeds:")
        lines += [f"    {name:<22} {probability:6.1%}" for name, probability in self.breeds]
        if self.imagenet is not None:
            top = ", ".join(f"{name} {p:.0%}" for _, name, p in self.imagenet.top)
            lines.append(f"  ImageNet: dog classes {self.imagenet.dog_probability:.0%} in all; its top 3: {top}")
        lines.append(f"  verdict: {self.verdict}")
        lines.append("  (a softmax probability is not a confidence: it is high for wrong answers too)")
        return "\n".join(lines)


def _input_size_px(model: keras.Model) -> int:
    """The side of the square images ``model`` takes, from ``model.input_shape``."""
    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4 or shape[1] is None or shape[1] != shape[2]:
        raise ValueError(
            f"model {model.name!r} takes input of shape {shape}, not square images of one size;"
            " pass image_size_px= the size it was trained at"
        )
    return int(shape[1])


def _model_input(pixels: np.ndarray, image_size_px: int) -> np.ndarray:
    """``pixels`` resized as the pipeline resizes images: float32 of shape (1, size, size, 3), 0-255."""
    return np.asarray(pipeline.resize(pixels, image_size_px), dtype=np.float32)[None]


def _run(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_on_batch(images), dtype=np.float64)


def _check_imagenet_model(imagenet_model: keras.Model) -> None:
    if imagenet_model.output_shape[-1] != IMAGENET_CLASSES:
        raise ValueError(
            f"imagenet_model {imagenet_model.name!r} outputs {imagenet_model.output_shape[-1]} scores, not"
            f" ImageNet's {IMAGENET_CLASSES}; build it with wh.baseline.imagenet_classifier(profile)"
        )


def photo(
    model: keras.Model,
    path: str | Path | Photo,
    *,
    image_size_px: int | None = None,
    top: int = 3,
    imagenet_model: keras.Model | None = None,
) -> Prediction:
    """Classify one photo (a path, an ``http(s)://`` URL, or a :class:`Photo`) with a
    ten-breed ``model``: its ``top`` breeds with their probabilities.

    The photo is read by :func:`open_photo` and resized with ``wh.pipeline.resize`` to
    ``image_size_px`` (default: the model's input size), as training images are: the
    model's preprocessing is inside it. Given ``imagenet_model`` (1000 ImageNet
    probabilities out, ``wh.baseline.imagenet_classifier(profile)``), the prediction also
    holds ImageNet's view and the verdict of :func:`judge`.
    """
    from woofhelpers.evaluate import check_output_size

    check_output_size(model)
    if not 1 <= top <= len(labels.CLASS_NAMES):
        raise ValueError(f"top={top}: choose 1 to {len(labels.CLASS_NAMES)}")
    picture = path if isinstance(path, Photo) else open_photo(path)
    scores = _run(model, _model_input(picture.pixels, image_size_px or _input_size_px(model)))[0]
    order = np.argsort(-scores, kind="stable")[:top]
    breeds = tuple((labels.CLASS_NAMES[i], float(scores[i])) for i in order)
    view = None
    if imagenet_model is not None:
        _check_imagenet_model(imagenet_model)
        view = judge(_run(imagenet_model, _model_input(picture.pixels, _input_size_px(imagenet_model)))[0])
    return Prediction(picture.source, picture.size_px, picture.notes, breeds, view)


def measure_rule(
    imagenet_model: keras.Model,
    paths_dogs_of_the_ten: Iterable[str | Path],
    paths_other_dogs: Iterable[str | Path],
    paths_not_dogs: Iterable[str | Path],
    *,
    batch_size: int = 16,
) -> pd.DataFrame:
    """How often :func:`judge`'s rule says the right thing, one row per group of photos
    whose kind is known: how many photos, how many the rule called each kind, how many
    it got right, and that as a share. Photos that cannot be read stop it with their
    ``ValueError``: choose readable ones."""
    import pandas as pd

    _check_imagenet_model(imagenet_model)
    size_px = _input_size_px(imagenet_model)
    groups = dict(zip(KINDS, (list(paths_dogs_of_the_ten), list(paths_other_dogs), list(paths_not_dogs)), strict=True))
    rows = []
    for truth, paths in groups.items():
        said = dict.fromkeys(KINDS, 0)
        for start in range(0, len(paths), batch_size):
            batch = np.concatenate([_model_input(read_photo(p), size_px) for p in paths[start : start + batch_size]])
            for probabilities in _run(imagenet_model, batch):
                said[judge(probabilities).kind] += 1
        right = said[truth]
        rows.append(
            {
                "photos": len(paths),
                **{f"said {kind!r}": count for kind, count in said.items()},
                "right": right,
                "share right": right / len(paths) if paths else float("nan"),
            }
        )
    return pd.DataFrame(rows, index=pd.Index(KINDS, name="photos of"))
