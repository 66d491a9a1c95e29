"""Each branch the full profile takes, one fact at a time: where the data come from, which
weights the ResNet50 starts from, what the profile says it is, the guard against a
full-size run without a GPU, and the Colab setup (Google Drive). The chapters are run end to
end in the full profile by ``tests/test_rehearsal.py``.
"""

from __future__ import annotations

import sys
import types

import keras
import numpy as np
import pytest
import stand_ins  # tests/ is on sys.path under pytest

import woofhelpers as wh


@pytest.fixture(autouse=True)
def _clean(clean_woof_env):
    return clean_woof_env


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    """Keras' two ResNet50 weight files, written from an untrained network (stand-ins)."""
    return stand_ins.resnet50_weight_files(tmp_path_factory.mktemp("weights"))


# --- data and weights are separate facts ------------------------------------------------------


def test_real_data_and_imagenet_weights_are_separate_facts(weight_files):
    smoke = wh.profiles.load("smoke")
    full = wh.profiles.load("full")
    rehearsal = wh.profiles.load("full", weights=str(weight_files))
    random_full = wh.profiles.load("full", weights=None)
    facts = [(p.real_data, p.pretrained, p.imagenet_weights, p.real_results) for p in (smoke, full, rehearsal)]
    assert facts == [(False, False, False, False), (True, True, True, True), (True, True, False, False)]
    assert (random_full.real_data, random_full.pretrained, random_full.real_results) == (True, False, False)
    assert not wh.profiles.load("smoke", weights="imagenet").real_results  # ImageNet weights, generated data


def test_a_weights_file_is_imagenets_only_when_its_md5_is_keras_published_one(weight_files, monkeypatch):
    profile = wh.profiles.load("full", weights=str(weight_files))
    assert not profile.imagenet_weights
    monkeypatch.setitem(wh.profiles.KERAS_RESNET50_MD5, False, wh.profiles._md5(weight_files))
    assert profile.imagenet_weights and profile.real_results
    assert "ImageNet's own (MD5 checked)" in profile.describe()


def test_the_banner_names_the_data_source_the_weights_and_what_the_numbers_mean(weight_files, monkeypatch):
    monkeypatch.setenv("WOOF_ARCHIVE_MIRROR", "http://127.0.0.1:8000/")
    text = wh.profiles.load("full", weights=str(weight_files)).describe()
    assert "the real Imagewoof archive 'imagewoof-320', from" in text
    assert "http://127.0.0.1:8000/imagewoof-320.tgz" in text
    assert str(weight_files) in text and "NOT ImageNet's: stand-in weights" in text
    assert "REHEARSAL" in text and "NOT real results" in text
    monkeypatch.delenv("WOOF_ARCHIVE_MIRROR")
    real = wh.profiles.load("full").describe()
    assert "https://s3.amazonaws.com/fast-ai-imageclas/imagewoof-320.tgz" in real
    assert "weights='imagenet'" in real and "These are real results" in real and "NOT" not in real
    assert "SMOKE RUN" in wh.profiles.load("smoke").describe()


@pytest.mark.parametrize("include_top", [False, True])
def test_weights_file_gives_keras_the_file_for_the_base_or_for_the_baseline(weight_files, include_top):
    expected = weight_files.parent / wh.profiles.KERAS_RESNET50_FILES[include_top]
    for given in (weight_files, weight_files.parent):  # the file, or the folder holding Keras' files
        profile = wh.profiles.load("full", weights=str(given))
        assert wh.profiles.weights_file(profile, include_top=include_top) == expected
    assert wh.profiles.weights_file(wh.profiles.load("full"), include_top) == "imagenet"
    assert wh.profiles.weights_file(wh.profiles.load("smoke"), include_top) is None


def test_a_missing_weights_file_is_refused_when_the_profile_is_made(tmp_path, monkeypatch):
    monkeypatch.setenv("WOOF_WEIGHTS", str(tmp_path / "nope.h5"))
    with pytest.raises(ValueError, match="nope.h5.*no such file or folder"):
        wh.profiles.load("full")
    (tmp_path / "weights.txt").write_text("not weights")
    with pytest.raises(ValueError, match="Keras reads .h5 weight files"):
        wh.profiles.load("full", weights=str(tmp_path / "weights.txt"))


def test_the_baseline_needs_the_file_with_the_classifier_and_says_which(weight_files, tmp_path):
    alone = tmp_path / wh.profiles.KERAS_RESNET50_FILES[False]
    alone.write_bytes(weight_files.read_bytes())
    profile = wh.profiles.load("full", weights=str(alone))
    with pytest.raises(FileNotFoundError, match="resnet50_weights_tf_dim_ordering_tf_kernels.h5"):
        wh.profiles.weights_file(profile, include_top=True)


