"""The network's features: the two things every trial predicts with one graph.

A frozen base's output never changes during the head phase, so the engine runs the base
once over the training and validation images and trains the head on those features
(:func:`feature_datasets`): the same head, far faster. It also tests the finished model
through the same :func:`probe` (one prediction graph per trial instead of two; each
takes seconds to trace for a ResNet50). Each epoch's data order depends only on the seed
and the epoch number (:func:`image_datasets`), so a resumed run sees the same batches as
one that was never interrupted.

Used by :func:`woofhelpers.trials.run_trial`; taught in *Trial 1* (cached features).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from woofhelpers import evaluate, pipeline
from woofhelpers import model as model_lib

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from woofhelpers.recipes import Trial
    from woofhelpers.splits import Split


def fixed(trial: Trial, split: Split, part: str) -> tf.data.Dataset:
    """The images of one part of ``split`` in manifest order, batched as ``trial`` says."""
    return pipeline.dataset(split, part, image_size_px=trial.image_size_px, batch_size=trial.batch_size, shuffle=False)


def image_datasets(trial: Trial, split: Split) -> tuple[Callable[[int], tf.data.Dataset], tf.data.Dataset]:
    """Train (as a function of the epoch) and validation datasets of images."""

    def train(epoch: int):
        return pipeline.dataset(
            split,
            "train",
            image_size_px=trial.image_size_px,
            batch_size=trial.batch_size,
            shuffle=True,
            augment=trial.augment,
            seed=trial.seed + epoch,
        )

    return train, fixed(trial, split, "validation")


def probe(model: keras.Model) -> keras.Model:
    """A view of ``model`` (same layers, same weights) with two outputs: the base's output
    features and the model's predictions. The engine predicts with it both to extract the
    head's features and to test the model, so TensorFlow builds one prediction graph per
    trial instead of two (each takes seconds to trace for a ResNet50)."""
    import keras

    # The base's output inside ``model`` is the input of the head's first layer.
    first_head_layer = model.layers[model.layers.index(model_lib.base_of(model)) + 1]
    return keras.Model(model.input, [first_head_layer.input, model.output], name=f"{model.name}_probe")


def predict_part(probe_model: keras.Model, split: Split, part: str, trial: Trial) -> list[np.ndarray]:
    """The probe's two outputs (features, predictions) for one part of ``split``."""
    return probe_model.predict(fixed(trial, split, part).map(lambda x, y: x), verbose=0)


def feature_datasets(
    probe_model: keras.Model, trial: Trial, split: Split
) -> tuple[Callable[[int], tf.data.Dataset], tf.data.Dataset]:
    """Compute the base's output (after preprocessing) once for train and validation, and
    return (train-by-epoch, validation) datasets of features in the same order as the
    image datasets: both shuffle the manifest order with the same seed and buffer."""
    import tensorflow as tf

    train_x, train_y = predict_part(probe_model, split, "train", trial)[0], split.labels("train")
    val_x, val_y = predict_part(probe_model, split, "validation", trial)[0], split.labels("validation")

    def train(epoch: int):
        ds = tf.data.Dataset.from_tensor_slices((train_x, train_y))
        return ds.shuffle(len(train_y), seed=trial.seed + epoch, reshuffle_each_iteration=True).batch(trial.batch_size)

    return train, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(trial.batch_size)


def test(probe_model: keras.Model, split: Split, trial: Trial) -> tuple[dict, dict]:
    """The model's accuracy, loss (:func:`woofhelpers.evaluate.cross_entropy`) and number
    of images on the test part of ``split``, and what a result saves of it: each test
    file (relative to the dataset's folder), its label and the output probabilities."""
    probabilities = np.asarray(predict_part(probe_model, split, "test", trial)[1], dtype=np.float32)
    labels = split.labels("test")
    metrics = {
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "loss": float(np.mean(evaluate.cross_entropy(labels, probabilities))),
        "n": int(len(labels)),
    }
    saved = {
        "files": list(split.parts["test"]),
        "labels": labels.tolist(),
        "probabilities": np.round(probabilities, 6).tolist(),
    }
    return metrics, saved
