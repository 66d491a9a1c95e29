"""Ablations that measure the original exercise's pitfalls instead of asserting them.

:func:`take_skip_overlap` rebuilds the original's "test" split: one dataset that
reshuffles every time it is read, its first ``n_batches // 5`` batches taken as
"test" and the rest skipped to as "validation". It carries file paths through the
pipeline instead of pixels, so it costs nothing to run and counts exactly which
"test" images the validation pass also saw.

Taught in the chapter *Results* (``chapters/results``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from woofhelpers import catalog, hardware, labels, original, splits
from woofhelpers.splits import Split

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


@dataclass(frozen=True)
class TakeSkipReport:
    """What two passes over a reshuffling take/skip split saw."""

    images: int
    batch_size: int
    test_batches: int
    test_size: int  # images in one pass over "test"
    validation_size: int  # images in one pass over "validation"
    test_in_validation: int  # images of the first "test" pass seen again by a "validation" pass
    test_changed: int  # images of the first "test" pass missing from the second "test" pass
    test_seen_across_passes: int  # distinct images "test" showed across both passes

    def rows(self) -> dict[str, int]:
        """The report as ``{description: count}``, for a table."""
        return {
            "images in the pool": self.images,
            "batch size": self.batch_size,
            "'test' batches (n_batches // 5)": self.test_batches,
            "'test' images per pass": self.test_size,
            "'validation' images per pass": self.validation_size,
            "'test' images (pass 1) also in 'validation' (pass 2)": self.test_in_validation,
            "'test' images (pass 1) gone from 'test' (pass 2)": self.test_changed,
            "distinct images 'test' showed in 2 passes": self.test_seen_across_passes,
        }


def reshuffling_dataset(paths: list[str] | tuple[str, ...], batch_size: int, seed: int | None = 0) -> tf.data.Dataset:
    """A ``tf.data`` dataset of batches of file paths that reshuffles on every pass,
    as ``keras.utils.image_dataset_from_directory(shuffle=True)`` builds it: the file
    list shuffled once, then a ``shuffle`` with a buffer of ``batch_size * 8`` that
    reshuffles each iteration, then batching. With a ``seed``, the dataset is built under
    that global seed (:func:`woofhelpers.hardware.seeded`), so its order does not depend on
    what ran before; ``None`` gives a different order every time."""
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    if not paths:
        raise ValueError("no paths to split")
    order = np.array(paths, dtype=str)
    np.random.default_rng(seed).shuffle(order)
    # A shuffle's order depends on TensorFlow's global seed too, read when the op is made.
    with hardware.seeded(seed) if seed is not None else contextlib.nullcontext():
        ds = tf.data.Dataset.from_tensor_slices(order)
        ds = ds.shuffle(buffer_size=batch_size * 8, seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size)


def _one_pass(ds) -> list[str]:
    return [p.decode() for batch in ds.as_numpy_iterator() for p in batch]


def take_skip_overlap(paths: list[str] | tuple[str, ...], batch_size: int = 32, seed: int | None = 0) -> TakeSkipReport:
    """Measure the original's test split: ``test = ds.take(n // 5)``, ``validation =
    ds.skip(n // 5)`` of one reshuffling dataset ``ds`` of ``paths``.

    Reads "test" once, "validation" once (as ``fit`` does at the end of an epoch),
    then "test" again (as a second ``evaluate`` would), and counts by file path how
    many first-pass "test" images the validation pass saw and how many the second
    "test" pass no longer holds.
    """
    ds = reshuffling_dataset(paths, batch_size, seed)
    n_batches = int(np.ceil(len(paths) / batch_size))
    test_batches = n_batches // 5
    if test_batches == 0:
        raise ValueError(f"{len(paths)} images in batches of {batch_size} make {n_batches} batches: too few for n // 5")
    test_ds, validation_ds = ds.take(test_batches), ds.skip(test_batches)
    test_first = _one_pass(test_ds)
    validation = _one_pass(validation_ds)
    test_second = _one_pass(test_ds)
    first = set(test_first)
    return TakeSkipReport(
        images=len(paths),
        batch_size=batch_size,
        test_batches=test_batches,
        test_size=len(test_first),
        validation_size=len(validation),
        test_in_validation=len(first & set(validation)),
        test_changed=len(first - set(test_second)),
        test_seen_across_passes=len(first | set(test_second)),
    )


# --- the head: Flatten + Dense(1000) against global average pooling ---------------------------


def resnet50_feature_side(image_size_px: int) -> int:
    """Side of ResNet50's last feature map for a square input: the input shrinks by 32,
    rounding up at each stride (160 px -> 5, 200 px -> 7, 224 px -> 7)."""
    if image_size_px < catalog.MIN_IMAGE_SIZE_PX:
        raise ValueError(f"image_size_px={image_size_px}: ResNet50 needs at least {catalog.MIN_IMAGE_SIZE_PX}")
    return -(-image_size_px // 32)


def head_parameters(image_size_px: int, classes: int = 10) -> dict[str, int]:
    """Trainable weights of the original head (``Flatten -> Dense(1000, relu) ->
    Dense(classes)``) and of a pooling head (``GlobalAveragePooling2D -> Dense(classes)``)
    on ResNet50's 2048-channel feature map at ``image_size_px``, counted by Keras."""
    import keras

    side = resnet50_feature_side(image_size_px)
    features = (side, side, 2048)
    original = keras.Sequential(
        [
            keras.Input(features),
            keras.layers.Flatten(),
            keras.layers.Dense(1000, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )
    pooling = keras.Sequential(
        [keras.Input(features), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes)]
    )
    return {
        "feature map": side * side * 2048,
        "Flatten + Dense(1000) + Dense(10)": original.count_params(),
        "GlobalAveragePooling2D + Dense(10)": pooling.count_params(),
    }


# --- the swapped terrier labels -----------------------------------------------------------


def misnamed_images(split: Split, part: str = "test", table: dict[str, str] | None = None) -> dict[str, object]:
    """How many images of ``part`` a breed-name ``table`` (default: the original exercise's)
    names wrongly, judged by ImageNet's synsets: the count, the total, and the wnids."""
    table = original.LABELS if table is None else table
    wrong = [row["wnid"] for row in labels.check_against_imagenet(table) if not row["agrees"]]
    paths = split.parts[part]
    misnamed = sum(catalog.class_of(p) in wrong for p in paths)
    return {"images": len(paths), "misnamed": misnamed, "wrong wnids": wrong}


def swapped_indices(table: dict[str, str] | None = None) -> tuple[int, ...]:
    """The ImageNet index each label would get if the breed names of ``table`` (default: the
    original's) were looked up in ImageNet: with the original table the two terriers swap."""
    table = original.LABELS if table is None else table
    by_name = {b.name: b.imagenet_index for b in labels.BREEDS}
    indices = []
    for wnid in labels.WNIDS:
        given = table[wnid]
        match = [index for name, index in by_name.items() if labels.same_breed(name, given)]
        if len(match) != 1:
            raise ValueError(f"breed name {given!r} for {wnid} matches {len(match)} Imagewoof breeds, not one")
        indices.append(match[0])
    return tuple(indices)


# --- ImageNet leakage -------------------------------------------------------------------------


def leakage_sets(split: Split, size: int | None = None, seed: int = 0) -> dict[str, tuple[str, ...]]:
    """Two test sets of the same size for a pretrained network: files it trained on
    (ImageNet training images from ``split``'s held-out parts, validation and test) and
    files it never saw (:func:`woofhelpers.splits.leakage_free_test`). ``size`` defaults
    to the smaller of the two pools; each set is a seeded random sample, sorted."""
    unseen_pool = tuple(splits.leakage_free_test(split))
    held_out = split.parts["validation"] + split.parts["test"]
    seen_pool = tuple(p for p in held_out if not catalog.is_imagenet_val(p))
    if not unseen_pool or not seen_pool:
        raise ValueError(
            f"split {split.name!r} needs held-out ImageNet training images ({len(seen_pool)}) and"
            f" unseen ImageNet validation images ({len(unseen_pool)}); use the pooled split"
        )
    size = min(len(unseen_pool), len(seen_pool)) if size is None else size
    if size > min(len(unseen_pool), len(seen_pool)):
        raise ValueError(f"size={size}, but only {len(seen_pool)} seen and {len(unseen_pool)} unseen files exist")
    rng = np.random.default_rng(seed)

    def sample(pool):
        return tuple(sorted(rng.choice(np.array(pool), size=size, replace=False).tolist()))

    return {"ImageNet train (seen)": sample(seen_pool), "ImageNet val (unseen)": sample(unseen_pool)}


# --- BatchNorm in training mode during fine-tuning --------------------------------------------


@dataclass(frozen=True)
class BatchNormDrift:
    """What fine-tuning with a learning rate of zero did to a model's test predictions."""

    freeze_batchnorm: bool
    steps: int
    batchnorm_layers_changed: int
    batchnorm_layers: int
    predictions_changed: int
    images: int
    accuracy_before: float
    accuracy_after: float


def _batchnorm_layers(model) -> list:
    import keras

    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _batchnorm_stats(model) -> list[np.ndarray]:
    return [
        np.concatenate([np.ravel(layer.moving_mean.numpy()), np.ravel(layer.moving_variance.numpy())])
        for layer in _batchnorm_layers(model)
    ]


def batchnorm_drift(
    build: Callable[[], keras.Model],
    split: Split,
    *,
    image_size_px: int,
    batch_size: int,
    steps: int,
    test_paths: tuple[str, ...],
    freeze_batchnorm: bool,
    freeze_first: int = 100,
    seed: int = 0,
) -> BatchNormDrift:
    """Fine-tune as the original did, but with a learning rate of **zero**, and count what changed.

    ``build()`` returns a fresh model holding one nested base model (e.g.
    :func:`woofhelpers.baseline.model`). As in the original, the base is made trainable
    except its first ``freeze_first`` layers; with ``freeze_batchnorm`` its
    BatchNormalization layers stay frozen too. It is compiled with ``RMSprop(0.0)`` and
    fitted for ``steps`` batches of ``split``'s training part. No weight can move; only
    the moving statistics of trainable BatchNorm layers, which Keras 3 runs in training
    mode during ``fit`` (a ``training=False`` written where the base is called does not
    stop it: ``fit``'s ``training=True`` is passed down; freezing the layer does).
    Returns how many BatchNorm layers and how many test predictions changed.
    """
    import keras

    if steps < 1:
        raise ValueError(f"steps={steps}: must be at least 1")
    with hardware.seeded(seed):  # the build and the batches drawn are the same on every run
        model = build()
        bases = [layer for layer in model.layers if isinstance(layer, keras.Model)]
        if len(bases) != 1:
            raise ValueError(f"model {model.name!r} must hold exactly one nested base model, found {len(bases)}")
        base = bases[0]
        base.trainable = True
        for layer in base.layers[:freeze_first]:
            layer.trainable = False
        if freeze_batchnorm:
            for layer in _batchnorm_layers(base):
                layer.trainable = False
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.0), loss="sparse_categorical_crossentropy")

        from woofhelpers import evaluate, pipeline

        before = evaluate.predict(
            model, split, "test", image_size_px=image_size_px, batch_size=batch_size, paths=test_paths
        )
        stats_before = _batchnorm_stats(model)
        train_ds = pipeline.dataset(split, "train", image_size_px=image_size_px, batch_size=batch_size, seed=seed)
        model.fit(train_ds.take(steps), epochs=1, shuffle=False, verbose=0)
        after = evaluate.predict(
            model, split, "test", image_size_px=image_size_px, batch_size=batch_size, paths=test_paths, verbose=False
        )
        stats_after = _batchnorm_stats(model)
        changed = sum(not np.array_equal(a, b) for a, b in zip(stats_before, stats_after, strict=True))
        return BatchNormDrift(
            freeze_batchnorm=freeze_batchnorm,
            steps=steps,
            batchnorm_layers_changed=changed,
            batchnorm_layers=len(stats_before),
            predictions_changed=int((before.predicted != after.predicted).sum()),
            images=len(before),
            accuracy_before=float(before.correct.mean()),
            accuracy_after=float(after.correct.mean()),
        )


def small_batchnorm_model(image_size_px: int = 64, seed: int = 0) -> keras.Model:
    """A small stand-in for the smoke profile: a nested base of two convolutions, each
    followed by BatchNormalization, and a softmax head of ten. :func:`batchnorm_drift` on
    ResNet50 takes minutes on a CPU; on this it takes seconds and shows the same mechanism."""
    import keras

    with hardware.seeded(seed):
        base_inputs = keras.Input((image_size_px, image_size_px, 3))
        x = keras.layers.Rescaling(1 / 255)(base_inputs)
        for filters in (8, 16):
            x = keras.layers.Conv2D(filters, 3, strides=2, activation="relu")(x)
            x = keras.layers.BatchNormalization()(x)
        base = keras.Model(base_inputs, keras.layers.GlobalAveragePooling2D()(x), name="small_base")
        inputs = keras.Input((image_size_px, image_size_px, 3))
        return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(base(inputs)), name="small_bn_model")