def test_the_trial_model_loads_the_named_file_through_keras(weight_files):
    trial = wh.recipes.variant(wh.recipes.get("trial2"), "tiny", image_size_px=32)
    profile = wh.profiles.load("full", weights=str(weight_files))
    loaded = wh.model.build(trial, wh.profiles.weights_file(profile))
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    reference.load_weights(str(weight_files))
    for name in ("conv1_conv", "conv5_block3_3_conv", "conv5_block3_3_bn"):
        for got, want in zip(
            wh.model.base_of(loaded).get_layer(name).get_weights(), reference.get_layer(name).get_weights(), strict=True
        ):
            np.testing.assert_array_equal(got, want)
    fresh = wh.model.build(trial, None)
    assert not np.array_equal(
        wh.model.base_of(fresh).get_layer("conv1_conv").kernel, reference.get_layer("conv1_conv").kernel
    )


def test_the_baseline_follows_the_weights_size_and_description(weight_files, monkeypatch):
    rehearsal = wh.profiles.load("full", weights=str(weight_files), image_size_px=32)
    assert wh.baseline.image_size_px(rehearsal) == 32  # stand-in weights: the profile's small size
    assert "REHEARSAL" in wh.baseline.describe(rehearsal) and "STAND-IN" in wh.baseline.describe(rehearsal)
    assert wh.baseline.image_size_px(wh.profiles.load("full", image_size_px=32)) == 224  # ImageNet's classifier
    assert "SMOKE RUN" in wh.baseline.describe(wh.profiles.load("smoke"))
    assert "nothing was trained" in wh.baseline.describe(wh.profiles.load("full"))
    top = weight_files.parent / wh.profiles.KERAS_RESNET50_FILES[True]
    built = wh.baseline.model(rehearsal)
    reference = keras.applications.ResNet50(include_top=True, weights=None, input_shape=(32, 32, 3))
    reference.load_weights(str(top))
    np.testing.assert_array_equal(
        built.get_layer("resnet50").get_layer("predictions").kernel, reference.get_layer("predictions").kernel
    )


# --- variables ------------------------------------------------------------------------------


def test_an_unknown_woof_variable_is_refused_with_the_closest_name(monkeypatch):
    monkeypatch.setenv("WOOF_IMAGE_SIZE", "-1")
    with pytest.raises(ValueError, match="WOOF_IMAGE_SIZE: did you mean WOOF_IMAGE_SIZE_PX"):
        wh.profiles.load()


@pytest.mark.parametrize(("text", "value"), [("1", True), ("true", True), ("0", False), ("no", False)])
def test_allow_cpu_is_read_as_a_yes_or_no(monkeypatch, text, value):
    monkeypatch.setenv("WOOF_ALLOW_CPU", text)
    assert wh.profiles.load("full").allow_cpu is value


def test_allow_cpu_refuses_anything_else(monkeypatch):
    monkeypatch.setenv("WOOF_ALLOW_CPU", "maybe")
    with pytest.raises(ValueError, match="WOOF_ALLOW_CPU='maybe': use 1 or 0"):
        wh.profiles.load("full")


def test_where_the_data_and_archive_are_do_not_make_another_result():
    """Moving the data, naming a mirror or allowing the CPU must not invalidate a saved result."""
    base = wh.profiles.record(wh.profiles.load("full"))
    moved = wh.profiles.record(
        wh.profiles.load("full", data_dir="/elsewhere", archive_mirror="http://127.0.0.1:1/", allow_cpu=True)
    )
    assert base == moved and base["real_results"] is True
    assert base != wh.profiles.record(wh.profiles.load("full", epochs=1))


# --- no GPU ---------------------------------------------------------------------------------


def test_a_full_size_trial_without_a_gpu_stops_with_an_estimate():
    trial = wh.recipes.get("trial2")
    images = {"train": 12_454, "validation": 400, "test": 100}
    with pytest.raises(wh.runtime.NeedsGPU, match=r"trial2 would take about .* on a Colab GPU, .* h on a 2-core CPU"):
        wh.runtime.check_device(trial, wh.profiles.load("full"), images, gpu=False)
    allowed = wh.runtime.check_device(trial, wh.profiles.load("full", allow_cpu=True), images, gpu=False)
    assert allowed.cpu_s > 3600 > allowed.gpu_s
    assert wh.runtime.check_device(trial, wh.profiles.load("full"), images, gpu=True) == allowed
    small = {"train": 20, "validation": 20, "test": 20}
    tiny = wh.recipes.variant(trial, "tiny", image_size_px=32, fine_tune_epochs=1, head_epochs=1)
    assert wh.runtime.check_device(tiny, wh.profiles.load("full"), small, gpu=False).cpu_s < 60


