"""Grad-CAM: which parts of an image pushed the model towards a class.

For a convolutional layer with feature maps :math:`A^k` and the score :math:`y^c` of
class :math:`c`, Grad-CAM weighs each map by the average gradient of the score with
respect to it, sums, and keeps the positive part:

.. math:: \\alpha_k = \\frac{1}{HW}\\sum_{i,j} \\frac{\\partial y^c}{\\partial A^k_{ij}}, \\qquad
          L^c = \\mathrm{ReLU}\\Big(\\sum_k \\alpha_k A^k\\Big)

The score :math:`y^c` is the class score *before* the output activation: the logit that
goes into the softmax, as in Selvaraju et al. Through the softmax the gradient of class
:math:`c` is :math:`p_c(\\nabla z_c - \\sum_j p_j \\nabla z_j)`: the map becomes a contrast
with the other classes, and it vanishes where the softmax saturates (once a confident
prediction's probabilities round to 1 and 0 in float32, the map of its own class is all
zeros). For the ReLU output of the original exercise the score is likewise the value
before the ReLU, since after it a negative score has zero gradient everywhere. The model's output layer
can be a layer with an ``activation`` (``Dense``, as in ``wh.model``), a ``Softmax``
layer, or ``wh.baseline``'s layer that keeps ten of ResNet50's 1000 logits.

The map is then divided by its maximum, so it lies in [0, 1]. The original exercise
divided by (max - min), which is a division by zero on a flat map; here a map with
no positive value (a zero gradient, say) stays all zeros, never NaN.

Works for the course's models whether the ResNet50 base is a nested sub-model (one
layer of the outer model) or its layers sit flat in the model.

Taught in the chapter *Grad-CAM* (``chapters/gradcam``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras
    import numpy.typing as npt

DEFAULT_LAYER = "conv5_block3_out"  # ResNet50's last convolutional block


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def conv_layers(model: keras.Model) -> list[str]:
    """Names of the layers, nested sub-models included, whose output is a 4-D feature
    map (batch, height, width, channels): the layers Grad-CAM can explain."""
    names = []
    for layer in model.layers:
        if _is_model(layer):
            names += conv_layers(layer)
            continue
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and layer.__class__.__name__ != "InputLayer":
            names.append(layer.name)
    return names


def _path_to(model, layer_name: str) -> list | None:
    """The chain of nested models leading to the layer, ending with the layer itself."""
    for layer in model.layers:
        if layer.name == layer_name and not _is_model(layer):
            return [layer]
        if _is_model(layer):
            inner = _path_to(layer, layer_name)
            if inner is not None:
                return [layer, *inner]
    return None


class _Capture:
    """While active, keep the output of ``layer`` each time it runs.

    The layer's ``call`` is wrapped for the duration (and restored after), so the same
    code works whether the layer sits flat in the model or inside a nested base model,
    and whatever the graph around it: the model is simply called, eagerly, under a
    ``GradientTape`` that sees the captured tensor.
    """

    def __init__(self, layer):
        self.layer = layer
        self.output = None

    def __enter__(self):
        original = self.layer.call

        def call(*args, **kwargs):
            self.output = original(*args, **kwargs)
            return self.output

        self.layer.call = call
        return self

    def __exit__(self, *exc):
        del self.layer.call  # the class's own call shows through again
        return False


# wh.baseline's output layer (registered under this name): a softmax over ten of the
# 1000 logits of ResNet50's own classifier. Named, not imported: gradcam sits above baseline.
_RESTRICT_NAME = "woofhelpers>RestrictToClasses"


def _output_layer(model):
    """The layer that computes the model's output, looked up inside nested models."""
    layer = model.layers[-1]  # a one-output functional or Sequential model ends in it
    return _output_layer(layer) if _is_model(layer) else layer


class _Logits:
    """While active, keep the class scores before the output activation (the logits).

    - a layer with an ``activation`` (``Dense``): the activation is wrapped, so the scores
      are its input, whatever the activation (softmax, ReLU or none);
    - a ``Softmax`` layer: its input;
    - ``wh.baseline``'s restricting layer: its kept columns of the 1000 ImageNet logits.

    The model computes exactly what it always does; only its scores are kept on the way.
    Any other output layer is refused with a ``ValueError``.
    """

    def __init__(self, model):
        import keras

        self.layer = _output_layer(model)
        self.logits = None
        if keras.saving.get_registered_name(type(self.layer)) == _RESTRICT_NAME:
            indices = list(self.layer.indices)
            self._kind, self._keep = "call", lambda inputs: keras.ops.take(inputs, indices, axis=-1)
        elif isinstance(self.layer, keras.layers.Softmax):
            self._kind, self._keep = "call", lambda inputs: inputs
        elif callable(getattr(self.layer, "activation", None)):
            self._kind = "activation"
        else:
            raise ValueError(
                f"Grad-CAM differentiates the class scores before the output activation, and cannot find"
                f" them in the output layer {self.layer.name!r} ({type(self.layer).__name__}) of model"
                f" {model.name!r}; end the model in a layer with an activation (such as Dense) or a Softmax layer"
            )

    def __enter__(self):
        self._original = getattr(self.layer, self._kind)
        if self._kind == "activation":

            def activation(scores):
                self.logits = scores
                return self._original(scores)

            self.layer.activation = activation
        else:

            def call(inputs, *args, **kwargs):
                self.logits = self._keep(inputs)
                return self._original(inputs, *args, **kwargs)

            self.layer.call = call
        return self

    def __exit__(self, *exc):
        if self._kind == "activation":
            self.layer.activation = self._original
        else:
            del self.layer.call  # the class's own call shows through again
        return False


