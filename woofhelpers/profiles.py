"""Profiles: one switch between the real course and its offline smoke run.

A profile says which data to use, whether the ResNet50 starts from ImageNet weights,
and how big and long a run is. Chapters never change when you switch: set the
environment variable ``WOOF_PROFILE`` (``smoke`` or ``full``) before the first
``import woofhelpers``, or call :func:`use`. The default is ``smoke``, which runs
anywhere with no network; each chapter's Colab setup cell selects ``full``.

Any field can be overridden, either with keywords (``wh.profiles.use("full",
epochs=3)``) or with environment variables named after the field
(``WOOF_EPOCHS=3``, ``WOOF_DATA_DIR=/content/data``).

Taught in the introduction (``intro.md``) and used by every chapter.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_VAR = "WOOF_PROFILE"
DEFAULT_PROFILE = "smoke"


def _default_data_dir() -> Path:
    """``data/`` of the repository when running from a checkout, else ``~/woof-data``."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "data").is_dir():
        return checkout / "data"
    return Path.home() / "woof-data"


@dataclass(frozen=True)
class Profile:
    """How a chapter runs: what data, which weights, how big, how long.

    ``image_size_px``, ``batch_size`` and ``epochs`` are ``None`` in the full
    profile, meaning "whatever the trial says"; the smoke profile sets them small.
    """

    name: str
    dataset: str  # "synthetic", or a version of wh.data.VERSIONS
    weights: str | None  # None (random init) or "imagenet"
    image_size_px: int | None
    batch_size: int | None
    epochs: int | None  # per training phase
    data_dir: Path
    seed: int = 0
    # Only used when dataset == "synthetic".
    synthetic_train_per_class: int = 30
    synthetic_val_per_class: int = 10
    synthetic_shortest_side_px: int = 80
    # Trials only: keep at most this many files of each class in each part of a split
    # (None: all). The smoke profile uses a few, so a trial chapter runs in seconds.
    max_images_per_class: int | None = None

    @property
    def real_results(self) -> bool:
        """Whether numbers produced under this profile mean anything about dogs."""
        return self.dataset != "synthetic" and self.weights == "imagenet"

    def describe(self) -> str:
        """A few lines, each under 80 characters (the width of the book's code column), that
        say plainly what this profile is and what its numbers mean."""
        if self.dataset == "synthetic":
            data = [
                "generated Imagewoof-shaped images, not photographs:",
                f"{self.synthetic_train_per_class} train + {self.synthetic_val_per_class} val per class,"
                f" shortest side {self.synthetic_shortest_side_px} px",
            ]
        else:
            data = [f"the real Imagewoof archive {self.dataset!r}"]
        weights = "ImageNet weights" if self.weights == "imagenet" else "random init (weights=None)"

        lines = [
            f"Profile: {self.name}",
            f"  data:   {data[0]}",
            *(f"          {more}" for more in data[1:]),
            f"  model:  ResNet50, {weights}",
        ]
        sizes = (self.image_size_px, self.batch_size, self.epochs)
        if sizes == (None, None, None):
            lines.append("  size:   image size, batch and epochs as each trial says")
        else:
            image, batch, epochs = (value or "as the trial says" for value in sizes)
            image = f"{image} px" if self.image_size_px else image
            lines.append(f"  size:   image {image}, batch {batch}, epochs {epochs}")
        if self.real_results:
            lines.append("  These are real results on Imagewoof.")
        else:
            lines += [
                "  SMOKE RUN: the numbers and pictures on this page test the code;",
                "  they are NOT real results.",
            ]
        return "\n".join(lines)


def _builtin(name: str) -> Profile:
    data_dir = _default_data_dir()
    if name == "smoke":
        return Profile(
            name="smoke",
            dataset="synthetic",
            weights=None,
            image_size_px=64,
            batch_size=16,
            epochs=2,
            data_dir=data_dir,
            max_images_per_class=4,
        )
    if name == "full":
        # Imagewoof v1 is what the original exercise trained on; see wh.data.DEFAULT_VERSION.
        return Profile(
            name="full",
            dataset="imagewoof-320",
            weights="imagenet",
            image_size_px=None,
            batch_size=None,
            epochs=None,
            data_dir=data_dir,
        )
    raise ValueError(f"unknown profile {name!r}; choose 'smoke' or 'full'")


PROFILE_NAMES = ("smoke", "full")
FIELDS = tuple(f.name for f in dataclasses.fields(Profile))


def _parse(field: dataclasses.Field, text: str, source: str):
    """Turn an environment variable's text into the field's type."""
    if field.name == "data_dir":
        return Path(text).expanduser()
    if field.name == "weights":
        return None if text.lower() in ("", "none") else text
    if field.type in ("int", "int | None"):
        if text.lower() in ("", "none") and "None" in field.type:
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{source}={text!r} is not a whole number") from None
    return text


def _validate(profile: Profile) -> Profile:
    from woofhelpers import data  # local import: data imports profiles

    known = ("synthetic", *data.VERSIONS)
    if profile.dataset not in known:
        raise ValueError(f"dataset {profile.dataset!r} is unknown; choose one of {known}")
    if profile.weights not in (None, "imagenet"):
        raise ValueError(f"weights {profile.weights!r}: use None or 'imagenet'")
    if profile.image_size_px is not None and profile.image_size_px < 32:
        raise ValueError(f"image_size_px={profile.image_size_px}: ResNet50 needs at least 32")
    for name in ("batch_size", "epochs", "synthetic_train_per_class"):
        value = getattr(profile, name)
        if value is not None and value < 1:
            raise ValueError(f"{name}={value}: must be at least 1")
    return profile


def load(name: str | None = None, **overrides: Any) -> Profile:
    """Build a profile: the named one (default: ``$WOOF_PROFILE``, else ``smoke``),
    then ``WOOF_<FIELD>`` environment variables, then keyword ``overrides``.

    Raises ``ValueError`` naming the valid choices for an unknown profile or field.
    """
    name = name or os.environ.get(ENV_VAR) or DEFAULT_PROFILE
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r} (from {ENV_VAR} or the argument); choose one of {PROFILE_NAMES}")
    profile = _builtin(name)
    by_name = {f.name: f for f in dataclasses.fields(Profile)}
    changes = {}
    for field_name, field in by_name.items():
        env = f"WOOF_{field_name.upper()}"
        if field_name != "name" and env in os.environ:
            changes[field_name] = _parse(field, os.environ[env], env)
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}; the fields are {FIELDS}")
    changes.update(overrides)
    if "data_dir" in changes:
        changes["data_dir"] = Path(changes["data_dir"]).expanduser()
    return _validate(dataclasses.replace(profile, **changes))


_current: Profile | None = None


def current() -> Profile:
    """The profile in use: the one set by :func:`use`, else :func:`load`'s default."""
    global _current
    if _current is None:
        _current = load()
    return _current


def use(name: str | None = None, **overrides: Any) -> Profile:
    """Select the profile for this session and return it (see :func:`load`)."""
    global _current
    _current = load(name, **overrides)
    return _current
