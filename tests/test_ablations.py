"""wh.ablations: the original exercise's pitfalls, measured."""

from __future__ import annotations

import numpy as np
import pytest

import woofhelpers as wh
from woofhelpers import ablations

# --- the original's reshuffling take/skip split ------------------------------------------------


def test_take_skip_on_the_original_val_folder_sizes_and_leaks():
    paths = [f"val/{i:03d}.JPEG" for i in range(500)]
    report = ablations.take_skip_overlap(paths, batch_size=32, seed=0)
    assert (report.test_batches, report.test_size, report.validation_size) == (3, 96, 404)
    assert report.test_in_validation > 0 and report.test_changed > 0
    assert report.test_seen_across_passes == 2 * 96 - (96 - report.test_changed)
    assert report == ablations.take_skip_overlap(paths, batch_size=32, seed=0)


def test_take_skip_without_reshuffling_would_not_leak(tf):
    # The control: the same take/skip on a dataset read in a fixed order never overlaps.
    paths = np.array([f"{i}" for i in range(100)])
    ds = tf.data.Dataset.from_tensor_slices(paths).batch(10)
    test = {p for b in ds.take(2).as_numpy_iterator() for p in b}
    validation = {p for b in ds.skip(2).as_numpy_iterator() for p in b}
    assert not test & validation
    report = ablations.take_skip_overlap(list(paths), batch_size=10)
    assert report.test_in_validation > 0  # reshuffling is what makes it leak


def test_take_skip_refuses_too_few_batches():
    with pytest.raises(ValueError, match="too few"):
        ablations.take_skip_overlap(["a", "b"], batch_size=32)


# --- the head -------------------------------------------------------------------------------


@pytest.mark.parametrize("size_px", [72, 200])
def test_feature_side_matches_a_real_resnet50(size_px, tf):
    import keras

    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(size_px, size_px, 3))
    assert base.output_shape[1:3] == (ablations.resnet50_feature_side(size_px),) * 2


def test_head_parameters_at_160_px():
    counts = ablations.head_parameters(160)
    assert counts["feature map"] == 5 * 5 * 2048
    assert counts["Flatten + Dense(1000) + Dense(10)"] == 51_200 * 1000 + 1000 + 1000 * 10 + 10
    assert counts["GlobalAveragePooling2D + Dense(10)"] == 2048 * 10 + 10
    with pytest.raises(ValueError, match="at least 32"):
        ablations.head_parameters(16)


# --- the swapped terriers ---------------------------------------------------------------------


def test_the_original_table_misnames_both_terriers(small_dataset):
    split = wh.splits.official(small_dataset)
    found = ablations.misnamed_images(split, "test")
    assert sorted(found["wrong wnids"]) == ["n02093754", "n02096294"]
    terriers = sum(p.split("/")[-2] in ("n02093754", "n02096294") for p in split.parts["test"])
    assert found["misnamed"] == terriers > 0 and found["images"] == len(split.parts["test"])
    imagenet_names = {w: wh.labels.breed(w).name for w in wh.labels.WNIDS}
    assert ablations.misnamed_images(split, "test", imagenet_names)["misnamed"] == 0


def test_swapped_indices_exchange_the_two_terriers_only():
    swapped = list(ablations.swapped_indices())
    expected = list(wh.labels.IMAGENET_INDICES)
    expected[4], expected[5] = expected[5], expected[4]
    assert swapped == expected
    assert ablations.swapped_indices({b.wnid: b.name for b in wh.labels.BREEDS}) == wh.labels.IMAGENET_INDICES


# --- leakage ------------------------------------------------------------------------------------


def test_leakage_sets_are_equal_sized_and_separate_seen_from_unseen(small_dataset):
    split = wh.splits.pooled(small_dataset)
    sets = ablations.leakage_sets(split)
    seen, unseen = sets["ImageNet train (seen)"], sets["ImageNet val (unseen)"]
    assert len(seen) == len(unseen) > 0
    assert not any(wh.catalog.is_imagenet_val(p) for p in seen)
    assert all(wh.catalog.is_imagenet_val(p) for p in unseen)
    assert not set(seen) & set(split.parts["train"]) and not set(unseen) & set(split.parts["train"])
    assert sets == ablations.leakage_sets(split)  # seeded
    with pytest.raises(ValueError, match="only"):
        ablations.leakage_sets(split, size=10_000)


# --- BatchNorm in training mode ---------------------------------------------------------------


def small_bn_model(base_training=None):
    """A nested base with one BatchNormalization layer, and a head."""
    import keras

    base_inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(base_inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    base = keras.Model(base_inputs, keras.layers.GlobalAveragePooling2D()(x), name="base")
    inputs = keras.Input((32, 32, 3))
    features = base(inputs) if base_training is None else base(inputs, training=base_training)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(features))


def drift(split, build, freeze_batchnorm):
    return ablations.batchnorm_drift(
        build, split, image_size_px=32, batch_size=8, steps=2,
        test_paths=split.parts["test"], freeze_batchnorm=freeze_batchnorm, freeze_first=0,
    )  # fmt: skip


@pytest.mark.parametrize("freeze_batchnorm, changed", [(False, 1), (True, 0)])
def test_batchnorm_moves_with_a_zero_learning_rate_unless_frozen(small_dataset, tf, freeze_batchnorm, changed):
    split = wh.splits.official(small_dataset)
    result = drift(split, small_bn_model, freeze_batchnorm)
    assert (result.batchnorm_layers, result.batchnorm_layers_changed) == (1, changed)
    assert result.images == len(split.parts["test"])
    if not changed:
        assert result.predictions_changed == 0 and result.accuracy_before == result.accuracy_after


def test_training_false_at_the_call_does_not_protect_batchnorm_in_keras_3(small_dataset, tf):
    # base(x, training=False), the usual advice from Keras 2, is overridden by fit's
    # training=True in Keras 3: the statistics still move. Freezing the layers is what works.
    split = wh.splits.official(small_dataset)
    result = drift(split, lambda: small_bn_model(base_training=False), freeze_batchnorm=False)
    assert result.batchnorm_layers_changed == 1


def test_the_smoke_stand_in_has_a_nested_base_with_batchnorm(small_dataset, tf):
    split = wh.splits.official(small_dataset)
    result = ablations.batchnorm_drift(
        lambda: ablations.small_batchnorm_model(32), split, image_size_px=32, batch_size=8, steps=1,
        test_paths=split.parts["test"], freeze_batchnorm=False, freeze_first=0,
    )  # fmt: skip
    assert (result.batchnorm_layers, result.batchnorm_layers_changed) == (2, 2)


def test_take_skip_counts_do_not_depend_on_what_set_the_global_seed_before(tf):
    import keras

    paths = [f"f{i}" for i in range(500)]
    keras.utils.set_random_seed(7)
    after_keras_seed = ablations.take_skip_overlap(paths, 32, seed=0)
    tf.random.set_seed(123)
    tf.random.uniform(())  # advance the global generator
    assert ablations.take_skip_overlap(paths, 32, seed=0) == after_keras_seed
