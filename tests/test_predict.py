"""``wh.predict``: reading a learner's photo, classifying it, the out-of-distribution rule,
and ``python -m woofhelpers classify``.

Every photo is generated here with PIL. The ten-breed model is a trial's model built on the
small stand-in for ResNet50 (``tests/stand_ins.py``, random weights), and "ImageNet" is a
stand-in too: a 1000-way model whose answer is set by the photo's colour (red: a tabby cat,
green: a Chihuahua, another dog; blue: a Samoyed, one of the ten), so each verdict of the
rule is deterministic without ImageNet's weights. Nothing here is a measurement of the rule
on real photos; the chapter says so.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import woofhelpers as wh
from woofhelpers.__main__ import main

REPO = Path(__file__).resolve().parent.parent
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
TABBY, CHIHUAHUA, SAMOYED = 281, 151, 258


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def two_colours(width: int, height: int, left=RED, right=BLUE, mode: str = "RGB") -> Image.Image:
    """A ``width`` x ``height`` image, its left half ``left``, its right half ``right``."""
    image = Image.new(mode, (width, height), right)
    image.paste(Image.new(mode, (width // 2, height), left), (0, 0))
    return image


# --- reading photos -------------------------------------------------------------------------


def test_a_plain_photo_is_read_as_uint8_rgb(tmp_path):
    pixels = wh.predict.read_photo(save(two_colours(64, 48), tmp_path / "dog.png"))
    assert pixels.dtype == np.uint8 and pixels.shape == (48, 64, 3)
    assert tuple(pixels[0, 0]) == RED and tuple(pixels[0, -1]) == BLUE
    assert wh.predict.open_photo(tmp_path / "dog.png").notes == ()


def test_a_file_that_is_not_an_image_is_refused_with_its_name(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("my dog's vaccination dates")
    with pytest.raises(ValueError, match=r"notes\.jpg is not an image"):
        wh.predict.read_photo(path)


def test_a_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="no-such-photo.jpg: no such file"):
        wh.predict.read_photo("no-such-photo.jpg")


def test_a_truncated_jpeg_is_refused(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    whole = save(Image.fromarray(noise), tmp_path / "whole.jpg", quality=90).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cut\.jpg: the image data is truncated or corrupt"):
        wh.predict.read_photo(cut)


def test_a_transparent_background_is_laid_onto_white_and_said(tmp_path):
    image = two_colours(64, 48, left=(255, 0, 0, 0), right=(0, 0, 255, 255), mode="RGBA")  # left half transparent
    photo = wh.predict.open_photo(save(image, tmp_path / "cutout.png"))
    assert photo.pixels.shape == (48, 64, 3)
    assert tuple(photo.pixels[10, 5]) == (255, 255, 255) and tuple(photo.pixels[10, -5]) == BLUE
    assert any("transparent background laid onto white" in note for note in photo.notes)


def test_an_opaque_alpha_channel_is_dropped_without_a_note(tmp_path):
    photo = wh.predict.open_photo(save(two_colours(64, 48, mode="RGBA"), tmp_path / "opaque.png"))
    assert tuple(photo.pixels[0, 0]) == RED and photo.notes == ()


def test_grayscale_comes_out_as_three_equal_channels(tmp_path):
    gray = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (40, 1)), mode="L")
    photo = wh.predict.open_photo(save(gray, tmp_path / "gray.png"))
    assert photo.pixels.shape == (40, 64, 3)
    assert (photo.pixels[..., 0] == photo.pixels[..., 1]).all() and (photo.pixels[..., 1] == photo.pixels[..., 2]).all()
    assert photo.pixels[0, 10, 0] == 40 and "grayscale" in photo.notes[0]


def test_a_palette_image_comes_out_as_its_colours(tmp_path):
    palette = two_colours(64, 48).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pixels = wh.predict.read_photo(save(palette, tmp_path / "palette.gif"))
    assert pixels.shape == (48, 64, 3) and tuple(pixels[0, 0]) == RED and tuple(pixels[0, -1]) == BLUE


def test_a_cmyk_jpeg_comes_out_as_rgb(tmp_path):
    cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    photo = wh.predict.open_photo(save(cmyk, tmp_path / "print.jpg", quality=95))
    red, green, blue = photo.pixels[24, 32].astype(int)
    assert photo.pixels.shape == (48, 64, 3) and red > 200 and green < 60 and blue < 60
    assert any("CMYK" in note for note in photo.notes)


@pytest.mark.parametrize(("orientation", "red_at"), [(6, "top"), (8, "bottom")])
def test_a_phone_photo_is_turned_upright_as_its_exif_says(tmp_path, orientation, red_at):
    """A phone stores a portrait photo as the sensor saw it, landscape, with EXIF Orientation
    6 (turn 90 degrees clockwise to view) or 8 (anticlockwise). Stored: 80 wide, 40 high, red
    on the left. Upright it is 40 wide and 80 high, and the red is at the top (6) or the
    bottom (8)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(two_colours(80, 40), tmp_path / "phone.jpg", exif=exif, quality=95)
    photo = wh.predict.open_photo(path)
    assert photo.pixels.shape == (80, 40, 3) and photo.size_px == (80, 40)
    top, bottom = photo.pixels[10, 20].astype(int), photo.pixels[70, 20].astype(int)
    reddish, bluish = (top, bottom) if red_at == "top" else (bottom, top)
    assert reddish[0] > 200 and reddish[2] < 60 and bluish[2] > 200 and bluish[0] < 60
    assert f"EXIF orientation ({orientation})" in photo.notes[0]


