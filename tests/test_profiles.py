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
    assert profile.dataset in wh.data.VERSIONS
    assert profile.dataset == wh.data.DEFAULT_VERSION
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
    for name in ("synthetic", *wh.data.VERSIONS):
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
    assert wh.data.DEFAULT_VERSION in text


def test_full_profile_with_random_weights_does_not_claim_real_results():
    profile = wh.profiles.load("full", weights=None)
    assert not profile.real_results
    assert "NOT real results" in profile.describe()


def test_use_selects_the_profile_that_current_returns(tmp_path):
    selected = wh.profiles.use("full", data_dir=tmp_path)
    assert wh.profiles.current() is selected
    assert wh.profiles.current().name == "full"


def test_current_reads_woof_profile_when_nothing_was_selected(monkeypatch):
    monkeypatch.setenv("WOOF_PROFILE", "full")
    assert wh.profiles.current().name == "full"


def test_setup_prints_the_description_and_selects_the_profile(capsys, tmp_path):
    profile = wh.setup("smoke", data_dir=tmp_path)
    assert capsys.readouterr().out.strip() == profile.describe()
    assert wh.profiles.current() is profile


@pytest.mark.parametrize("name", wh.profiles.PROFILE_NAMES)
def test_the_banner_fits_the_books_code_column(name, tmp_path):
    text = wh.profiles.load(name, data_dir=tmp_path).describe()
    assert max(len(line) for line in text.splitlines()) < 80, text
