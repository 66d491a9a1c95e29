"""The zero-training baseline: ResNet50 with its own ImageNet classifier, no training at all.

ImageNet-1k already has the ten Imagewoof breeds among its 1000 classes
(``wh.labels.IMAGENET_INDICES``). Keep only those ten outputs and the network is a
ten-breed classifier before we train anything. Its accuracy is the number every
trained model has to beat.

In the full profile the network has its ImageNet weights (downloaded by Keras, or
Keras' file named by ``WOOF_WEIGHTS``). In the smoke profile (``weights=None``), or
with stand-in weights, the very same code runs on a network that knows no dogs, whose
accuracy means nothing: :func:`describe` says which.

Taught in the chapter *Results* (``chapters/results``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from woofhelpers import hardware, labels, profiles

if TYPE_CHECKING:
    import keras

    from woofhelpers.evaluate import Predictions

# ResNet50's ImageNet classifier was trained on 224 x 224 crops.
IMAGENET_SIZE_PX = 224


def _restrict_layer_class():
    import keras

    @keras.saving.register_keras_serializable(package="woofhelpers")
    class RestrictToClasses(keras.layers.Layer):
        """Keep the given columns of a 1000-way logit vector and turn them into
        probabilities over those classes only (a softmax over the kept logits)."""

        def __init__(self, indices, **kwargs):
            super().__init__(**kwargs)
            self.indices = [int(i) for i in indices]

        def call(self, logits):
            kept = keras.ops.take(logits, self.indices, axis=-1)
            return keras.ops.softmax(kept, axis=-1)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], len(self.indices))

        def get_config(self):
            return {**super().get_config(), "indices": self.indices}

    return RestrictToClasses


_RESTRICT = None


def restrict_to_classes(
    indices: Sequence[int] = labels.IMAGENET_INDICES, name: str = "restrict_to_breeds"
) -> keras.layers.Layer:
    """A Keras layer that keeps the logits at ``indices`` and applies a softmax over them."""
    global _RESTRICT
    if _RESTRICT is None:
        _RESTRICT = _restrict_layer_class()
    bad = [i for i in indices if not 0 <= int(i) < 1000]
    if bad:
        raise ValueError(f"ImageNet-1k indices must be 0-999; got {bad}")
    return _RESTRICT(indices, name=name)


def image_size_px(profile: profiles.Profile) -> int:
    """224 px with ImageNet weights (what the classifier was trained on); the profile's
    small size otherwise (an untrained network accepts any size from 32 px)."""
    if profile.imagenet_weights:
        return IMAGENET_SIZE_PX
    return profile.image_size_px or IMAGENET_SIZE_PX


def _imagenet_logits(profile: profiles.Profile, size_px: int | None, preprocess: bool):
    """ResNet50 with its 1000-way classifier, as ``(inputs, logits)`` of a functional model:
    input float32 (batch, size, size, 3) with values 0-255, output 1000 logits."""
    import keras

    size_px = size_px or image_size_px(profile)
    # Without ImageNet weights the network starts random: seed it, so that the same
    # profile always builds the same network.
    with hardware.seeded(profile.seed):
        inputs = keras.Input((size_px, size_px, 3), name="image")
        x = keras.applications.resnet50.preprocess_input(inputs) if preprocess else inputs
        resnet = keras.applications.ResNet50(
            include_top=True,
            weights=profiles.weights_file(profile, include_top=True),
            input_shape=(size_px, size_px, 3),
            classifier_activation=None,
        )
        return inputs, resnet(x)


def model(
    profile: profiles.Profile,
    *,
    size_px: int | None = None,
    preprocess: bool = True,
    indices: Sequence[int] = labels.IMAGENET_INDICES,
) -> keras.Model:
    """ResNet50 *with* its 1000-way classifier (``include_top=True``), restricted to the
    ten breeds: input float32 (batch, size, size, 3) with values 0-255, output ten
    probabilities in the order of ``wh.labels.CLASS_NAMES``.

    Weights come from the profile: ImageNet in the full profile (or Keras' file with the
    classifier, beside the file ``WOOF_WEIGHTS`` names), none in the smoke one.
    The ablations switch off ``preprocess`` (feed raw 0-255 pixels, as the original
    exercise did) or pass other ImageNet ``indices`` (the original's swapped terriers).
    """
    import keras

    inputs, logits = _imagenet_logits(profile, size_px, preprocess)
    outputs = restrict_to_classes(indices)(logits)
    return keras.Model(inputs, outputs, name="resnet50_zero_training")


def imagenet_classifier(profile: profiles.Profile, *, size_px: int | None = None) -> keras.Model:
    """The same network as :func:`model`, all 1000 ImageNet classes kept: input float32
    (batch, size, size, 3) with values 0-255, output 1000 probabilities (a softmax over
    ImageNet-1k). ``wh.predict`` asks it whether a photo shows a dog at all."""
    import keras

    inputs, logits = _imagenet_logits(profile, size_px, True)
    outputs = keras.layers.Softmax(name="imagenet_probabilities")(logits)
    return keras.Model(inputs, outputs, name="resnet50_imagenet")


def describe(profile: profiles.Profile) -> str:
    """One sentence saying what the baseline's accuracy means under ``profile``."""
    if profile.imagenet_weights:
        return (
            "Zero-training baseline: ResNet50 with its ImageNet weights and classifier,"
            f" restricted to the ten breeds, at {image_size_px(profile)} px; nothing was trained."
        )
    if profile.pretrained:
        return (
            "Zero-training baseline, REHEARSAL: the same code on ResNet50 with STAND-IN weights"
            f" from {profiles.weights_file(profile, include_top=True)} ({image_size_px(profile)} px),"
            " not ImageNet's, so its accuracy is not a result."
        )
    return (
        "Zero-training baseline, SMOKE RUN: the same code on an UNTRAINED ResNet50"
        f" (weights=None, {image_size_px(profile)} px), so its accuracy is chance, not a result."
    )


def without_preprocessing(model: keras.Model) -> keras.Model:
    """The same network (shared layers, no copy) fed raw 0-255 pixels, as the original
    exercise did: ``resnet50.preprocess_input`` left out."""
    import keras

    resnet = model.get_layer("resnet50")
    restrict = model.get_layer("restrict_to_breeds")
    inputs = keras.Input(model.input_shape[1:], name="raw_image")
    return keras.Model(inputs, restrict(resnet(inputs)), name="resnet50_zero_training_no_preprocessing")


def reorder(predictions: Predictions, indices: Sequence[int]) -> Predictions:
    """Predictions whose class columns follow other ImageNet ``indices``: what the same
    network would report if each label were looked up under another breed name (the
    original's swapped terriers). Each index in ``indices`` must be one of the ten."""
    import dataclasses

    position = {index: column for column, index in enumerate(labels.IMAGENET_INDICES)}
    unknown = [i for i in indices if i not in position]
    if unknown or len(indices) != len(position):
        raise ValueError(f"indices must be a reordering of {labels.IMAGENET_INDICES}; got {tuple(indices)}")
    columns = [position[i] for i in indices]
    return dataclasses.replace(predictions, scores=predictions.scores[:, columns])
