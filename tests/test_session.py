"""The setup cell's helpers: the profile banner and the version guard."""

from pathlib import Path

import tomllib

import woofhelpers as wh
from woofhelpers import session

REPO = Path(__file__).resolve().parent.parent


def test_setup_prints_the_profile_and_says_smoke_is_not_real(capsys, monkeypatch):
    monkeypatch.delenv("WOOF_PROFILE", raising=False)
    profile = wh.setup()
    out = capsys.readouterr().out
    assert profile.name == "smoke"
    assert out.startswith("Profile: smoke") and "NOT real results" in out


def test_versions_outside_the_supported_range_get_a_message_naming_the_fix():
    problems = session.version_problems({"tensorflow": "2.15.1", "keras": "3.15.1"})
    assert len(problems) == 1
    assert "tensorflow 2.15.1" in problems[0] and "pip install 'tensorflow>=2.16,<3'" in problems[0]
    assert session.version_problems({"tensorflow": "3.0.0rc1", "keras": "2.15.0"}) != []
    assert session.version_problems({"tensorflow": "2.21.0", "keras": "3.15.1"}) == []


def test_the_installed_versions_are_supported():
    import keras
    import tensorflow as tf

    assert session.version_problems({"tensorflow": tf.__version__, "keras": keras.__version__}) == []


def test_the_tf_extra_declares_the_same_range_as_the_guard():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["tf"]
    declared = {f"{package}>={low},<{high}" for package, (low, high) in session.SUPPORTED.items()}
    assert set(extra) == declared
