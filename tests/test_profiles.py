"""wh.profiles: the one switch between the offline smoke run and the real course."""

from pathlib import Path

import pytest

import woofhelpers as wh


@pytest.fixture(autouse=True)
def _clean(clean_woof_env):
    """Every test here starts with no WOOF_* variables and no profile selected."""
    return clean_woof_env


def test_default_profile_is_smoke_when_woof_profile_is_unset():
    profile = wh.profiles.load()
    assert profile.name == "smoke"
    assert profile.dataset == "synthetic"
    assert profile.weights is None
    assert not profile.real_results


def test_woof_profile_full_selects_the_real_data_and_imagenet_weights(monkeypatch):
    monkeypatch.setenv("WOOF_PROFILE", "full")
    profile = wh.profiles.load()
    assert profile.name == "full"
    assert profile.weights == "imagenet"
    assert profile.dataset in wh.catalog.VERSIONS
    assert profile.dataset == wh.catalog.DEFAULT_VERSION
    assert profile.real_results


def test_an_explicit_name_wins_over_woof_profile(monkeypatch):
    monkeypatch.setenv("WOOF_PROFILE", "full")
    assert wh.profiles.load("smoke").name == "smoke"


def test_full_profile_never_uses_random_weights_or_synthetic_data():
    full = wh.profiles.load("full")
    assert full.weights is not None
    assert full.dataset != "synthetic"
    # "Whatever the trial says": the full profile does not shrink the trials.
    assert (full.image_size_px, full.batch_size, full.epochs) == (None, None, None)


def test_smoke_profile_is_small_enough_for_ci():
    smoke = wh.profiles.load("smoke")
    assert smoke.image_size_px is not None and 32 <= smoke.image_size_px <= 128
    assert smoke.epochs is not None and smoke.epochs <= 3
    assert smoke.batch_size is not None


def test_env_variable_overrides_a_field(monkeypatch):
    monkeypatch.setenv("WOOF_EPOCHS", "3")
    assert wh.profiles.load("smoke").epochs == 3
    assert wh.profiles.load("full").epochs == 3