def heatmap(
    model: keras.Model, image: npt.ArrayLike, layer_name: str = DEFAULT_LAYER, class_index: int | None = None
) -> np.ndarray:
    """The Grad-CAM map of ``image`` for ``class_index`` (default: the predicted class,
    the argmax of the model's output).

    ``image`` is one image as the model takes it, float32 of shape (height, width, 3)
    (or a batch of one). The score differentiated is the class score before the output
    activation: the logit before a softmax, and the value before a ReLU (after the ReLU
    a negative score has zero gradient, and its map would be all zeros whatever the
    image). Returns float32 of shape (map height, map width) with values in [0, 1]; all
    zeros when no location raises the class's score. Raises ``ValueError`` listing the
    convolutional layers when ``layer_name`` is not one of them.
    """
    batch = np.asarray(image, dtype=np.float32)
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[0] != 1:
        raise ValueError(f"heatmap explains one image of shape (height, width, 3); got shape {np.shape(image)}")
    return heatmaps(model, batch, layer_name, None if class_index is None else [class_index])[0]


def heatmaps(
    model: keras.Model,
    images: npt.ArrayLike,
    layer_name: str = DEFAULT_LAYER,
    class_indices: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """:func:`heatmap` for a batch of images in one forward and backward pass: ``images``
    of shape (n, height, width, 3), ``class_indices`` one class per image (default: each
    image's predicted class). Returns float32 of shape (n, map height, map width).

    The model runs in inference mode, so each image's map depends on that image alone.
    The default classes are the argmax of the model's output; the scores differentiated
    are those before its output activation (see :func:`heatmap`).
    """
    import tensorflow as tf

    batch = np.asarray(images, dtype=np.float32)
    if batch.ndim != 4 or batch.shape[0] < 1:
        raise ValueError(f"heatmaps needs images of shape (n, height, width, 3); got shape {np.shape(images)}")
    path = _path_to(model, layer_name)
    if path is None or layer_name not in conv_layers(model):
        raise ValueError(
            f"no convolutional layer named {layer_name!r} in model {model.name!r}; the layers with a"
            f" 4-D feature map are: {', '.join(conv_layers(model)) or 'none'}"
        )
    logits = _Logits(model)  # refuses an output layer without reachable logits, before any work
    inputs = tf.constant(batch)
    with tf.GradientTape() as tape, _Capture(path[-1]) as capture, logits:
        output = model(inputs, training=False)
        feature_map = capture.output
        scores = logits.logits  # (n, classes): the class scores before the output activation
        chosen = np.asarray(tf.argmax(output, axis=-1)) if class_indices is None else np.asarray(class_indices)
        if chosen.shape != (batch.shape[0],):
            raise ValueError(f"need one class index per image ({batch.shape[0]}), got {chosen.shape[0]}")
        if ((chosen < 0) | (chosen >= output.shape[-1])).any():
            raise ValueError(f"class_index {chosen.tolist()} out of range: the model has {output.shape[-1]} outputs")
        # The sum of each image's own class score: its gradient for image i is that of score i.
        score = tf.reduce_sum(tf.gather(scores, chosen.astype(np.int32), axis=1, batch_dims=1))
    gradients = tape.gradient(score, feature_map)
    if gradients is None:  # the score does not depend on this layer at all
        gradients = tf.zeros_like(feature_map)
    weights = tf.reduce_mean(tf.cast(gradients, tf.float32), axis=(1, 2))  # (n, channels)
    cams = tf.nn.relu(tf.einsum("bhwc,bc->bhw", tf.cast(feature_map, tf.float32), weights)).numpy()
    tops = cams.max(axis=(1, 2), keepdims=True)
    return np.where(tops > 0, cams / np.where(tops > 0, tops, 1), 0).astype(np.float32)


def overlay(image: npt.ArrayLike, heatmap: np.ndarray, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend a heatmap, resized to the image and coloured with ``colormap``, over the image.

    ``image`` has values 0-255, shape (height, width, 3) (or (height, width));
    returns uint8 of shape (height, width, 3).
    """
    import matplotlib
    from PIL import Image

    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha}: must be between 0 and 1")
    picture = np.asarray(image, dtype=np.float32)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    height, width = picture.shape[:2]
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32)), 0, 1)
    resized = np.asarray(Image.fromarray(heat).resize((width, height), Image.BILINEAR))
    coloured = matplotlib.colormaps[colormap](np.clip(resized, 0, 1))[..., :3] * 255
    return np.clip((1 - alpha) * picture + alpha * coloured, 0, 255).astype(np.uint8)


def mass_in(heatmap: np.ndarray, rows: slice = slice(None), columns: slice = slice(None)) -> float:
    """Share of a heatmap's total that lies in the given rows and columns (0 for an empty map)."""
    heat = np.asarray(heatmap, dtype=np.float64)
    total = heat.sum()
    return float(heat[rows, columns].sum() / total) if total > 0 else 0.0
