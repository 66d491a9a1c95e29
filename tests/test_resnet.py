"""wh.resnet: the NumPy networks of the degradation experiment, and ResNet50's anatomy."""

from __future__ import annotations

import numpy as np
import pytest

import woofhelpers as wh
from woofhelpers import resnet

# --- the digits -------------------------------------------------------------------------------


def test_digits_split_is_stratified_scaled_and_fixed_by_seed():
    x_train, x_test, y_train, y_test = resnet.digits_split(seed=0)
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == np.float32 and x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert np.bincount(y_test).min() >= 35  # every digit in the test set (~36 each)
    again = resnet.digits_split(seed=0)
    assert np.array_equal(again[0], x_train) and np.array_equal(again[3], y_test)
    assert not np.array_equal(resnet.digits_split(seed=1)[3], y_test)


def test_digits_split_refuses_a_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        resnet.digits_split(test_fraction=1.5)


# --- building networks ------------------------------------------------------------------------


@pytest.mark.parametrize("residual", [False, True])
def test_make_mlp_counts_depth_and_parameters(residual):
    net = resnet.make_mlp(6, width=8, residual=residual, n_inputs=64, n_classes=10)
    assert net.depth == 6
    shapes = [w.shape for w in net.weights]
    assert shapes == [(64, 8)] + [(8, 8)] * 4
    # weights, then a BN scale and shift per hidden layer, then the output layer and its bias
    expected = 64 * 8 + 4 * 8 * 8 + 5 * 2 * 8 + 8 * 10 + 10
    assert net.parameter_count() == expected


def test_plain_and_residual_networks_start_from_the_same_weights():
    plain = resnet.make_mlp(8, width=8, residual=False, seed=3)
    residual = resnet.make_mlp(8, width=8, residual=True, seed=3)
    for a, b in zip(plain.parameters(), residual.parameters(), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(depth=1), "depth=1: a network needs at least 2"),
        (dict(depth=5, residual=True), "depth=5: a residual network needs an even depth"),
        (dict(depth=4, width=0), "width=0"),
    ],
)
def test_make_mlp_refuses_impossible_networks(kwargs, message):
    with pytest.raises(ValueError, match=message):
        resnet.make_mlp(**kwargs)


# --- the backward pass ------------------------------------------------------------------------


def _as_float64(net):
    for name in ("weights", "gammas", "betas", "running_means", "running_vars"):
        setattr(net, name, [a.astype(np.float64) for a in getattr(net, name)])
    net.output_weights = net.output_weights.astype(np.float64)
    net.output_bias = net.output_bias.astype(np.float64)
    return net


@pytest.mark.parametrize("residual, depth", [(False, 5), (True, 6)])
def test_gradients_match_finite_differences(residual, depth):
    """The hand-written backward pass (batch norm and shortcuts included) is the derivative
    of the loss: compare every gradient entry of a small network with central differences."""
    rng = np.random.default_rng(0)
    net = _as_float64(resnet.make_mlp(depth, width=4, residual=residual, n_inputs=6, n_classes=3, seed=1))
    # Scales and shifts away from 1 and 0, so that their gradients are exercised too.
    for gamma, beta in zip(net.gammas, net.betas, strict=True):
        gamma += rng.normal(0, 0.3, gamma.shape)
        beta += rng.normal(0, 0.3, beta.shape)
    x = rng.normal(size=(7, 6))
    y = rng.integers(0, 3, size=7)
    _, grads = resnet.loss_and_gradients(net, x, y)
    step = 1e-6
    worst = 0.0
    for param, grad in zip(net.parameters(), grads, strict=True):
        assert grad.shape == param.shape
        for index in np.ndindex(param.shape):
            saved = param[index]
            param[index] = saved + step
            plus, _ = resnet.loss_and_gradients(net, x, y)
            param[index] = saved - step
            minus, _ = resnet.loss_and_gradients(net, x, y)
            param[index] = saved
            numeric = (plus - minus) / (2 * step)
            worst = max(worst, abs(numeric - grad[index]) / max(1e-8, abs(numeric) + abs(grad[index])))
    assert worst < 1e-5, f"largest relative gradient error {worst:.2e}"


