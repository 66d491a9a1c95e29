"""Ship a trained model: a Keras file, and TensorFlow Lite at three precisions.

Every model of the course takes float32 images with values 0-255 and carries its own
preprocessing (``wh.model.ResNet50Preprocess``), so what is exported needs nothing but
resized pixels: a phone app feeds it a photo as it is.

- :func:`save_keras` writes a ``.keras`` file. It names the course's preprocessing layer
  as ``woofhelpers>ResNet50Preprocess``, so load it with :func:`load_keras` (or
  ``import woofhelpers`` before ``keras.saving.load_model``): Keras needs the layer's code.
- :func:`to_tflite` converts to a ``.tflite`` file, self-contained (the preprocessing is a
  few TFLite operations), at :data:`QUANTIZATIONS`: ``"float32"`` (the same numbers),
  ``"float16"`` (weights stored in half precision: half the size), ``"int8"`` (weights
  and activations in 8 bits, a quarter of the size; the ranges of the activations are
  measured on a *representative* dataset, about 100 training images). The input and
  output stay float32 in all three.
- :func:`tflite_predict` runs a ``.tflite`` file with TensorFlow's interpreter.
- :func:`compare` puts the four side by side: file size, CPU latency per image, test
  accuracy, and how far each one's probabilities are from the Keras model's.

Taught in the chapter *Is my dog one of the ten?*.
"""

from __future__ import annotations

import contextlib
import io
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from woofhelpers import hardware

if TYPE_CHECKING:
    import keras
    import pandas as pd
    import tensorflow as tf

QUANTIZATIONS = ("float32", "float16", "int8")
FORMATS = ("keras", *(f"tflite {q}" for q in QUANTIZATIONS))
REPRESENTATIVE_IMAGES = 100  # how many training images int8 quantisation measures its ranges on
LATENCY_RUNS = 50  # single-image runs per format in compare(), the formats taking turns


def save_keras(model: keras.Model, path: str | Path) -> Path:
    """Save ``model`` (architecture, weights, preprocessing) to a ``.keras`` file; return its path."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a Keras model file's name ends in .keras")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def check_model_file(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it names an existing ``.keras`` file; otherwise
    ``FileNotFoundError`` or ``ValueError``, naming it and what to pass instead."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file; pass a .keras file saved with wh.export.save_keras")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: not a .keras file; pass a model saved with wh.export.save_keras")
    return path


def load_keras(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file written by :func:`save_keras` (or by any Keras code) for inference.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a file Keras
    cannot read as a model, each naming the file."""
    import keras

    import woofhelpers.model  # noqa: F401  (registers ResNet50Preprocess, which the file names)

    path = check_model_file(path)
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises several kinds for a damaged or foreign file
        message = " ".join(str(error).split())[:300]
        raise ValueError(f"{path} could not be loaded as a Keras model ({message}); save the model again") from None


def _images_of(representative) -> Iterator[np.ndarray]:
    """Single images, float32 of shape (1, size, size, 3), from a ``tf.data.Dataset`` (of
    images or of ``(images, labels)``, batched or not) or an array of images."""
    items = representative.as_numpy_iterator() if hasattr(representative, "as_numpy_iterator") else [representative]
    for item in items:
        images = np.asarray(item[0] if isinstance(item, tuple) else item, dtype=np.float32)
        for image in images if images.ndim == 4 else images[None]:
            yield image[None]


def representative_dataset(representative: object, count: int = REPRESENTATIVE_IMAGES) -> Callable[[], Iterator[list]]:
    """The generator function TFLite's int8 converter calls: the first ``count`` images of
    ``representative`` (see :func:`to_tflite`), one at a time."""

    def images():
        for number, image in enumerate(_images_of(representative)):
            if number == count:
                return
            yield [image]

    return images


@contextlib.contextmanager
def _quiet_conversion():
    """Keep the converter's printout (Keras' export lists every variable), TensorFlow's log
    ("Assets written to", "retracing") and the C++ lines of the converter and of TFLite's
    interpreter ("fully_quantize", "Created TensorFlow Lite XNNPACK delegate", written
    straight to the process's file descriptors) out of a chapter's output. Errors still
    raise as exceptions."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            with hardware.quiet_tf_log(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def to_tflite(
    model: keras.Model, path: str | Path, quantization: str = "float32", representative: object = None
) -> Path:
    """Convert ``model`` to a TensorFlow Lite file at ``path``; return the path.

    ``quantization``: ``"float32"``, ``"float16"`` or ``"int8"`` (see the module
    docstring). ``"int8"`` needs ``representative``: a ``tf.data.Dataset`` of training
    images (or of ``(images, labels)``, batched or not, such as
    ``wh.pipeline.dataset(split, "train", ...)``) or an array of images, values 0-255; the
    first :data:`REPRESENTATIVE_IMAGES` are used. Inputs and outputs stay float32, so the
    preprocessing inside the model travels with it.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r}: choose one of {', '.join(QUANTIZATIONS)}")
    if quantization == "int8" and representative is None:
        raise ValueError(
            "int8 quantisation needs representative= training images (a tf.data.Dataset or an array),"
            " to measure the ranges of the activations"
        )
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        converter.representative_dataset = representative_dataset(representative)
    with _quiet_conversion():
        flatbuffer = converter.convert()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(flatbuffer)
    return path


