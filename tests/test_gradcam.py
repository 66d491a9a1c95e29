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
