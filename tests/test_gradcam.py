"""wh.gradcam: heatmaps that point where the decision is made, nested or flat, never NaN."""

import numpy as np
import pytest

from woofhelpers import gradcam


def half_model(half: str, name: str = "half"):
    """A hand-built model whose decision depends only on one half of the image:
    the other half is multiplied by zero before the convolution "features"."""
    import keras

    keras.utils.set_random_seed(0)
    mask = np.zeros((1, 32, 32, 1), np.float32)
    mask[:, :, :16] = half == "left"
    mask[:, :, 16:] = half == "right"
    if half == "top":
        mask[:, :16, :] = 1
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Lambda(lambda t: t * mask, name="mask")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs, name=name)


def nested(inner):
    """The course's shape: an outer model with preprocessing, the base as one layer, a head."""
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = inner(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="outer")


IMAGE = np.random.default_rng(0).uniform(0, 255, (32, 32, 3)).astype(np.float32)
HALVES = {
    "left": (slice(None), slice(0, 16)),
    "right": (slice(None), slice(16, 32)),
    "top": (slice(0, 16), slice(None)),
}
# The same halves grown by the one pixel a 3 x 3 convolution reaches across the edge.
REACH = {
    "left": (slice(None), slice(0, 17)),
    "right": (slice(None), slice(15, 32)),
    "top": (slice(0, 17), slice(None)),
}


def assert_in_half(heat, half):
    """All of the heat within the half (plus the kernel's reach), most of it strictly inside."""
    assert heat.max() == pytest.approx(1.0)
    assert gradcam.mass_in(heat, *REACH[half]) > 0.999
    assert gradcam.mass_in(heat, *HALVES[half]) > 0.7


@pytest.mark.parametrize("half", HALVES)
def test_heatmap_mass_lies_in_the_half_that_decides(half, tf):
    heat = gradcam.heatmap(half_model(half), IMAGE / 255, "features", class_index=0)
    assert heat.shape == (32, 32)
    assert_in_half(heat, half)


@pytest.mark.parametrize("half", ["left", "top"])
def test_nested_and_flat_give_the_same_map(half, tf):
    import keras

    inner = half_model(half)
    inner_with_pool = keras.Model(inner.input, inner.layers[-2].output, name="base")
    outer = nested(inner_with_pool)
    heat = gradcam.heatmap(outer, IMAGE, "features", class_index=1)
    assert_in_half(heat, half)
    # the same computation written flat, by hand
    flat_inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(flat_inputs)
    for layer in inner.layers[1:-1]:
        x = layer(x)
    flat = keras.Model(flat_inputs, outer.get_layer("head")(x))
    np.testing.assert_allclose(gradcam.heatmap(flat, IMAGE, "features", class_index=1), heat, atol=1e-5)


def test_default_class_is_the_predicted_one(tf):
    model = half_model("left")
    predicted = int(model(IMAGE[None] / 255).numpy().argmax())
    np.testing.assert_array_equal(
        gradcam.heatmap(model, IMAGE / 255, "features"), gradcam.heatmap(model, IMAGE / 255, "features", predicted)
    )


def test_a_zero_gradient_gives_a_zero_map_not_nan(tf):
    model = half_model("left")
    blank = np.zeros((32, 32, 3), np.float32)  # every activation is zero: a flat map
    heat = gradcam.heatmap(model, blank, "features", class_index=0)
    assert not np.isnan(heat).any() and (heat == 0).all()


def test_an_unknown_layer_lists_the_convolutional_layers(tf):
    with pytest.raises(ValueError, match=r"no convolutional layer named 'conv9'.*features"):
        gradcam.heatmap(nested(half_model("left")), IMAGE, "conv9")
    with pytest.raises(ValueError, match="no convolutional layer named 'head'"):
        gradcam.heatmap(nested(half_model("left")), IMAGE, "head")  # exists, but not a feature map


def test_resnet50_default_layer_nested_and_flat(tf):
    import keras

    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3))
    inputs = keras.Input((64, 64, 3))
    x = keras.applications.resnet50.preprocess_input(inputs)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    image = np.random.default_rng(1).uniform(0, 255, (64, 64, 3)).astype(np.float32)
    heat = gradcam.heatmap(model, image)
    assert heat.shape == (2, 2) and np.isfinite(heat).all()
    assert "conv5_block3_out" in gradcam.conv_layers(model)


def test_overlay_has_the_image_size_and_keeps_the_image_where_alpha_is_zero():
    image = np.full((40, 60, 3), 100, np.float32)
    heat = np.array([[0.0, 1.0], [0.5, 0.0]], np.float32)
    blended = gradcam.overlay(image, heat, alpha=0.5)
    assert blended.shape == (40, 60, 3) and blended.dtype == np.uint8
    np.testing.assert_array_equal(gradcam.overlay(image, heat, alpha=0.0), image.astype(np.uint8))
    assert gradcam.overlay(image[..., 0], heat).shape == (40, 60, 3)  # grayscale in, RGB out
    with pytest.raises(ValueError, match="alpha"):
        gradcam.overlay(image, heat, alpha=2)


