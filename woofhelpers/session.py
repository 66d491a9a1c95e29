"""What every chapter's setup cell calls: the profile in use, and the software versions.

Taught in the introduction (``intro.md``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from woofhelpers import profiles

# The versions the course is tested with, declared once: the `tf` extra in
# pyproject.toml must say the same (a test checks), and `versions()` warns outside it.
SUPPORTED = {"tensorflow": ("2.16", "3"), "keras": ("3.0", "4")}


def _release(version: str) -> tuple[int, ...]:
    """``"2.21.0rc1"`` -> ``(2, 21, 0)``: the leading numeric release of a version."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(n) for n in match.group().split(".")) if match else ()


def version_problems(installed: dict[str, str]) -> list[str]:
    """Messages for each package in ``installed`` whose version is outside :data:`SUPPORTED`."""
    problems = []
    for package, (low, high) in SUPPORTED.items():
        if package not in installed:
            continue
        have = _release(installed[package])
        if not _release(low) <= have < _release(high):
            problems.append(
                f"{package} {installed[package]} is outside the range this course is tested with"
                f" (>={low}, <{high}). Chapters may fail in unexpected ways; install a supported"
                f" version, e.g. pip install '{package}>={low},<{high}' (in Colab: choose a newer runtime"
                " version, or see CONTRIBUTING.md for how the course follows Colab's versions)."
            )
    return problems


DRIVE_ENV_VAR = "WOOF_DRIVE_DIR"
DEFAULT_DRIVE_DIR = "/content/drive/MyDrive"  # where Colab mounts Google Drive


def in_colab() -> bool:
    """Whether this runs in Google Colab (its ``google.colab`` module is loaded)."""
    return "google.colab" in sys.modules


def keep_results_on_drive() -> Path | None:
    """In Colab with Google Drive mounted, send trial results to ``MyDrive/woof/results``
    (unless ``WOOF_RESULTS_DIR`` is set) and return that folder; else ``None``.

    Each Colab notebook runs on its own machine, which forgets everything when it is
    recycled: results on Drive let a later chapter load a trial an earlier one trained
    instead of training it again.
    """
    drive = Path(os.environ.get(DRIVE_ENV_VAR, DEFAULT_DRIVE_DIR))
    if not drive.is_dir():
        return None
    folder = Path(os.environ.setdefault("WOOF_RESULTS_DIR", str(drive / "woof" / "results")))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def setup(name: str | None = None, **overrides: Any) -> profiles.Profile:
    """Make the profile (see :func:`woofhelpers.profiles.load`), print what it is and
    whether its numbers are real results, and return it.

    In Colab it also says where results are kept: on Google Drive when it is mounted
    (:func:`keep_results_on_drive`), else how to mount it.
    """
    profile = profiles.load(name, **overrides)
    print(profile.describe())
    if in_colab():
        kept = keep_results_on_drive()
        if kept:
            print(f"  results: kept on Google Drive, {kept}")
        else:
            print("  results: on this Colab machine only, lost when it is recycled.")
            print("  To keep them for later chapters, mount Google Drive (Files pane,")
            print("  or drive.mount('/content/drive')) and run this cell again.")
    return profile


def versions() -> dict[str, str]:
    """Print and return the Python, TensorFlow and Keras versions and the GPUs found,
    with a hint when there is none and a clear warning (not a stack trace) when
    TensorFlow or Keras is outside :data:`SUPPORTED`."""
    import platform

    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    found = {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gpus": ", ".join(g.name for g in gpus) or "none",
    }
    for key, value in found.items():
        print(f"{key:>10}: {value}")
    for problem in version_problems(found):
        print("WARNING:", problem)
    if not gpus:
        print("No GPU: fine for the smoke profile. For the full course in Colab,")
        print("choose Runtime > Change runtime type > GPU.")
    return found
