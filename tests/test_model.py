"""The trial network: heads, preprocessing switch, fine-tuning schemes, mixed precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from stand_ins import install as install_stand_in  # tests/ is on sys.path under pytest

import woofhelpers as wh
from woofhelpers import model as model_lib
from woofhelpers import recipes, trials


def small(name="m", **changes):
    return recipes.variant(recipes.get("trial2"), name, image_size_px=32, **changes)


def test_the_original_head_at_160_px_has_about_51_million_weights():
    net = model_lib.build(recipes.get("trial2"))
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


@pytest.fixture
def global_policy():
    """Set the process-wide dtype policy to ``mixed_bfloat16`` for the test (so a function
    that leaves its own policy behind, or resets to float32, is caught) and restore it."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield "mixed_bfloat16"
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("mixed", [True, False])
def test_a_mixed_precision_model_is_created_under_the_policy_with_a_float32_output(mixed, global_policy):
    net = model_lib.build(small(head="corrected", preprocessing="resnet50"), mixed_precision=mixed)
    assert net.dtype_policy.name == ("mixed_float16" if mixed else "float32")
    assert model_lib.base_of(net).compute_dtype == ("float16" if mixed else "float32")
    assert model_lib.base_of(net).get_layer(model_lib.LAST_CONV_LAYER).output.dtype == (
        "float16" if mixed else "float32"
    )
    assert net.get_layer("predictions").compute_dtype == "float32"
    assert net.output.dtype == "float32"
    assert all(w.dtype == "float32" for w in net.weights)  # float32 weights either way
    assert keras.config.dtype_policy().name == global_policy


@pytest.mark.parametrize("mixed", [True, False])
def test_compile_adds_loss_scaling_to_a_mixed_model_and_to_its_head_model(mixed, global_policy, monkeypatch):
    install_stand_in(monkeypatch)
    net = model_lib.build(small(head="corrected", preprocessing="resnet50"), mixed_precision=mixed)
    head = model_lib.head_model(net)
    assert keras.config.dtype_policy().name == global_policy
    assert head.dtype_policy.name == net.dtype_policy.name
    assert head.input.dtype == ("float16" if mixed else "float32")
    assert head.output.dtype == "float32"
    model_lib.compile_model(head, "adam", 1e-3, jit_compile=True)
    model_lib.unfreeze(net, "corrected")
    model_lib.compile_model(net, "rmsprop", 1e-4)
    for compiled, inner in ((head, keras.optimizers.Adam), (net, keras.optimizers.RMSprop)):
        wrapped = isinstance(compiled.optimizer, keras.optimizers.LossScaleOptimizer)
        assert wrapped == mixed, compiled.name
        assert isinstance(compiled.optimizer.inner_optimizer if wrapped else compiled.optimizer, inner)
    assert keras.config.dtype_policy().name == global_policy


def test_one_mixed_precision_training_step_leaves_finite_changed_weights(global_policy, monkeypatch):
    install_stand_in(monkeypatch)
    keras.utils.set_random_seed(0)
    net = model_lib.build(small(head="corrected", preprocessing="resnet50"), mixed_precision=True)
    images = np.random.default_rng(1).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1])
    # The head on features, as the engine trains it with cached features.
    head = model_lib.head_model(net)
    model_lib.compile_model(head, "adam", 1e-3)
    features = wh.features.probe(net).predict(images, verbose=0)[0]
    assert features.dtype == np.float16
    before = net.get_layer("predictions").kernel.numpy().copy()
    head_loss = head.train_on_batch(features, labels)[0]
    assert np.isfinite(head_loss)
    assert not np.allclose(net.get_layer("predictions").kernel.numpy(), before)  # the shared head moved
    # Then the whole model, fine-tuned.
    model_lib.unfreeze(net, "corrected")
    model_lib.compile_model(net, "adam", 1e-4)
    conv = model_lib.base_of(net).get_layer("conv5_block3_conv").kernel
    before = conv.numpy().copy()
    scale = float(net.optimizer.dynamic_scale)
    # Dynamic loss scaling starts high (2**15): a step whose scaled float16 gradients
    # overflow is skipped and the scale halved, so allow a few steps for the first update.
    for _ in range(20):
        loss = net.train_on_batch(images, labels)[0]
        if not np.allclose(conv.numpy(), before):
            break
        assert float(net.optimizer.dynamic_scale) < scale  # skipped only after an overflow
        scale = float(net.optimizer.dynamic_scale)
    assert np.isfinite(loss)
    assert not np.allclose(conv.numpy(), before)
    assert all(np.isfinite(w).all() for w in net.get_weights())
    assert 1 <= float(net.optimizer.dynamic_scale) <= 2**15
    assert keras.config.dtype_policy().name == global_policy


def test_only_the_corrected_trial_asks_for_mixed_precision():
    # Trials 1-5 (and any other registered reproduction) train in float32, as the original did.
    asks = {name: recipes.get(name).mixed_precision for name in recipes.TRIAL_NAMES}
    assert {f"trial{n}" for n in range(1, 6)} <= set(asks)
    assert [name for name, mixed in asks.items() if mixed] == ["corrected"]
    assert recipes.variant(recipes.get("corrected"), "ablation", head="original").mixed_precision
    assert "mixed_precision" in recipes.table(recipes.get("trial2")).index


class RecordsPrecision(keras.callbacks.Callback):
    """Record, at the start of every ``fit``, the model's policy and optimizer type."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_begin(self, logs=None):
        self.seen.append((self.model.name, self.model.dtype_policy.name, type(self.model.optimizer).__name__))


@pytest.mark.parametrize("mixed", [True, False])
def test_on_a_gpu_the_engine_uses_mixed_precision_only_for_trials_that_ask(mixed, tmp_path, monkeypatch):
    install_stand_in(monkeypatch)
    monkeypatch.setattr(wh.hardware, "on_gpu", lambda: True)  # as if TensorFlow saw a GPU
    profile = wh.profiles.load(
        "smoke",
        data_dir=tmp_path / "data",
        synthetic_train_per_class=2,
        synthetic_val_per_class=5,
        synthetic_shortest_side_px=40,
        image_size_px=32,
        batch_size=4,
        epochs=1,
        max_images_per_class=None,
    )
    trial = recipes.variant(
        recipes.get("trial2"), "tiny", fine_tune="corrected", fine_tune_optimizer="adam", mixed_precision=mixed
    )
    recorder = RecordsPrecision()
    result = trials.run_trial(trial, profile, results=tmp_path / "results", callbacks=[recorder])
    policy, optimizer = ("mixed_float16", "LossScaleOptimizer") if mixed else ("float32", "Adam")
    # The head on cached features, then the whole model.
    assert recorder.seen == [("tiny_head", policy, optimizer), ("tiny", policy, optimizer)]
    assert result.hardware["gpu"] and result.hardware["mixed_precision"] == mixed
    assert keras.config.dtype_policy().name == "float32"
    assert np.isfinite(result.test["own"]["loss"])
    loaded = trials.load_model(result)  # float32 for analysis, whatever the trial trained in
    assert loaded.dtype_policy.name == "float32"


def test_bad_choices_raise_value_errors_naming_the_valid_ones():
    with pytest.raises(ValueError, match="original.*corrected"):
        model_lib.unfreeze(model_lib.build(small()), "everything")
    with pytest.raises(ValueError, match="adam.*rmsprop"):
        model_lib.optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match="original.*corrected"):
        model_lib.head_layers("tiny", "softmax")