def test_a_tiny_image_is_refused_with_the_smallest_size(tmp_path):
    with pytest.raises(ValueError, match=r"20 x 100 px: too small to classify; use a photo at least 32 px"):
        wh.predict.read_photo(save(two_colours(20, 100), tmp_path / "icon.png"))


def test_a_huge_image_is_refused_with_its_numbers_before_it_is_decoded(tmp_path):
    """105 megapixels, as a 1-bit PNG of a few kilobytes: refused from its header."""
    path = save(Image.new("1", (10_500, 10_000)), tmp_path / "panorama.png")
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match=r"10500 x 10000 px = 105 megapixels, more than the 100 megapixels"):
        wh.predict.read_photo(path)


def test_a_large_photo_is_downsized_and_said(tmp_path):
    photo = wh.predict.open_photo(save(two_colours(3000, 1000), tmp_path / "camera.png"))
    assert photo.pixels.shape == (683, 2048, 3) and photo.size_px == (3000, 1000)
    assert photo.notes == ("downsized from 3000 x 1000 to 2048 x 683 px",)


def test_a_photo_is_read_from_a_url(tmp_path):
    save(two_colours(64, 48), tmp_path / "dog.png")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            pixels = wh.predict.read_photo(f"{url}/dog.png")
            with pytest.raises(ValueError, match="could not download"):
                wh.predict.read_photo(f"{url}/missing.png")
        finally:
            server.shutdown()
    assert pixels.shape == (48, 64, 3) and tuple(pixels[0, 0]) == RED


# --- classifying, and the out-of-distribution rule ---------------------------------------------


@pytest.fixture(scope="module")
def ten_breed_model() -> keras.Model:
    """The corrected trial's model at 32 px on the stand-in ResNet50, random weights."""
    from stand_ins import small_resnet50

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.applications, "ResNet50", small_resnet50)
        return wh.model.build(wh.recipes.variant(wh.recipes.get("corrected"), "tiny", image_size_px=32))


