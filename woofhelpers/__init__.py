"""woofhelpers: the code behind the Woof course on transfer learning.

Chapters import it once, as ``import woofhelpers as wh``, and call everything
through it: ``wh.labels``, ``wh.profiles``, ``wh.data``, ``wh.synthetic``,
``wh.splits``, ``wh.pipeline``, ``wh.plots``, ``wh.evaluate``, ``wh.baseline``,
``wh.gradcam``, ``wh.ablations``, ``wh.resnet``, ``wh.runtime``, ``wh.model``, ``wh.trials``,
``wh.original`` (the original exercise's own epoch logs), ``wh.published`` (a full run's
results, published into the book), ``wh.predict`` (classify a photo of your own) and
``wh.export`` (a Keras file and TensorFlow Lite).
Importing it also imports TensorFlow, when installed, without TensorFlow's C++ start-up
notices (see ``woofhelpers._quiet``).
"""

from __future__ import annotations

import contextlib as _contextlib
import os as _os

# Keep TensorFlow's C++ start-up notices (oneDNN, CPU features) out of chapter
# outputs; a user who wants them sets TF_CPP_MIN_LOG_LEVEL before importing.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from woofhelpers import _quiet  # noqa: E402

with _contextlib.suppress(ImportError):  # labels, splits and synthetic data work without TensorFlow
    _quiet.import_tensorflow()

from woofhelpers import (  # noqa: E402
    ablations,
    baseline,
    data,
    evaluate,
    gradcam,
    labels,
    original,
    pipeline,
    plots,
    profiles,
    resnet,
    runtime,
    splits,
    synthetic,
)
from woofhelpers.session import setup, versions  # noqa: E402

with _contextlib.suppress(ImportError):  # the model, the trials, publishing, predicting and exporting need Keras
    from woofhelpers import export, model, predict, published, trials  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "ablations",
    "baseline",
    "data",
    "evaluate",
    "export",
    "gradcam",
    "labels",
    "model",
    "original",
    "pipeline",
    "plots",
    "predict",
    "profiles",
    "published",
    "resnet",
    "runtime",
    "setup",
    "splits",
    "synthetic",
    "trials",
    "versions",
]
