"""A small stand-in for ``keras.applications.ResNet50``, for the tests of the trial engine.

The engine's behaviour (resuming, cached features, saving, strategies) does not depend on
the base network, but tracing a real ResNet50's training step takes tens of seconds on a
CPU, every time a test builds one. This stand-in has ResNet50's call signature and the
names the course relies on: the nested model is ``resnet50``, its top stage's layers start
with ``conv5_`` (so the corrected fine-tuning scheme trains them), it has BatchNormalization
layers, and its last layer is ``conv5_block3_out`` (Grad-CAM's default). The chapters, run
under nbval, train the real ResNet50 through the same engine; ``tests/test_model.py`` tests
the fine-tuning schemes on the real one.
"""

from __future__ import annotations

import keras


def small_resnet50(include_top: bool = True, weights: str | None = None, input_shape=None, **_) -> keras.Model:
    """Two strided convolution stages, each with BatchNorm and ReLU; random weights only."""
    if include_top or weights is not None:
        raise ValueError("the stand-in has no top and no pretrained weights")
    inputs = keras.Input(input_shape)
    x = inputs
    for stage, filters in (("conv1", 8), ("conv5_block3", 16)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"{stage}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{stage}_bn")(x)
        x = keras.layers.Activation("relu", name=f"{stage}_out" if stage != "conv1" else "conv1_relu")(x)
    return keras.Model(inputs, x, name="resnet50")


def install(monkeypatch) -> None:
    """Make ``keras.applications.ResNet50`` the stand-in for the rest of the test (or fixture)."""
    monkeypatch.setattr(keras.applications, "ResNet50", small_resnet50)