def test_the_estimate_grows_with_pixels_epochs_and_images():
    trial = wh.recipes.get("trial3")
    images = {"train": 1000, "validation": 100, "test": 100}
    base = wh.runtime.estimate(trial, images)
    bigger = wh.runtime.estimate(wh.recipes.variant(trial, "b", image_size_px=320), images)
    assert bigger.gpu_s == pytest.approx(4 * base.gpu_s)
    more = wh.runtime.estimate(trial, {**images, "train": 2000})
    assert more.cpu_s > base.cpu_s
    head_only = wh.runtime.estimate(wh.recipes.get("trial1"), images)
    assert head_only.cpu_s < base.cpu_s
    assert wh.runtime.duration(30) == "30 s" and wh.runtime.duration(600) == "10 min"
    assert wh.runtime.duration(5 * 3600) == "5.0 h"


def test_run_trial_checks_the_device_before_training(tmp_path, monkeypatch, small_dataset, small_settings):
    """The guard sits in the engine: with a limit of zero seconds, even the smoke trial stops."""
    monkeypatch.setattr(wh.runtime, "CPU_LIMIT_S", 0)
    monkeypatch.setattr(wh.hardware, "on_gpu", lambda: False)
    monkeypatch.setattr(wh.data, "dataset_root", lambda profile: small_dataset)
    with pytest.raises(wh.runtime.NeedsGPU, match="WOOF_ALLOW_CPU=1"):
        wh.trials.run_trial("trial1", wh.profiles.load("smoke", data_dir=tmp_path), results=tmp_path / "results")
    assert not (tmp_path / "results" / "smoke" / "trial1" / wh.results.RESULT_FILE).exists()


# --- Colab ----------------------------------------------------------------------------------


@pytest.fixture
def in_colab(monkeypatch):
    """Make this process look like Colab: its ``google.colab`` module is loaded."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


def test_in_colab_with_drive_mounted_results_go_to_drive(in_colab, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WOOF_DRIVE_DIR", str(tmp_path))
    wh.setup("smoke")
    assert wh.results.results_dir() == tmp_path / "woof" / "results"
    assert f"results: kept on Google Drive, {tmp_path / 'woof' / 'results'}" in capsys.readouterr().out


def test_in_colab_without_drive_the_setup_says_how_to_keep_results(in_colab, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WOOF_DRIVE_DIR", str(tmp_path / "not-mounted"))
    wh.setup("smoke")
    out = capsys.readouterr().out
    assert "lost when it is recycled" in out and "drive.mount('/content/drive')" in out
    assert "WOOF_RESULTS_DIR" not in __import__("os").environ


def test_outside_colab_the_setup_says_nothing_about_drive(tmp_path, monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setenv("WOOF_DRIVE_DIR", str(tmp_path))
    wh.setup("smoke")
    assert "results:" not in capsys.readouterr().out


def test_the_background_experiment_is_shortened_by_the_epochs_of_the_full_profile_only():
    assert wh.resnet.degradation_settings(wh.profiles.load("full", epochs=1))["epochs"] == 1
    assert wh.resnet.degradation_settings(wh.profiles.load("full"))["epochs"] == 30
    assert wh.resnet.degradation_settings(wh.profiles.load("smoke"))["epochs"] == 5  # smoke's epochs size its trials


def test_the_batchnorm_drift_of_the_full_profile_runs_on_the_resnet50_baseline(weight_files, small_dataset):
    """The results chapter's ImageNet branch measures the drift on ResNet50 itself (the
    zero-training baseline, its first 100 layers frozen, as the original froze them); offline it
    runs with the stand-in weight files, one step, at 32 px."""
    profile = wh.profiles.load("full", weights=str(weight_files), image_size_px=32)
    split = wh.splits.official(small_dataset)
    result = wh.ablations.batchnorm_drift(
        lambda: wh.baseline.model(profile), split, image_size_px=32, batch_size=8, steps=1,
        test_paths=split.parts["test"], freeze_batchnorm=False, freeze_first=100,
    )  # fmt: skip
    # ResNet50 has 53 BatchNorm layers; only those above its first 100 layers are trainable and move.
    assert result.batchnorm_layers == 53
    assert 0 < result.batchnorm_layers_changed < 53
