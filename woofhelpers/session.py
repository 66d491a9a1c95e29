"""What every chapter's setup cell calls: the profile in use, and the software versions.

Taught in the introduction (``intro.md``).
"""

from __future__ import annotations

from woofhelpers import profiles


def setup(name: str | None = None, **overrides) -> profiles.Profile:
    """Select the profile (see :func:`woofhelpers.profiles.load`), print what it is and
    whether its numbers are real results, and return it."""
    profile = profiles.use(name, **overrides)
    print(profile.describe())
    return profile


def versions() -> dict[str, str]:
    """Print and return the Python, TensorFlow and Keras versions and the GPUs found,
    with a hint when there is none."""
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
    if not gpus:
        print("No GPU: fine for the smoke profile. For the full course in Colab choose"
              " Runtime > Change runtime type > GPU.")
    return found
