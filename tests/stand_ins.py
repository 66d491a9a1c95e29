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


def resnet50_weight_files(folder, seed: int = 0):
    """Write an UNTRAINED ResNet50's weights into ``folder`` as Keras' two published ImageNet
    files (same names, same legacy HDF5 layout, with and without the classifier) and return
    the path of the one without (what ``WOOF_WEIGHTS`` names). The full profile then loads
    them through the real ``keras.applications.ResNet50(weights=<file>)`` path; the numbers
    they give mean nothing, and the profile says so (their MD5 is not ImageNet's)."""
    from pathlib import Path

    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from woofhelpers import profiles

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    for include_top, name in profiles.KERAS_RESNET50_FILES.items():
        network = keras.applications.ResNet50(include_top=include_top, weights=None)
        with h5py.File(folder / name, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, network)
    return folder / profiles.KERAS_RESNET50_FILES[False]
