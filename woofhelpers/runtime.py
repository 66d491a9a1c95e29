"""How long a trial takes, on a Colab GPU and on a CPU, and the guard that stops a
full-size run on a machine without a GPU.

The estimates are per-image costs times images times epochs, scaled by the number of
pixels. Their sources:

- **GPU**: the original exercise's own Colab logs (every epoch's Keras line, with its
  seconds: :func:`woofhelpers.original.epoch_lines`): a head epoch of
  trial 1 (12,454 images at 160 px, frozen base, no cached features) took 24-27 s,
  about 2.0 ms per image; a fine-tuning epoch of
  trials 2-3 took 28-47 s, about 3 ms per image. Colab's free GPU is a T4 today; the
  original's GPU model was not recorded, so read these as "roughly".
- **CPU**: measured on this course's 2-core test machine (AMD EPYC, TensorFlow 2.21):
  ResNet50 at 160 px, batch 32, about 49 ms per image forward and 240 ms per image for a
  training step through the whole network.

The engine computes the frozen base's output once (cached features), so a head phase
costs about one forward pass over the training and validation images, and each
fine-tuning epoch one training step per training image.

Taught in *Running the course* (``running.md``) and used by :func:`woofhelpers.trials.run_trial`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from woofhelpers.profiles import Profile
    from woofhelpers.recipes import Trial

REFERENCE_SIZE_PX = 160
# Seconds per image at 160 px: (forward through the frozen base, training step).
SECONDS_PER_IMAGE = {"gpu": (0.0020, 0.0030), "cpu": (0.049, 0.240)}
# Images in each part of each split on the real Imagewoof v1 (the full profile's data); the
# offline rehearsal checks these against the splits built on a v1-shaped archive.
FULL_SPLIT_SIZES = {
    "official": {"train": 12_454, "validation": 400, "test": 100},
    "pooled": {"train": 10_364, "validation": 2_072, "test": 518},
    "pooled_leakage_free": {"train": 9_964, "validation": 2_490, "test": 500},
    "leakage_free": {"train": 11_208, "validation": 1_246, "test": 500},
}
# A run the guard lets through on a CPU without asking: the smoke profile's trials and the
# offline rehearsal take a minute or two; anything estimated above this stops.
CPU_LIMIT_S = 15 * 60


class NeedsGPU(RuntimeError):
    """A full-size run was asked for on a machine without a GPU; the message says how long
    it would take and how to go on anyway."""


@dataclass(frozen=True)
class Estimate:
    """Estimated seconds of one trial on a GPU and on a CPU."""

    gpu_s: float
    cpu_s: float

    def describe(self) -> str:
        """Both estimates in words, e.g. ``"about 9 min on a Colab GPU, 14 h on a CPU"``."""
        return f"about {duration(self.gpu_s)} on a Colab GPU, {duration(self.cpu_s)} on a 2-core CPU"


def duration(seconds: float) -> str:
    """``"40 s"``, ``"12 min"`` or ``"3.5 h"``: a duration in the unit that reads best."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate(trial: Trial, images: dict[str, int]) -> Estimate:
    """Estimate how long ``trial`` (as the profile runs it) takes on ``images`` (the number
    of images in each part of its split: ``{"train": ..., "validation": ..., "test": ...}``)."""
    scale = (trial.image_size_px / REFERENCE_SIZE_PX) ** 2
    forward_images = images["train"] + images["validation"] + images["test"]  # features once, then the tests
    steps = trial.fine_tune_epochs * images["train"] if trial.fine_tune else 0
    validation = trial.fine_tune_epochs * images["validation"] if trial.fine_tune else 0

    def on(device: str) -> float:
        forward, train = SECONDS_PER_IMAGE[device]
        return scale * ((forward_images + validation) * forward + steps * train)

    return Estimate(gpu_s=on("gpu"), cpu_s=on("cpu"))


def full_size(trial: Trial) -> Estimate:
    """How long ``trial`` takes in the full profile: its own image size and epochs, on the
    real v1 split (:data:`FULL_SPLIT_SIZES`)."""
    return estimate(trial, FULL_SPLIT_SIZES[trial.split])


def check_device(trial: Trial, profile: Profile, images: dict[str, int], gpu: bool) -> Estimate:
    """Return the estimate; raise :class:`NeedsGPU` when there is no GPU, the run would take
    longer than :data:`CPU_LIMIT_S` on a CPU, and the profile does not allow it
    (``WOOF_ALLOW_CPU=1``)."""
    found = estimate(trial, images)
    if not gpu and found.cpu_s > CPU_LIMIT_S and not profile.allow_cpu:
        raise NeedsGPU(
            f"{trial.name} would take {found.describe()}, and this machine has no GPU."
            " In Colab choose Runtime > Change runtime type > GPU; to shrink the run set"
            " WOOF_PROFILE=smoke (or WOOF_EPOCHS, WOOF_IMAGE_SIZE_PX, WOOF_MAX_IMAGES_PER_CLASS);"
            " to train on this CPU anyway set WOOF_ALLOW_CPU=1."
        )
    return found
