"""wh.baseline: ResNet50's ImageNet classifier restricted to the ten breeds."""

import numpy as np
import pytest

import woofhelpers as wh
from woofhelpers import baseline


def test_restriction_keeps_the_breeds_imagenet_columns_in_label_order(tf):
    layer = baseline.restrict_to_classes()
    logits = np.zeros((10, 1000), np.float32)
    for label, index in enumerate(wh.labels.IMAGENET_INDICES):
        logits[label, index] = 20.0
    logits[:, 0] = 50.0  # a huge logit for a class that is not a dog breed is ignored
    probabilities = layer(logits).numpy()
    assert probabilities.shape == (10, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), np.arange(10))
    # Border terrier is ImageNet's 182 and label 4, not the original exercise's swapped name
    assert wh.labels.CLASS_NAMES[4] == "Border terrier" and wh.labels.IMAGENET_INDICES[4] == 182


def test_restriction_refuses_indices_outside_imagenet():
    with pytest.raises(ValueError, match="0-999"):
        baseline.restrict_to_classes([5, 1000])


def test_smoke_baseline_is_an_untrained_resnet50_with_ten_outputs(tf, clean_woof_env):
    profile = wh.profiles.load("smoke", image_size_px=32)
    model = baseline.model(profile)
    assert model.output_shape == (None, 10)
    assert wh.evaluate.check_output_size(model) == 10
    resnet = model.get_layer("resnet50")
    assert resnet.output_shape == (None, 1000)  # the whole ImageNet classifier is there
    out = model(np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)
    assert "SMOKE RUN" in baseline.describe(profile) and "UNTRAINED" in baseline.describe(profile)


def test_full_profile_uses_224_px_and_says_nothing_was_trained(clean_woof_env):
    full = wh.profiles.load("full")
    assert baseline.image_size_px(full) == 224
    assert "ImageNet weights" in baseline.describe(full) and "SMOKE" not in baseline.describe(full)
    assert baseline.image_size_px(wh.profiles.load("smoke")) == 64


def test_without_preprocessing_shares_the_network_and_differs_only_in_the_input(tf, clean_woof_env):
    model = baseline.model(wh.profiles.load("smoke", image_size_px=32))
    raw = baseline.without_preprocessing(model)
    assert raw.get_layer("resnet50") is model.get_layer("resnet50")
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    import keras

    preprocessed = keras.applications.resnet50.preprocess_input(image.copy())
    np.testing.assert_allclose(raw(preprocessed).numpy(), model(image).numpy(), rtol=1e-4, atol=1e-6)


def test_reorder_with_swapped_terriers_swaps_their_columns():
    scores = np.tile(np.arange(10, dtype=np.float32), (2, 1))
    p = wh.evaluate.Predictions(("a", "b"), np.array([4, 5]), scores)
    swapped = baseline.reorder(p, wh.ablations.swapped_indices())
    assert list(swapped.scores[0]) == [0, 1, 2, 3, 5, 4, 6, 7, 8, 9]
    assert list(baseline.reorder(p, wh.labels.IMAGENET_INDICES).scores[0]) == list(range(10))
    with pytest.raises(ValueError, match="reordering"):
        baseline.reorder(p, (1, 2, 3))


def test_the_untrained_baseline_is_the_same_network_every_time(tf, clean_woof_env):
    profile = wh.profiles.load("smoke", image_size_px=32)
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    first = baseline.model(profile)(image).numpy()
    np.testing.assert_array_equal(baseline.model(profile)(image).numpy(), first)
    other_seed = baseline.model(wh.profiles.load("smoke", image_size_px=32, seed=1))(image).numpy()
    assert not np.array_equal(other_seed, first)
