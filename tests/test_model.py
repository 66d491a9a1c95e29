"""The trial network: heads, preprocessing switch, fine-tuning schemes, mixed precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from woofhelpers import model as model_lib
from woofhelpers import trials


def small(name="m", **changes):
    return trials.variant(trials.get("trial2"), name, image_size_px=32, **changes)


def test_the_original_head_at_160_px_has_about_51_million_weights():
    net = model_lib.build(trials.get("trial2"))
    assert net.get_layer("head_flatten").input.shape[1:] == (5, 5, 2048)
    head = sum(w.numpy().size for name in ("head_dense", "predictions") for w in net.get_layer(name).weights)
    assert head == 5 * 5 * 2048 * 1000 + 1000 + 1000 * 10 + 10  # 51,211,010
    assert net.get_layer("predictions").activation.__name__ == "softmax"
    assert model_lib.trainable_summary(net)["trainable base layers"] == 0  # frozen for the head phase


def test_the_corrected_head_pools_and_the_base_stays_reachable_for_grad_cam():
    net = model_lib.build(small(head="corrected", preprocessing="resnet50"))
    assert [layer.name for layer in net.layers[-3:]] == ["head_pool", "head_dropout", "predictions"]
    assert net.layers[1].name == "preprocess"
    base = model_lib.base_of(net)
    assert base.get_layer(model_lib.LAST_CONV_LAYER).output.shape[-1] == 2048
    assert net.count_params() - base.count_params() == 2048 * 10 + 10


def test_preprocessing_inside_the_model_matches_keras_and_survives_save_and_load(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, size=(2, 8, 8, 3)).astype("float32")
    inputs = keras.Input((8, 8, 3))
    net = keras.Model(inputs, model_lib.ResNet50Preprocess()(inputs))
    expected = keras.applications.resnet50.preprocess_input(images.copy())
    np.testing.assert_allclose(net.predict(images, verbose=0), expected, rtol=1e-6)
    net.save(tmp_path / "pre.keras")
    loaded = keras.models.load_model(tmp_path / "pre.keras")
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, rtol=1e-6)


def test_the_original_scheme_cuts_at_base_layer_100_and_trains_batchnorm():
    net = model_lib.build(small())
    model_lib.unfreeze(net, "original")
    base = model_lib.base_of(net)
    assert not any(layer.trainable for layer in base.layers[:100])
    assert all(layer.trainable for layer in base.layers[100:])
    summary = model_lib.trainable_summary(net)
    assert summary["BatchNorm layers in training mode"] > 0


def test_the_corrected_scheme_opens_the_top_stage_with_batchnorm_frozen():
    net = model_lib.build(small())
    model_lib.unfreeze(net, "corrected")
    base = model_lib.base_of(net)
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert trainable and all(name.startswith("conv5_") and not name.endswith("_bn") for name in trainable)
    assert model_lib.trainable_summary(net)["BatchNorm layers in training mode"] == 0


@pytest.mark.parametrize("scheme, moves", [("original", True), ("corrected", False)])
def test_batchnorm_statistics_move_only_under_the_original_scheme(scheme, moves):
    keras.utils.set_random_seed(0)
    net = model_lib.build(small(head="corrected"))
    model_lib.unfreeze(net, scheme)
    model_lib.compile_model(net, "adam", 1e-4)
    bn = model_lib.base_of(net).get_layer("conv5_block3_3_bn")
    before = bn.moving_mean.numpy().copy()
    images = np.random.default_rng(1).uniform(0, 255, size=(4, 32, 32, 3)).astype("float32")
    net.fit(images, np.arange(4), batch_size=4, epochs=1, verbose=0)
    assert (not np.allclose(bn.moving_mean.numpy(), before)) == moves


def test_the_head_model_shares_the_head_weights():
    net = model_lib.build(small())
    head = model_lib.head_model(net)
    assert head.input.shape[1:] == (1, 1, 2048)
    assert head.get_layer("predictions") is net.get_layer("predictions")


def test_mixed_precision_keeps_the_output_in_float32_and_restores_the_policy():
    net = model_lib.build(small(), mixed_precision=True)
    assert model_lib.base_of(net).compute_dtype == "float16"
    assert net.get_layer("predictions").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_bad_choices_raise_value_errors_naming_the_valid_ones():
    with pytest.raises(ValueError, match="original.*corrected"):
        model_lib.unfreeze(model_lib.build(small()), "everything")
    with pytest.raises(ValueError, match="adam.*rmsprop"):
        model_lib.optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match="original.*corrected"):
        model_lib.head_layers("tiny", "softmax")
