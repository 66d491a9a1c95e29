"""``python -m woofhelpers run-trial``: headless runs with Keras' progress output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOF_")}
    env.update(env_extra or {}, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "woofhelpers", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )


def test_an_unknown_trial_is_refused_with_the_valid_names():
    done = run_cli("run-trial", "trial9")
    assert done.returncode == 2
    assert "trial9" in done.stderr and "trial1" in done.stderr and "corrected" in done.stderr


def test_run_trial_trains_headless_and_writes_the_result_files(tmp_path):
    tiny = {
        "WOOF_DATA_DIR": str(tmp_path / "data"),
        "WOOF_RESULTS_DIR": str(tmp_path / "results"),
        "WOOF_SYNTHETIC_TRAIN_PER_CLASS": "3",
        "WOOF_SYNTHETIC_VAL_PER_CLASS": "5",
        "WOOF_SYNTHETIC_SHORTEST_SIDE_PX": "40",
        "WOOF_IMAGE_SIZE_PX": "32",
        "WOOF_BATCH_SIZE": "4",
        "WOOF_EPOCHS": "1",
    }
    done = run_cli("run-trial", "trial1", "--profile", "smoke", env_extra=tiny)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Profile: smoke" in done.stdout
    assert "head phase: epoch 1 of 1" in done.stdout and "val_accuracy" in done.stdout  # Keras' progress line
    folder = tmp_path / "results" / "smoke" / "trial1"
    result = json.loads((folder / "result.json").read_text())
    assert result["effective"]["image_size_px"] == 32 and result["history"]["head"]["epoch"] == [1]
    assert (folder / "learning_curves.png").stat().st_size > 0
    assert f"saved in {folder}" in done.stdout