def _interpreter(path: str | Path, batch: int, image_shape) -> tf.lite.Interpreter:
    import tensorflow as tf

    # Quiet: "tf.lite.Interpreter is deprecated" (still TensorFlow's own, and it works) and the
    # C++ line announcing the XNNPACK delegate.
    with _quiet_conversion():
        interpreter = tf.lite.Interpreter(model_path=str(path))
        index = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(index, [batch, *image_shape])
        interpreter.allocate_tensors()
        interpreter.invoke()  # the delegate is applied at the first run
    return interpreter


def _invoke(interpreter: tf.lite.Interpreter, images: np.ndarray) -> np.ndarray:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def tflite_predict(path: str | Path, images: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """Run the ``.tflite`` file at ``path`` on ``images`` (float32 of shape (n, size, size, 3),
    values 0-255); return its outputs, float32 of shape (n, classes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such TFLite file; write one with wh.export.to_tflite")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"images must have shape (n, size, size, 3); got {images.shape}")
    outputs, interpreter = [], None
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        if interpreter is None or len(batch) != batch_size:
            interpreter = _interpreter(path, len(batch), images.shape[1:])
        outputs.append(np.array(_invoke(interpreter, batch)))
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def _mib(path: Path) -> float:
    """The size of a file, or of a folder's files, in MiB."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    return path.stat().st_size / 2**20


def compare(
    model: keras.Model,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    representative: object,
    folder: str | Path,
    *,
    runs: int = LATENCY_RUNS,
) -> pd.DataFrame:
    """Export ``model`` in every format into ``folder`` and compare them, one row per format
    (:data:`FORMATS`): file size (MiB), CPU latency per image (ms, the median of ``runs``
    single-image runs; the formats take turns, A B C D A B C D ..., so a machine that
    slows down slows them all), accuracy on ``test_images`` (float32 of shape (n, size,
    size, 3), 0-255) against ``test_labels``, and the largest difference between any of
    its probabilities and the Keras model's.

    ``representative`` is passed to :func:`to_tflite` for int8 (training images, never
    test images). Latencies are this machine's, measured in this one run: compare them
    with each other, not with another machine's.
    """
    import pandas as pd

    folder = Path(folder)
    test_images = np.asarray(test_images, dtype=np.float32)
    test_labels = np.asarray(test_labels).reshape(-1)
    if len(test_images) != len(test_labels) or not len(test_images):
        raise ValueError(f"{len(test_images)} test images and {len(test_labels)} labels: give one label per image")
    files = {"keras": save_keras(model, folder / "model.keras")}
    for quantization in QUANTIZATIONS:
        files[f"tflite {quantization}"] = to_tflite(
            model, folder / f"model_{quantization}.tflite", quantization, representative
        )
    with _quiet_conversion():  # a new model's predict function: TensorFlow may warn of "retracing"
        reference = np.asarray(model.predict(test_images, verbose=0, batch_size=32), dtype=np.float32)
    probabilities = {"keras": reference}
    for name, file in files.items():
        if name != "keras":
            probabilities[name] = tflite_predict(file, test_images)

    # Latency: one image at a time, each format's runner prepared once, the formats alternated.
    one = test_images[:1]
    interpreters = {name: _interpreter(file, 1, one.shape[1:]) for name, file in files.items() if name != "keras"}
    runners = {"keras": lambda: model.predict_on_batch(one)}
    runners.update({name: (lambda it=it: _invoke(it, one)) for name, it in interpreters.items()})
    for run in runners.values():  # warm up: the first call traces or allocates
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    rows = []
    for name in FORMATS:
        rows.append(
            {
                "format": name,
                "file": files[name].name,
                "size (MiB)": _mib(files[name]),
                "latency (ms per image)": 1000 * statistics.median(times[name]),
                "accuracy": float(np.mean(probabilities[name].argmax(axis=1) == test_labels)),
                "max |Δp| vs Keras": float(np.max(np.abs(probabilities[name] - reference))),
            }
        )
    table = pd.DataFrame(rows).set_index("format")
    table.attrs["note"] = (
        f"{len(test_images)} test images; latency: median of {runs} single-image runs on this machine's CPU"
        f" ({os.cpu_count()} cores), the formats taking turns"
    )
    return table