def test_env_variables_are_parsed_to_the_fields_type(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WOOF_DATA_DIR", "~/woof")
    monkeypatch.setenv("WOOF_WEIGHTS", "none")
    monkeypatch.setenv("WOOF_IMAGE_SIZE_PX", "none")
    monkeypatch.setenv("WOOF_SEED", "7")
    profile = wh.profiles.load("full")
    assert profile.data_dir == tmp_path / "woof"
    assert profile.weights is None
    assert profile.image_size_px is None
    assert profile.seed == 7


def test_an_env_variable_that_is_not_a_number_is_named_in_the_error(monkeypatch):
    monkeypatch.setenv("WOOF_EPOCHS", "three")
    with pytest.raises(ValueError, match="WOOF_EPOCHS"):
        wh.profiles.load()


def test_keyword_overrides_win_over_env_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("WOOF_EPOCHS", "3")
    profile = wh.profiles.load("full", epochs=5, data_dir=str(tmp_path))
    assert profile.epochs == 5
    assert profile.data_dir == tmp_path and isinstance(profile.data_dir, Path)
    # Fields not overridden keep the named profile's values.
    assert profile.weights == "imagenet"


def test_unknown_profile_name_raises_listing_the_choices():
    with pytest.raises(ValueError) as excinfo:
        wh.profiles.load("medium")
    assert "medium" in str(excinfo.value)
    for name in wh.profiles.PROFILE_NAMES:
        assert name in str(excinfo.value)


def test_unknown_profile_from_the_environment_raises_naming_the_variable(monkeypatch):
    monkeypatch.setenv("WOOF_PROFILE", "Full ")
    with pytest.raises(ValueError, match="WOOF_PROFILE") as excinfo:
        wh.profiles.load()
    assert "smoke" in str(excinfo.value) and "full" in str(excinfo.value)


def test_unknown_field_raises_listing_the_fields():
    with pytest.raises(ValueError) as excinfo:
        wh.profiles.load("smoke", epoch=3)
    message = str(excinfo.value)
    assert "epoch" in message
    for name in ("epochs", "image_size_px", "batch_size", "weights", "data_dir"):
        assert name in message


@pytest.mark.parametrize(
    "override, word",
    [
        (dict(image_size_px=16), "image_size_px"),
        (dict(batch_size=0), "batch_size"),
        (dict(epochs=0), "epochs"),
        (dict(weights="random"), "weights"),
        (dict(dataset="imagewoof-160"), "imagewoof-160"),
    ],
)
def test_invalid_field_values_are_refused(override, word):
    with pytest.raises(ValueError, match=word):
        wh.profiles.load("smoke", **override)


def test_unknown_dataset_error_lists_the_known_ones():
    with pytest.raises(ValueError) as excinfo:
        wh.profiles.load("full", dataset="imagewoof")
    for name in ("synthetic", *wh.catalog.VERSIONS):
        assert name in str(excinfo.value)


def test_smoke_describe_says_its_numbers_are_not_real_results():
    text = wh.profiles.load("smoke").describe()
    assert "NOT real results" in text
    assert "not photographs" in text
    assert "weights=None" in text


def test_full_describe_says_real_results_and_imagenet_weights():
    text = wh.profiles.load("full").describe()
    assert "NOT real results" not in text
    assert "real results" in text
    assert "ImageNet weights" in text
    assert wh.catalog.DEFAULT_VERSION in text


def test_full_profile_with_random_weights_does_not_claim_real_results():
    profile = wh.profiles.load("full", weights=None)
    assert not profile.real_results
    assert "NOT real results" in profile.describe()


def test_load_reads_woof_profile_when_no_name_is_given(monkeypatch):
    monkeypatch.setenv("WOOF_PROFILE", "full")
    assert wh.profiles.load().name == "full"


def test_there_is_no_current_profile_to_fall_back_on():
    """Every function that depends on a profile takes it: none reads a process-wide one."""
    assert not hasattr(wh.profiles, "current") and not hasattr(wh.profiles, "use")
    with pytest.raises(TypeError):
        wh.data.dataset_root()  # noqa  (the profile is a required argument)


def test_setup_prints_the_description_and_returns_the_profile(capsys, tmp_path):
    profile = wh.setup("smoke", data_dir=tmp_path)
    assert capsys.readouterr().out.strip() == profile.describe()
    assert profile == wh.profiles.load("smoke", data_dir=tmp_path)


@pytest.mark.parametrize("name", wh.profiles.PROFILE_NAMES)
def test_the_banner_fits_the_books_code_column(name, tmp_path):
    text = wh.profiles.load(name, data_dir=tmp_path).describe()
    assert max(len(line) for line in text.splitlines()) < 80, text


@pytest.mark.parametrize(
    "variable, value",
    [
        ("WOOF_EPOCHS", "abc"),
        ("WOOF_EPOCHS", "-3"),
        ("WOOF_BATCH_SIZE", "0"),
        ("WOOF_IMAGE_SIZE_PX", "-1"),
        ("WOOF_MAX_IMAGES_PER_CLASS", "0"),
        ("WOOF_MAX_IMAGES_PER_CLASS", "-1"),
        ("WOOF_SYNTHETIC_TRAIN_PER_CLASS", "0"),
        ("WOOF_SYNTHETIC_VAL_PER_CLASS", "0"),
        ("WOOF_SYNTHETIC_SHORTEST_SIDE_PX", "4"),
        ("WOOF_SEED", "-1"),
        ("WOOF_ALLOW_CPU", "maybe"),
        ("WOOF_DATASET", "imagewoof"),
        ("WOOF_WEIGHTS", "/nonexistent/resnet50.h5"),
    ],
)
def test_a_bad_variable_is_refused_up_front_naming_it_its_value_and_the_fix(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as excinfo:
        wh.profiles.load("smoke")
    message = str(excinfo.value)
    assert f"{variable}={value!r}" in message, message
    assert any(fix in message for fix in ("unset it", "use 1 or 0", "Use None")), message
    assert "\n" not in message


def test_a_bad_keyword_is_named_as_the_keyword():
    with pytest.raises(ValueError, match=r"max_images_per_class=0: must be at least 1"):
        wh.profiles.load("smoke", max_images_per_class=0)


def test_a_keyword_that_overrides_a_good_variable_is_named_as_the_keyword(monkeypatch):
    monkeypatch.setenv("WOOF_BATCH_SIZE", "8")
    with pytest.raises(ValueError) as excinfo:
        wh.profiles.load("smoke", batch_size=0)
    assert str(excinfo.value).startswith("batch_size=0:")


def test_a_data_dir_that_is_a_file_is_refused(tmp_path):
    a_file = tmp_path / "data"
    a_file.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        wh.profiles.load("smoke", data_dir=a_file)


def test_the_smallest_valid_values_are_accepted():
    profile = wh.profiles.load(
        "smoke",
        image_size_px=32,
        batch_size=1,
        epochs=1,
        max_images_per_class=1,
        synthetic_train_per_class=1,
        synthetic_val_per_class=1,
        synthetic_shortest_side_px=8,
        seed=0,
    )
    assert (profile.batch_size, profile.max_images_per_class, profile.seed) == (1, 1, 0)