@pytest.fixture(scope="module")
def imagenet_stand_in() -> keras.Model:
    """1000 ImageNet probabilities set by the photo's mean colour: red -> tabby cat, green ->
    Chihuahua, blue -> Samoyed, each with a probability of almost 1 on a pure colour."""
    inputs = keras.Input((48, 48, 3))
    mean_colour = keras.layers.GlobalAveragePooling2D()(inputs)
    dense = keras.layers.Dense(1000, activation="softmax", name="imagenet")
    outputs = dense(mean_colour)
    kernel = np.zeros((3, 1000), np.float32)
    kernel[0, TABBY], kernel[1, CHIHUAHUA], kernel[2, SAMOYED] = 0.1, 0.1, 0.1  # logit 25.5 for a pure colour
    dense.set_weights([kernel, np.zeros(1000, np.float32)])
    return keras.Model(inputs, outputs, name="imagenet_stand_in")


@pytest.fixture
def plain(tmp_path):
    """Return a function that saves a 64 x 48 photo of one colour and returns its path."""

    def make(colour, name="photo.png"):
        return save(Image.new("RGB", (64, 48), colour), tmp_path / name)

    return make


def test_photo_gives_the_top_three_breeds_sorted(ten_breed_model, plain):
    prediction = wh.predict.photo(ten_breed_model, plain((120, 90, 60)))
    probabilities = [p for _, p in prediction.breeds]
    assert len(prediction.breeds) == 3 and probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    assert all(name in wh.labels.CLASS_NAMES for name, _ in prediction.breeds)
    assert prediction.breed == prediction.breeds[0][0] and prediction.is_dog is None
    report = str(prediction)
    assert "top 3 of its ten breeds" in report and "pass imagenet_model" in report and "not a confidence" in report


def test_photo_resizes_as_the_pipeline_does(ten_breed_model, tmp_path):
    """The photo reaches the model as the pipeline's own resize makes it from the file."""
    noise = np.random.default_rng(1).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    path = save(Image.fromarray(noise), tmp_path / "noise.png")
    through_pipeline = wh.pipeline.load_image(str(path), 32).numpy()[None]
    expected = ten_breed_model.predict(through_pipeline, verbose=0)[0]
    prediction = wh.predict.photo(ten_breed_model, path, top=10)
    got = {name: p for name, p in prediction.breeds}
    np.testing.assert_allclose([got[name] for name in wh.labels.CLASS_NAMES], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("colour", "kind", "words"),
    [
        (RED, "not a dog", "not a dog, as far as ImageNet can tell (it says: tabby)"),
        (GREEN, "another dog", "not one of the ten breeds according to ImageNet (it says: Chihuahua)"),
        (BLUE, "one of the ten", "(ImageNet says: Samoyed)"),
    ],
)
def test_the_rule_on_controlled_photos(ten_breed_model, imagenet_stand_in, plain, colour, kind, words):
    prediction = wh.predict.photo(ten_breed_model, plain(colour), imagenet_model=imagenet_stand_in)
    assert prediction.imagenet.kind == kind
    assert prediction.is_dog == (kind != "not a dog") and prediction.one_of_the_ten == (kind == "one of the ten")
    assert words in prediction.verdict and words in str(prediction)
    assert prediction.imagenet_top[0][2] > 0.9
    if kind == "one of the ten":
        assert prediction.verdict.startswith(f"one of the ten: {prediction.breed} (")


def test_the_rule_sums_the_dog_classes_and_counts_the_dingo():
    p = np.zeros(1000)
    p[[151, 152, 153, 154]] = 0.1  # dog classes 40% in all: not a dog, though a dog class is on top
    p[TABBY] = 0.05
    p[0] = 0.55
    assert wh.predict.judge(p).kind == "not a dog"
    p = np.zeros(1000)
    p[[273, 151]] = 0.35, 0.25  # the dingo, one of the ten, is a dog class too
    p[0] = 0.4
    view = wh.predict.judge(p)
    assert view.kind == "one of the ten" and view.dog[:2] == (273, "dingo")
    assert view.dog_probability == pytest.approx(0.6)
    assert [name for _, name, _ in view.top] == ["tench", "dingo", "Chihuahua"]
    with pytest.raises(ValueError, match="1000 probabilities"):
        wh.predict.judge(np.ones(10) / 10)