def test_the_shortcut_passes_the_gradient_through():
    """With the residual branches' BN scales at zero every block is the identity (after a
    ReLU), so the input layer's gradient is what it would be in a 2-layer network."""
    x_train, _, y_train, _ = resnet.digits_split()
    x, y = x_train[:32], y_train[:32]
    deep = resnet.make_mlp(10, width=8, residual=True, seed=0)
    for i in range(2, 10 - 1, 2):  # second layer of each block
        deep.gammas[i][:] = 0.0
        deep.betas[i][:] = 0.0
    shallow = resnet.make_mlp(2, width=8, residual=True, seed=0)
    shallow.weights[0] = deep.weights[0].copy()
    shallow.output_weights = deep.output_weights.copy()
    loss_deep, grads_deep = resnet.loss_and_gradients(deep, x, y)
    loss_shallow, grads_shallow = resnet.loss_and_gradients(shallow, x, y)
    assert loss_deep == pytest.approx(loss_shallow, rel=1e-5)
    np.testing.assert_allclose(grads_deep[0], grads_shallow[0], rtol=1e-4, atol=1e-6)


# --- training and the experiment ----------------------------------------------------------------


def test_training_lowers_the_training_error_and_is_repeatable():
    x_train, _, y_train, _ = resnet.digits_split()
    first = resnet.make_mlp(4, width=16, residual=True, seed=0)
    curve = resnet.train(first, x_train, y_train, epochs=2, seed=0)
    assert len(curve) == 2
    assert curve[-1] < 0.2 < resnet.error_rate(resnet.make_mlp(4, width=16, residual=True, seed=0), x_train, y_train)
    second = resnet.make_mlp(4, width=16, residual=True, seed=0)
    assert resnet.train(second, x_train, y_train, epochs=2, seed=0) == curve


def test_train_refuses_zero_epochs():
    x_train, _, y_train, _ = resnet.digits_split()
    with pytest.raises(ValueError, match="epochs=0"):
        resnet.train(resnet.make_mlp(2), x_train, y_train, epochs=0)


def test_predict_returns_probabilities():
    x_train, _, _, _ = resnet.digits_split()
    probs = resnet.predict(resnet.make_mlp(4, width=8, residual=True), x_train[:5])
    assert probs.shape == (5, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_degradation_experiment_compares_like_with_like():
    result = resnet.degradation_experiment(depths=(2, 4), epochs=1, width=8)
    table = result.table
    assert list(table.columns) == ["depth", "network", "parameters", "train_error", "test_error"]
    assert len(table) == 4 and set(result.curves) == {("plain", 2), ("residual", 2), ("plain", 4), ("residual", 4)}
    by_depth = table.groupby("depth")
    # Same parameters for plain and residual; depth 2 has no shortcut, so the two are one network.
    assert (by_depth["parameters"].nunique() == 1).all()
    two = table[table["depth"] == 2].set_index("network")
    assert two.loc["plain", "train_error"] == two.loc["residual", "train_error"]
    assert result.epochs == 1 and all(len(c) == 1 for c in result.curves.values())


def test_degradation_experiment_refuses_odd_depths():
    with pytest.raises(ValueError, match="even depths"):
        resnet.degradation_experiment(depths=(2, 5), epochs=1)


def test_degradation_settings_follow_the_profile(clean_woof_env):
    smoke = resnet.degradation_settings(wh.profiles.load("smoke"))
    full = resnet.degradation_settings(wh.profiles.load("full"))
    assert max(full["depths"]) == 56 and full["epochs"] > smoke["epochs"]
    assert set(smoke["depths"]) < set(full["depths"]) or max(smoke["depths"]) < 56
    assert all(d % 2 == 0 for d in full["depths"] + smoke["depths"])


def test_degradation_figure_has_both_panels():
    result = resnet.degradation_experiment(depths=(2, 4), epochs=2, width=8)
    fig = wh.plots.degradation(result)
    left, right = fig.axes
    assert {line.get_label() for line in left.get_lines()} == {"plain", "residual"}
    assert len(right.get_lines()) == 4  # plain and residual, shallowest and deepest


def test_residual_block_figure_draws_three_blocks():
    fig = wh.plots.residual_block()
    assert [ax.get_title() for ax in fig.axes][1].startswith("residual")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts.count("+") == 2 and "F(x) + x" in texts


# --- ResNet50 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_model(tf):
    return resnet.resnet50()


def test_resnet50_stages(base_model):
    table = resnet.stages(base_model)
    assert list(table.index) == ["conv1 (stem)", "conv2", "conv3", "conv4", "conv5", "top (classifier)"]
    assert table["blocks"].tolist() == [0, 3, 4, 6, 3, 0]
    assert table.loc["conv5", "output (h, w, c)"] == (7, 7, 2048)
    assert table["parameters"].sum() == base_model.count_params() == 25_636_712


def test_resnet50_bottleneck_block(base_model):
    block = resnet.block_layers(base_model, "conv3_block1")
    convs = block[block["type"] == "Conv2D"]
    assert sorted(convs.index) == [f"conv3_block1_{i}_conv" for i in range(4)]
    assert block.loc["conv3_block1_1_conv", "output"] == (28, 28, 128)  # stride 2 here
    assert block.loc["conv3_block1_0_conv", "output"] == (28, 28, 512)  # the projection shortcut
    assert block.index[-1] == "conv3_block1_out"


def test_resnet50_locate_conv5_block3_out(base_model):
    where = resnet.locate(base_model, "conv5_block3_out")
    assert where["output (h, w, c)"] == (7, 7, 2048)
    assert where["read by"] == ["avg_pool"] and where["layers after it"] == 2


def test_resnet50_helpers_name_what_exists(base_model):
    with pytest.raises(ValueError, match="conv5_block3"):
        resnet.block_layers(base_model, "conv6_block1")
    with pytest.raises(ValueError, match="no layer 'conv9_out'"):
        resnet.locate(base_model, "conv9_out")


def test_stages_refuses_a_model_that_is_not_a_resnet(tf):
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs), name="tiny")
    with pytest.raises(ValueError, match="not a Keras ResNet"):
        resnet.stages(model)