def test_mass_in_an_empty_map_is_zero():
    assert gradcam.mass_in(np.zeros((4, 4))) == 0.0
    assert gradcam.mass_in(np.eye(4), slice(0, 2)) == 0.5


def test_gradcam_grid_draws_each_overlay_with_its_title():
    from woofhelpers import plots

    images = [np.full((20, 20, 3), v, np.float32) for v in (0, 128, 255)]
    heats = [np.zeros((2, 2)), np.ones((2, 2)), np.eye(2)]
    fig = plots.gradcam_grid(images, heats, ["a", "b", "c"], columns=2)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["a", "b", "c"] and len(fig.axes) == 4
    with pytest.raises(ValueError, match="as many of each"):
        plots.gradcam_grid(images, heats[:2], ["a", "b", "c"])


def test_a_batch_gives_the_same_maps_as_one_image_at_a_time(tf):
    model = half_model("left")
    images = np.random.default_rng(2).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    images[1] = 0  # a flat map in the middle of the batch stays zero and does not spoil the others
    together = gradcam.heatmaps(model, images, "features", [0, 1, 2])
    assert together.shape == (3, 32, 32) and (together[1] == 0).all()
    for i, c in enumerate([0, 1, 2]):
        np.testing.assert_allclose(together[i], gradcam.heatmap(model, images[i], "features", c), atol=1e-5)
    with pytest.raises(ValueError, match="one class index per image"):
        gradcam.heatmaps(model, images, "features", [0])
    with pytest.raises(ValueError, match="out of range"):
        gradcam.heatmap(model, images[0], "features", class_index=3)


# The score Grad-CAM differentiates is the class's logit, before the output activation.
# On a model "features -> global average pooling -> Dense" the logit of class c is
# z_c = sum_k W[k, c] mean(A^k) + b_c, so alpha_k = W[k, c] / (H W) and the map is
# ReLU(A @ W[:, c]) up to scale: computable by hand, whatever the output activation.
# rows: the 4 feature channels; columns: the 3 classes. Each class has a channel for it.
KERNEL = np.array([[1.0, -0.5, 0.3], [-0.4, 1.0, -0.6], [0.2, -0.3, 1.0], [-0.8, 0.6, 0.4]], np.float32)
BIAS = np.array([0.5, -0.25, 0.0], np.float32)
SMALL_IMAGE = np.random.default_rng(4).uniform(0, 1, (8, 8, 3)).astype(np.float32)


def scored_models(kernel=KERNEL, bias=BIAS):
    """Models that share one convolution "features" and differ only in how the last Dense
    (weights ``kernel``, ``bias``) turns its logits into outputs; and the features model."""
    import keras

    keras.utils.set_random_seed(5)
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D()(features)

    def dense(activation):
        layer = keras.layers.Dense(3, activation=activation, name="predictions")
        layer.build(pooled.shape)
        layer.set_weights([kernel, bias])
        return layer

    head = keras.Sequential([keras.Input((4,)), dense("softmax")], name="head")
    models = {
        "softmax": keras.Model(inputs, dense("softmax")(pooled)),
        "relu": keras.Model(inputs, dense("relu")(pooled)),
        "linear": keras.Model(inputs, dense(None)(pooled)),
        "Softmax layer": keras.Model(inputs, keras.layers.Softmax()(dense(None)(pooled))),
        "nested head": keras.Model(inputs, head(pooled)),
    }
    return models, keras.Model(inputs, features)


def by_hand(feature_map, weights):
    """ReLU(sum_k weights[k] A^k), divided by its maximum: Grad-CAM with given alphas."""
    cam = np.maximum(np.einsum("hwk,k->hw", feature_map, weights), 0)
    return cam / cam.max() if cam.max() > 0 else cam


def softmax_gradient_map(feature_map, kernel, probabilities, c):
    """The map the softmax output would give: d p_c / d z = p_c (e_c - p), so
    alpha_k = p_c (W[k, c] - sum_j p_j W[k, j]) / (H W): a contrast with the other classes."""
    alphas = probabilities[c] * (kernel[:, c] - kernel @ probabilities)
    return by_hand(feature_map, alphas / (feature_map.shape[0] * feature_map.shape[1]))


@pytest.mark.parametrize("c", [0, 1, 2])
def test_the_map_is_that_of_the_logit_computed_by_hand(c, tf):
    models, features = scored_models()
    model = models["softmax"]
    feature_map = features(SMALL_IMAGE[None]).numpy()[0]
    expected = by_hand(feature_map, KERNEL[:, c] / 64)
    assert expected.max() == 1  # the class has a location that raises its logit
    heat = gradcam.heatmap(model, SMALL_IMAGE, "features", class_index=c)
    np.testing.assert_allclose(heat, expected, atol=1e-5)
    # the softmax's gradient would have drawn another map: this test tells the two apart
    probabilities = model(SMALL_IMAGE[None]).numpy()[0]
    assert np.abs(softmax_gradient_map(feature_map, KERNEL, probabilities, c) - expected).max() > 0.1


