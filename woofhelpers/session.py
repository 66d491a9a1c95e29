"""What every chapter's setup cell calls: the profile in use, and the software versions.

Taught in the introduction (``intro.md``).
"""

from __future__ import annotations

import re
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


def setup(name: str | None = None, **overrides: Any) -> profiles.Profile:
    """Select the profile (see :func:`woofhelpers.profiles.load`), print what it is and
    whether its numbers are real results, and return it."""
    profile = profiles.use(name, **overrides)
    print(profile.describe())
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