def test_photo_refuses_models_of_the_wrong_size(ten_breed_model, imagenet_stand_in, plain):
    with pytest.raises(ValueError, match=r"imagenet_classifier"):
        wh.predict.photo(ten_breed_model, plain(RED), imagenet_model=ten_breed_model)
    with pytest.raises(ValueError, match="outputs 1000 scores per image"):
        wh.predict.photo(imagenet_stand_in, plain(RED))


def test_measure_rule_counts_per_group(imagenet_stand_in, plain):
    """Generated stand-ins, not real photos: the table's shape and counting are tested."""
    ten = [plain(BLUE, "samoyed1.png"), plain(BLUE, "samoyed2.png")]
    other = [plain(GREEN, "chihuahua.png"), plain(BLUE, "samoyed-labelled-other.png")]
    not_dogs = [plain(RED, "cat.png")]
    table = wh.predict.measure_rule(imagenet_stand_in, ten, other, not_dogs)
    assert list(table.index) == list(wh.predict.KINDS)
    assert table["photos"].tolist() == [2, 2, 1] and table["right"].tolist() == [2, 1, 1]
    assert table.loc["another dog", "said 'one of the ten'"] == 1
    assert table["share right"].tolist() == [1.0, 0.5, 1.0]


def test_the_imagenet_classifier_is_the_baselines_network_with_every_class(clean_woof_env, ten_breed_model, plain):
    """The smoke profile's (untrained) ImageNet classifier: 1000 probabilities, and over the
    ten breeds' columns the very probabilities of the zero-training baseline; photo() runs
    with it (its verdict means nothing untrained, which the chapter says)."""
    profile = wh.profiles.load("smoke", image_size_px=32)
    imagenet = wh.baseline.imagenet_classifier(profile)
    assert imagenet.output_shape == (None, 1000)
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    everything = imagenet.predict(images, verbose=0)
    ten = everything[:, list(wh.labels.IMAGENET_INDICES)]
    np.testing.assert_allclose(everything.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(
        ten / ten.sum(axis=1, keepdims=True), wh.baseline.model(profile).predict(images, verbose=0), atol=1e-5
    )
    prediction = wh.predict.photo(ten_breed_model, plain(BLUE), imagenet_model=imagenet)
    assert prediction.imagenet.kind in wh.predict.KINDS and len(prediction.imagenet_top) == 3


# --- python -m woofhelpers classify ------------------------------------------------------------


@pytest.fixture(scope="module")
def model_file(ten_breed_model, tmp_path_factory) -> Path:
    return wh.export.save_keras(ten_breed_model, tmp_path_factory.mktemp("model") / "tiny.keras")


def test_classify_prints_the_report(clean_woof_env, model_file, plain, capsys):
    assert main(["classify", str(plain((120, 90, 60))), "--model", str(model_file), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "top 2 of its ten breeds" in out and "verdict: the model says" in out


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        ("missing model", 2, "no such model file"),
        ("not an image", 2, "is not an image"),
        ("damaged model", 1, "could not be loaded as a Keras model"),
    ],
)
def test_classify_errors_are_one_line(clean_woof_env, model_file, plain, tmp_path, capsys, case, status, message):
    photo, model = str(plain((120, 90, 60))), str(model_file)
    if case == "missing model":
        model = str(tmp_path / "nothing.keras")
    elif case == "not an image":
        photo = str(tmp_path / "notes.jpg")
        Path(photo).write_text("not a photo")
    else:
        model = str(tmp_path / "damaged.keras")
        Path(model).write_bytes(b"PK\x03\x04 not really a zip")
    assert main(["classify", photo, "--model", model]) == status
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err and "Traceback" not in err


def test_classify_from_the_command_line(model_file, plain):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOF_")}
    done = subprocess.run(
        [sys.executable, "-m", "woofhelpers", "classify", str(plain(BLUE)), "--model", str(model_file)],
        capture_output=True,
        text=True,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "verdict:" in done.stdout