# --- what the chapter prints: the verdict (compared by nbval) and the table (digits vary) ---------


def _result(rows):
    import pandas as pd

    table = pd.DataFrame(
        [{"depth": d, "network": n, "parameters": 10 * d, "train_error": e, "test_error": e + 0.01} for d, n, e in rows]
    )
    return resnet.DegradationResult(table, curves={}, epochs=1)


def test_verdict_names_the_lower_network_at_each_depth_and_no_digits():
    result = _result(
        [
            (2, "plain", 0.0132),
            (2, "residual", 0.0132),
            (4, "plain", 0.0752),
            (4, "residual", 0.0104),
            (6, "plain", 0.01),
            (6, "residual", 0.02),
            (8, "plain", 0.05),
            (8, "residual", 0.05),
        ]
    )
    assert result.verdict().splitlines() == [
        "Which network ends with the lower training error:",
        "  depth  2: one network (no shortcut), errors equal, as they must be",
        "  depth  4: residual",
        "  depth  6: plain",
        "  depth  8: neither (equal errors)",
    ]
    assert not any(ch.isdigit() for line in result.verdict().splitlines() for ch in line.split(":", 1)[1])


def test_verdict_flags_a_depth_2_pair_that_differs():
    result = _result([(2, "plain", 0.0132), (2, "residual", 0.0139)])
    assert "DIFFERENT: not like for like" in result.verdict()


def test_percentages_are_one_decimal_per_depth_and_network():
    table = _result([(2, "plain", 0.01316), (2, "residual", 0.01316), (4, "plain", 0.45789), (4, "residual", 0.0411)])
    shown = table.percentages()
    assert list(shown.columns) == ["parameters", "training error %", "test error %"]
    assert shown.loc[(4, "plain"), "training error %"] == 45.8
    assert shown.loc[(4, "residual"), "test error %"] == 5.1
    assert shown.loc[(2, "plain"), "parameters"] == 20


def test_the_smoke_experiment_shows_degradation_on_this_machine(clean_woof_env):
    """The chapter's claim, whatever BLAS kernel or thread count computed it (``make
    portability`` runs this under another kernel and one thread): at the largest depth the
    residual network trains better than the plain one, the plain networks get worse with
    depth, and at depth 2 the two are one network."""
    settings = resnet.degradation_settings(wh.profiles.load("smoke"))
    errors = resnet.degradation_experiment(**settings).table.set_index(["depth", "network"])["train_error"]
    depths = sorted(settings["depths"])
    assert errors[depths[-1], "residual"] < errors[depths[-1], "plain"] / 2, errors
    plain = [errors[d, "plain"] for d in depths]
    assert plain == sorted(plain) and plain[0] < plain[-1], errors
    assert errors[2, "plain"] == errors[2, "residual"]