def test_a_saturated_softmax_still_gives_the_map_of_the_logit(tf):
    models, features = scored_models(KERNEL * 10_000, BIAS)  # logits hundreds apart
    model = models["softmax"]
    probabilities = model(SMALL_IMAGE[None]).numpy()[0]
    predicted = int(probabilities.argmax())
    assert probabilities[predicted] == 1 and (np.delete(probabilities, predicted) == 0).all()  # one-hot in float32
    # through the softmax, the gradient of every class's output is exactly zero
    feature_map = features(SMALL_IMAGE[None])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(feature_map)
        output = model.get_layer("predictions")(model.layers[2](feature_map))
        outputs = [output[0, c] for c in range(3)]
    for c in range(3):
        assert not tape.gradient(outputs[c], feature_map).numpy().any()
    # from the logit, the map is the one computed by hand, predicted class first
    for c in [predicted, *(c for c in range(3) if c != predicted)]:
        expected = by_hand(feature_map.numpy()[0], KERNEL[:, c])
        np.testing.assert_allclose(gradcam.heatmap(model, SMALL_IMAGE, "features", c), expected, atol=1e-5)
    assert gradcam.heatmap(model, SMALL_IMAGE, "features").max() == 1  # the default class too


@pytest.mark.parametrize("variant", ["relu", "linear", "Softmax layer", "nested head"])
def test_the_output_activation_does_not_change_the_map(variant, tf):
    models, _ = scored_models()
    images = np.stack([SMALL_IMAGE, SMALL_IMAGE[::-1]])
    for c in range(3):
        np.testing.assert_allclose(
            gradcam.heatmaps(models[variant], images, "features", [c, c]),
            gradcam.heatmaps(models["softmax"], images, "features", [c, c]),
            atol=1e-5,
        )


def test_a_relu_head_explains_its_score_before_the_relu(tf):
    """Trial 1's output: Dense + ReLU. A class whose score is negative has a ReLU output of
    0 and a zero gradient; its map is still that of the score before the ReLU."""
    bias = np.array([1000.0, -1000.0, 0.0], np.float32)  # class 1's score is far below 0
    models, features = scored_models(KERNEL, bias)
    model = models["relu"]
    outputs = model(SMALL_IMAGE[None]).numpy()[0]
    assert outputs[1] == 0 and outputs.argmax() == 0
    feature_map = features(SMALL_IMAGE[None]).numpy()[0]
    heat = gradcam.heatmap(model, SMALL_IMAGE, "features", class_index=1)
    assert heat.max() == pytest.approx(1.0)
    np.testing.assert_allclose(heat, by_hand(feature_map, KERNEL[:, 1]), atol=1e-5)
    # the default class stays the argmax of the output
    np.testing.assert_array_equal(
        gradcam.heatmap(model, SMALL_IMAGE, "features"), gradcam.heatmap(model, SMALL_IMAGE, "features", 0)
    )


def test_the_baselines_restricted_softmax_explains_the_kept_imagenet_logit(tf):
    """wh.baseline ends in a layer that keeps ten of the 1000 ImageNet logits and applies a
    softmax: the map of breed c is the map of its ImageNet logit."""
    import keras

    from woofhelpers import baseline, labels

    keras.utils.set_random_seed(6)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="features")(inputs)
    logits = keras.layers.Dense(1000, name="logits")(keras.layers.GlobalAveragePooling2D()(x))
    imagenet = keras.Model(inputs, logits)
    restricted = keras.Model(inputs, baseline.restrict_to_classes()(logits))
    for breed in (0, 9):
        heat = gradcam.heatmap(restricted, SMALL_IMAGE * 100, "features", breed)
        assert heat.max() == pytest.approx(1.0)
        expected = gradcam.heatmap(imagenet, SMALL_IMAGE * 100, "features", labels.IMAGENET_INDICES[breed])
        np.testing.assert_allclose(heat, expected, atol=1e-5)


def test_an_output_layer_without_reachable_logits_is_refused(tf):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="features")(inputs)
    x = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Lambda(keras.ops.softmax, name="squash")(x))
    with pytest.raises(ValueError, match=r"before the output activation.*'squash' \(Lambda\)"):
        gradcam.heatmap(model, SMALL_IMAGE, "features")


def test_the_model_is_left_as_it_was_even_after_an_error(tf):
    import keras

    models, _ = scored_models()
    for variant in ("relu", "Softmax layer"):
        model = models[variant]
        before = model(SMALL_IMAGE[None]).numpy()
        with pytest.raises(ValueError, match="out of range"):
            gradcam.heatmap(model, SMALL_IMAGE, "features", class_index=3)  # raised inside the tape
        gradcam.heatmap(model, SMALL_IMAGE, "features")
        assert "call" not in vars(model.layers[-1]) and "call" not in vars(model.get_layer("features"))
        np.testing.assert_array_equal(model(SMALL_IMAGE[None]).numpy(), before)
    assert models["relu"].get_layer("predictions").activation is keras.activations.relu
