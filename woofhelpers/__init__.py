"""woofhelpers: the code behind the Woof course on transfer learning.

Chapters import it once, as ``import woofhelpers as wh``, call ``profile = wh.setup()``
and reach everything through ``wh.<topic>.<name>``. The modules, in layers (each imports
only from its own layer or those below it; ``tests/test_structure.py`` keeps it so):

- facts: ``wh.labels`` (wnid -> breed), ``wh.catalog`` (the archives and their counts),
  ``wh.original`` (the original exercise's logs and reported figures), ``wh.io`` (writes
  that are whole or absent);
- settings: ``wh.profiles`` (smoke or full), ``wh.hardware`` (device, and the process-wide
  settings a run touches, each restored);
- data: ``wh.synthetic``, ``wh.data``, ``wh.splits``, ``wh.pipeline``;
- recipes: ``wh.recipes`` (every trial as data), ``wh.runtime`` (how long one takes);
- model: ``wh.model``, ``wh.evaluate`` (metrics), ``wh.gradcam``;
- the engine's parts: ``wh.features``, ``wh.checkpoint``, ``wh.results``; the engine:
  ``wh.trials``;
- chapters' helpers: ``wh.plots``, ``wh.ablations``, ``wh.baseline``, ``wh.resnet``,
  ``wh.predict``, ``wh.export``, ``wh.session`` (``wh.setup``, ``wh.versions``); and
  ``wh.published`` (a full run's results, published into the book).

Importing it also imports TensorFlow, when installed, without TensorFlow's C++ start-up
notices (:func:`woofhelpers.hardware.import_tensorflow`).
"""

from __future__ import annotations

import contextlib as _contextlib
import importlib.metadata as _metadata
import os as _os

# Keep TensorFlow's C++ start-up notices (oneDNN, CPU features) out of chapter
# outputs; a user who wants them sets TF_CPP_MIN_LOG_LEVEL before importing.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from woofhelpers import hardware  # noqa: E402

with _contextlib.suppress(ImportError):  # labels, splits and synthetic data work without TensorFlow
    hardware.import_tensorflow()

from woofhelpers import (  # noqa: E402
    ablations,
    baseline,
    catalog,
    data,
    evaluate,
    gradcam,
    io,
    labels,
    original,
    pipeline,
    plots,
    profiles,
    recipes,
    resnet,
    results,
    runtime,
    splits,
    synthetic,
)
from woofhelpers.session import setup, versions  # noqa: E402

with _contextlib.suppress(ImportError):  # the model, the engine, publishing, predicting and exporting need Keras
    from woofhelpers import checkpoint, export, features, model, predict, published, trials  # noqa: E402

__version__ = _metadata.version("woofhelpers")  # pyproject.toml's, as installed
__all__ = [
    "ablations",
    "baseline",
    "catalog",
    "checkpoint",
    "data",
    "evaluate",
    "export",
    "features",
    "gradcam",
    "hardware",
    "io",
    "labels",
    "model",
    "original",
    "pipeline",
    "plots",
    "predict",
    "profiles",
    "published",
    "recipes",
    "resnet",
    "results",
    "runtime",
    "setup",
    "splits",
    "synthetic",
    "trials",
    "versions",
]
