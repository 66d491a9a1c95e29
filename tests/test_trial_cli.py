"""``python -m woofhelpers run-trial``: headless runs with Keras' progress output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import woofhelpers as wh
from woofhelpers.__main__ import main

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOF_")}
    env.update(env_extra or {}, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "woofhelpers", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )


# Small enough to train in seconds (a few images per class, 32 px, one epoch).
TINY = {
    "WOOF_SYNTHETIC_TRAIN_PER_CLASS": "3",
    "WOOF_SYNTHETIC_VAL_PER_CLASS": "5",
    "WOOF_SYNTHETIC_SHORTEST_SIDE_PX": "40",
    "WOOF_IMAGE_SIZE_PX": "32",
    "WOOF_BATCH_SIZE": "4",
    "WOOF_EPOCHS": "1",
    "WOOF_MAX_IMAGES_PER_CLASS": "none",
}


def test_an_unknown_trial_is_refused_with_the_valid_names():
    done = run_cli("run-trial", "trial9")
    assert done.returncode == 2
    assert "trial9" in done.stderr and "trial1" in done.stderr and "corrected" in done.stderr


def test_run_trial_trains_headless_and_writes_the_result_files(tmp_path):
    tiny = {**TINY, "WOOF_DATA_DIR": str(tmp_path / "data"), "WOOF_RESULTS_DIR": str(tmp_path / "results")}
    done = run_cli("run-trial", "trial1", "--profile", "smoke", env_extra=tiny)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Profile: smoke" in done.stdout
    assert "head phase: epoch 1 of 1" in done.stdout and "val_accuracy" in done.stdout  # Keras' progress line
    folder = tmp_path / "results" / "smoke" / "trial1"
    result = json.loads((folder / "result.json").read_text())
    assert result["effective"]["image_size_px"] == 32 and result["history"]["head"]["epoch"] == [1]
    assert (folder / "learning_curves.png").stat().st_size > 0
    assert f"saved in {folder}" in done.stdout


# --- in this process, with the small stand-in for ResNet50 (tests/stand_ins.py) ---------


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory):
    """One data folder for the module: the tiny dataset is generated once."""
    return tmp_path_factory.mktemp("cli-data")


@pytest.fixture
def cli(clean_woof_env, shared_data, tmp_path, capsys):
    """Run ``python -m woofhelpers`` in this process, with the tiny settings (``WOOF_RESULTS_DIR``
    is ``tmp_path/default-results``); return (exit status, stdout, stderr)."""
    from stand_ins import install

    install(clean_woof_env)
    for name, value in {**TINY, "WOOF_DATA_DIR": str(shared_data)}.items():
        clean_woof_env.setenv(name, value)
    clean_woof_env.setenv("WOOF_RESULTS_DIR", str(tmp_path / "default-results"))

    def run(*args: str, **env: str):
        for name, value in env.items():
            clean_woof_env.setenv(name, value)
        try:
            status = main(list(args))
        except SystemExit as exit:  # argparse's usage errors
            status = exit.code
        out, err = capsys.readouterr()
        return status, out, err

    return run


def test_results_chooses_the_folder_and_retrain_trains_again(cli, tmp_path):
    chosen = tmp_path / "chosen"
    status, out, _ = cli("run-trial", "trial1", "--results", str(chosen))
    assert status == 0 and "head phase: epoch 1 of 1" in out
    folder = chosen / "smoke" / "trial1"
    assert f"saved in {folder}" in out and (folder / "result.json").is_file()
    assert not (tmp_path / "default-results").exists()  # --results wins over WOOF_RESULTS_DIR
    first = json.loads((folder / "result.json").read_text())
    (folder / "left-by-the-first-run").write_text("")

    status, out, _ = cli("run-trial", "trial1", "--results", str(chosen))  # loads, trains nothing
    assert status == 0 and "phase: epoch" not in out and (folder / "left-by-the-first-run").exists()

    status, out, _ = cli("run-trial", "trial1", "--results", str(chosen), "--retrain")
    assert status == 0 and "head phase: epoch 1 of 1" in out
    assert not (folder / "left-by-the-first-run").exists()  # the old folder was replaced
    second = json.loads((folder / "result.json").read_text())
    assert second["created"] >= first["created"] and second["history"]["head"]["epoch"] == [1]


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "variable, value, words",
    [
        ("WOOF_EPOCHS", "abc", ["WOOF_EPOCHS='abc'", "whole number"]),
        ("WOOF_BATCH_SIZE", "0", ["WOOF_BATCH_SIZE='0'", "at least 1", "unset"]),
        ("WOOF_MAX_IMAGES_PER_CLASS", "0", ["WOOF_MAX_IMAGES_PER_CLASS='0'", "at least 1"]),
        ("WOOF_SYNTHETIC_VAL_PER_CLASS", "0", ["WOOF_SYNTHETIC_VAL_PER_CLASS='0'", "at least 1"]),
        ("WOOF_IMAGE_SIZE", "-1", ["WOOF_IMAGE_SIZE", "did you mean WOOF_IMAGE_SIZE_PX"]),
        ("WOOF_PROFILE", "medium", ["'medium'", "smoke", "full"]),
        ("WOOF_DATA_DIR", "/etc/hostname", ["WOOF_DATA_DIR='/etc/hostname'", "is a file"]),
    ],
)
def test_a_setting_that_cannot_work_is_one_line_and_exit_status_2(cli, variable, value, words):
    status, _, err = cli("run-trial", "trial1", **{variable: value})
    assert status == 2
    line = one_error_line(err)
    for word in words:
        assert word in line


def test_a_generated_dataset_too_small_for_the_split_is_one_line_naming_the_setting(cli):
    status, _, err = cli("run-trial", "trial1", WOOF_SYNTHETIC_VAL_PER_CLASS="1")
    assert status == 1
    line = one_error_line(err)
    assert "'official'" in line and "WOOF_SYNTHETIC_VAL_PER_CLASS" in line


def test_results_that_is_a_file_is_a_usage_error(cli, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    status, _, err = cli("run-trial", "trial1", "--results", str(a_file))
    assert status == 2 and f"{a_file} is a file" in err and "Traceback" not in err


def test_a_damaged_result_is_one_line_naming_the_file_and_retrain(cli, tmp_path):
    results = tmp_path / "results"
    assert cli("run-trial", "trial1", "--results", str(results))[0] == 0
    saved = results / "smoke" / "trial1" / "result.json"
    saved.write_text(saved.read_text()[:100])
    status, _, err = cli("run-trial", "trial1", "--results", str(results))
    assert status == 1
    line = one_error_line(err)
    assert str(saved) in line and "--retrain" in line
    # --debug shows the traceback instead: the error itself.
    with pytest.raises(wh.results.DamagedFileError):
        main(["run-trial", "trial1", "--results", str(results), "--debug"])
    assert cli("run-trial", "trial1", "--results", str(results), "--retrain")[0] == 0


def test_a_result_saved_with_other_settings_names_the_flag_retrain(cli, tmp_path):
    results = tmp_path / "results"
    assert cli("run-trial", "trial1", "--results", str(results))[0] == 0
    status, _, err = cli("run-trial", "trial1", "--results", str(results), WOOF_EPOCHS="2")
    assert status == 1 and "--retrain" in one_error_line(err)


def test_an_interrupted_run_says_how_to_resume(cli, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(wh.trials, "run_trial", interrupted)
    status, _, err = cli("run-trial", "trial1")
    assert status == 130 and "resume" in err and "Traceback" not in err


def test_errors_print_no_traceback_from_the_real_command_line(tmp_path):
    done = run_cli("run-trial", "trial1", env_extra={"WOOF_EPOCHS": "abc", "WOOF_RESULTS_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: WOOF_EPOCHS='abc' is not a whole number; set it to one (such as WOOF_EPOCHS=3), or unset it"
        " for the profile's default"
    ]
