"""The network of a trial: a ResNet50 base, a head, and the two fine-tuning schemes.

``build(trial)`` makes a functional Keras model ``image -> [preprocess] -> resnet50 -> head``.
The base is the nested model named ``"resnet50"`` (:func:`base_of`), so every one of its
layers, ``conv5_block3_out`` included, stays reachable for Grad-CAM. The base starts frozen;
:func:`unfreeze` opens it for fine-tuning, the original way or the corrected way.

- Heads: ``"original"`` is ``Flatten -> Dense(1000, relu) -> Dense(10, activation)`` (about
  51 million weights at 160 px); ``"corrected"`` is ``GlobalAveragePooling -> Dropout ->
  Dense(10, softmax)`` (20,490 weights).
- Preprocessing: ``"none"`` feeds raw 0-255 pixels, as the original did; ``"resnet50"``
  applies ``keras.applications.resnet50.preprocess_input`` inside the model (layer
  :class:`ResNet50Preprocess`), so a saved model is self-contained.
- Mixed precision (``build(..., mixed_precision=True)``, for trials that ask for it on a GPU):
  the layers *and the model* are created under the ``mixed_float16`` policy, so the model's
  ``dtype_policy`` is mixed and :func:`compile_model` gets a ``LossScaleOptimizer``, which
  scales the loss so float16 gradients do not underflow. The output layer computes in
  float32. The process-wide policy is restored afterwards.

Taught in the chapters *Trial 1* (heads, output activation) and *Trial 2* (fine-tuning).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras

from woofhelpers import catalog, hardware
from woofhelpers.recipes import ACTIVATIONS, FINE_TUNE_SCHEMES, HEADS, OPTIMIZERS, PREPROCESSING

if TYPE_CHECKING:
    import numpy as np

    from woofhelpers.recipes import Trial

# The original froze the first 100 layers of the ResNet50 when fine-tuning.
ORIGINAL_CUT = 100
BASE_NAME = "resnet50"
LAST_CONV_LAYER = "conv5_block3_out"
HEAD_LAYER_NAMES = {
    "original": ("head_flatten", "head_dense", "predictions"),
    "corrected": ("head_pool", "head_dropout", "predictions"),
}


@keras.saving.register_keras_serializable(package="woofhelpers")
class ResNet50Preprocess(keras.layers.Layer):
    """``keras.applications.resnet50.preprocess_input`` as a layer: RGB 0-255 in, BGR with
    the ImageNet channel means subtracted out. It has no weights and saves with the model."""

    def call(self, images):
        return keras.applications.resnet50.preprocess_input(images)


def _check(name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; choose one of {tuple(valid)}")


def head_layers(head: str, activation: str, dropout: float = 0.2) -> list[keras.layers.Layer]:
    """The layers of a head, in order (see the module docstring). The output layer is
    float32 even under mixed precision, so probabilities and the loss stay accurate."""
    _check("head", head, HEADS)
    _check("output activation", activation, ACTIVATIONS)
    names = HEAD_LAYER_NAMES[head]
    output = keras.layers.Dense(10, activation=activation, dtype="float32", name=names[2])
    if head == "original":
        return [keras.layers.Flatten(name=names[0]), keras.layers.Dense(1000, activation="relu", name=names[1]), output]
    return [keras.layers.GlobalAveragePooling2D(name=names[0]), keras.layers.Dropout(dropout, name=names[1]), output]


def same_policy(model: keras.Model) -> contextlib.AbstractContextManager[None]:
    """A context in which new layers and models take ``model``'s dtype policy; the global
    policy is restored on leaving it. Create any other ``keras.Model`` over ``model``'s
    layers in it: a model takes the policy in force when it is created, and ``compile``
    adds loss scaling only to a model whose own policy is ``mixed_float16``."""
    return hardware.dtype_policy(model.dtype_policy.name)


def build(trial: Trial, weights: str | None = None, *, mixed_precision: bool = False) -> keras.Model:
    """Build the model of ``trial`` (a :class:`woofhelpers.recipes.Trial`) with its base frozen.

    ``weights`` is passed to ``keras.applications.ResNet50`` (``"imagenet"`` or ``None``).
    ``mixed_precision`` builds the model under the ``mixed_float16`` policy (for GPUs): it
    computes in float16 with float32 weights, the output layer stays float32, and
    :func:`compile_model` adds loss scaling. The global policy is left as it was.
    Input: float32 images of shape (batch, size, size, 3), values 0-255.
    """
    size = trial.image_size_px
    if size < catalog.MIN_IMAGE_SIZE_PX:
        raise ValueError(f"image_size_px={size}: ResNet50 needs at least {catalog.MIN_IMAGE_SIZE_PX}")
    _check("preprocessing", trial.preprocessing, PREPROCESSING)
    with hardware.dtype_policy("mixed_float16" if mixed_precision else "float32"):
        inputs = keras.Input((size, size, 3), name="image")
        x = ResNet50Preprocess(name="preprocess")(inputs) if trial.preprocessing == "resnet50" else inputs
        base_model = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(size, size, 3))
        base_model.trainable = False
        x = base_model(x)
        for layer in head_layers(trial.head, trial.output_activation, trial.dropout):
            x = layer(x)
        # Inside the scope: the model takes the policy in force when it is created, and only a
        # ``mixed_float16`` model gets a LossScaleOptimizer from ``compile``.
        return keras.Model(inputs, x, name=trial.name.replace(" ", "_"))


def base_of(model: keras.Model) -> keras.Model:
    """The ResNet50 inside ``model`` (its layers include ``conv5_block3_out``)."""
    return model.get_layer(BASE_NAME)


def head_model(model: keras.Model) -> keras.Model:
    """A model from the base's output features to the predictions that shares its head
    layers (and so their weights) with ``model``: training it trains ``model``'s head.
    Used to fit the head on features computed once (see ``woofhelpers.trials``). It has
    ``model``'s dtype policy, so a mixed-precision model's head is compiled with loss
    scaling too."""
    base = base_of(model)
    names = [layer.name for layer in model.layers[model.layers.index(base) + 1 :]]
    with same_policy(model):
        features = keras.Input(base.output.shape[1:], dtype=base.output.dtype, name="features")
        x = features
        for name in names:
            x = model.get_layer(name)(x)
        return keras.Model(features, x, name=f"{model.name}_head")


def unfreeze(model: keras.Model, scheme: str) -> None:
    """Open the base for fine-tuning.

    ``"original"``: every base layer trainable except the first :data:`ORIGINAL_CUT` (100)
    of ``base_model.layers``; the BatchNormalization layers above the cut then run in
    training mode (batch statistics, moving averages updated). ``"corrected"``: only the
    top stage (``conv5_*``) trainable, and every BatchNormalization layer frozen, so it
    keeps running in inference mode with the statistics learnt on ImageNet.
    Recompile afterwards (:func:`compile_model`).
    """
    _check("fine-tuning scheme", scheme, FINE_TUNE_SCHEMES)
    base = base_of(model)
    base.trainable = True
    for index, layer in enumerate(base.layers):
        if scheme == "original":
            layer.trainable = index >= ORIGINAL_CUT
        else:
            batch_norm = isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = layer.name.startswith("conv5_") and not batch_norm


def trainable_summary(model: keras.Model) -> dict[str, int]:
    """Counts that say what training will change: trainable base layers, BatchNorm layers
    that will run in training mode, and trainable / frozen weights."""
    import numpy as np

    base = base_of(model)
    trainable_layers = [layer for layer in base.layers if layer.trainable and layer.weights] if base.trainable else []
    return {
        "trainable base layers": len(trainable_layers),
        "BatchNorm layers in training mode": sum(
            isinstance(x, keras.layers.BatchNormalization) for x in trainable_layers
        ),
        "trainable weights": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "frozen weights": int(sum(np.prod(w.shape) for w in model.non_trainable_weights)),
    }


def optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """``"adam"`` or ``"rmsprop"`` at ``learning_rate``."""
    _check("optimizer", name, OPTIMIZERS)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.RMSprop(learning_rate)


def compile_model(model: keras.Model, optimizer_name: str, learning_rate: float, *, jit_compile: bool = False) -> None:
    """Compile for training as every trial does: sparse categorical cross-entropy on the
    output probabilities, accuracy, and the optimizer's variables created at once (so a
    checkpoint can be loaded into it). A ``mixed_float16`` model's optimizer comes back
    wrapped in ``keras.optimizers.LossScaleOptimizer`` (Keras does that in ``compile``)."""
    model.compile(
        optimizer=optimizer(optimizer_name, learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    model.optimizer.build(model.trainable_variables)


def what_the_loss_sees(outputs: Sequence[float] | np.ndarray, label: int) -> dict[str, float]:
    """The cross-entropy loss the trials compile (``sparse_categorical_crossentropy`` on
    outputs taken as probabilities) for one output vector and its true ``label``, and the
    loss's gradient with respect to the true class's output.

    Keras clips the outputs to [1e-7, 1 - 1e-7] and renormalises them before taking the
    log; where an output is clipped its gradient is exactly zero. Taught in *Trial 1*.
    """
    import tensorflow as tf

    outputs = tf.constant([outputs], dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(outputs)
        loss = keras.losses.sparse_categorical_crossentropy(tf.constant([label]), outputs)[0]
    gradient = tape.gradient(loss, outputs)[0]
    return {
        "loss": float(loss),
        "gradient (true class)": float(gradient[label]),
        "largest |gradient|": float(tf.reduce_max(tf.abs(gradient))),
    }
