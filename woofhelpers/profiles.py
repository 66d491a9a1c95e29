"""Profiles: one switch between the real course and its offline smoke run.

A profile says which data to use, whether the ResNet50 starts from ImageNet weights,
and how big and long a run is. Chapters never change when you switch: set the
environment variable ``WOOF_PROFILE`` (``smoke`` or ``full``), or name it
(``profile = wh.setup("full")``, or :func:`load`). The default is ``smoke``, which runs
anywhere with no network; each chapter's Colab setup cell selects ``full``. There is no
"current" profile: every function that depends on one takes it as an argument, and a
chapter resolves it once, in its setup cell, and passes it on.

Any field can be overridden, either with keywords (``wh.profiles.load("full",
epochs=3)``) or with environment variables named after the field
(``WOOF_EPOCHS=3``, ``WOOF_DATA_DIR=/content/data``).

Three facts are kept apart, because each can be real or not on its own:

- **data**: generated (``dataset="synthetic"``) or a real Imagewoof archive
  (:attr:`Profile.real_data`), downloaded from fast.ai or from a mirror you name
  (``WOOF_ARCHIVE_MIRROR``: a base URL or a local folder holding the ``.tgz`` files);
- **weights**: none (random init), ``"imagenet"`` (Keras downloads them), or a weights
  file you name (``WOOF_WEIGHTS=/path/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``);
  :attr:`Profile.imagenet_weights` says whether they are ImageNet's own;
- **size**: image size, batch size, epochs, images per class.

Only real data *and* ImageNet's weights give real results (:attr:`Profile.real_results`).

Taught in the introduction (``intro.md``) and used by every chapter.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from woofhelpers import catalog

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
    dataset: str  # "synthetic", or a version of wh.catalog.VERSIONS
    weights: str | None  # None (random init), "imagenet", or the path of a weights file
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
    # Where the real archives are downloaded from: None for fast.ai's bucket, else a base
    # URL (http, https, ftp) or a local folder holding imagewoof-320.tgz / imagewoof2-320.tgz.
    archive_mirror: str | None = None
    # Train a full-size run without a GPU anyway (it takes hours; see wh.trials.run_trial).
    allow_cpu: bool = False

    @property
    def real_data(self) -> bool:
        """Whether the data are a real Imagewoof archive (photographs), not generated."""
        return self.dataset != "synthetic"

    @property
    def pretrained(self) -> bool:
        """Whether the ResNet50 starts from weights (ImageNet's or a file), not random."""
        return self.weights is not None

    @property
    def imagenet_weights(self) -> bool:
        """Whether the ResNet50 starts from ImageNet's weights: ``"imagenet"``, or a file that
        is Keras' published ImageNet file (checked by its MD5, as Keras checks a download)."""
        if self.weights is None:
            return False
        if self.weights == "imagenet":
            return True
        return _md5(weights_file(self, include_top=False)) == KERAS_RESNET50_MD5[False]

    @property
    def real_results(self) -> bool:
        """Whether numbers produced under this profile mean anything about dogs: real data
        and ImageNet's weights. A mirror of the archive is fine; stand-in weights are not."""
        return self.real_data and self.imagenet_weights

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
            data = [
                f"the real Imagewoof archive {self.dataset!r}, from",
                catalog.archive_url(self.dataset, self.archive_mirror),
            ]
        if self.weights is None:
            weights = ["ResNet50, random init (weights=None)"]
        elif self.weights == "imagenet":
            weights = ["ResNet50, ImageNet weights (weights='imagenet')"]
        else:
            kind = "ImageNet's own (MD5 checked)" if self.imagenet_weights else "NOT ImageNet's: stand-in weights"
            weights = ["ResNet50, weights from the file", str(self.weights), kind]

        lines = [
            f"Profile: {self.name}",
            f"  data:   {data[0]}",
            *(f"          {more}" for more in data[1:]),
            f"  model:  {weights[0]}",
            *(f"          {more}" for more in weights[1:]),
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
        elif self.real_data:
            lines += [
                "  REHEARSAL: real-format data, but no ImageNet weights: the numbers",
                "  on this page test the code; they are NOT real results.",
            ]
        else:
            lines += [
                "  SMOKE RUN: the numbers and pictures on this page test the code;",
                "  they are NOT real results.",
            ]
        return "\n".join(lines)


# Keras' published ResNet50 ImageNet weight files and their MD5s (keras.applications.resnet's
# WEIGHTS_HASHES): with the classifier (include_top=True) and without it.
KERAS_RESNET50_FILES = {
    True: "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
    False: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
KERAS_RESNET50_MD5 = {True: "2cb95161c43110f7111970584f804107", False: "4d473c1dd8becc155b73f8504c6f6626"}


@functools.lru_cache(maxsize=8)
def _md5_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _md5(path: Path) -> str:
    stat = path.stat()
    return _md5_cached(str(path), stat.st_size, stat.st_mtime_ns)


def weights_file(profile: Profile, include_top: bool = False) -> str | Path | None:
    """What to pass as ``keras.applications.ResNet50(weights=...)`` under ``profile``.

    ``None`` and ``"imagenet"`` pass through. A path names the file for the base without
    its classifier (``include_top=False``, what the trials build); the zero-training
    baseline (``include_top=True``) takes Keras' file with the classifier,
    ``resnet50_weights_tf_dim_ordering_tf_kernels.h5``, from the same folder. A path may
    also be a folder holding Keras' files under their published names. Raises
    ``FileNotFoundError`` naming the missing file and the fix.
    """
    if profile.weights in (None, "imagenet"):
        return profile.weights
    given = Path(profile.weights).expanduser()
    folder = given if given.is_dir() else given.parent
    path = given if (given.is_file() and not include_top) else folder / KERAS_RESNET50_FILES[include_top]
    if not path.is_file():
        what = "with its ImageNet classifier (for the zero-training baseline)" if include_top else "without top"
        raise FileNotFoundError(
            f"no ResNet50 weights file {path} (the network {what}); WOOF_WEIGHTS={profile.weights!r} names"
            f" a file or a folder holding Keras' {KERAS_RESNET50_FILES[include_top]}. Put the file there,"
            " or set WOOF_WEIGHTS=imagenet to let Keras download it."
        )
    return path


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
        # Imagewoof v1 is what the original exercise trained on; see wh.catalog.DEFAULT_VERSION.
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
    if field.name in ("weights", "archive_mirror") and text.lower() in ("", "none"):
        return None
    if field.name in ("weights", "archive_mirror"):
        return text
    if field.type == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{source}={text!r}: use 1 or 0 (true or false)")
    if field.type in ("int", "int | None"):
        if text.lower() in ("", "none") and "None" in field.type:
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(
                f"{source}={text!r} is not a whole number; set it to one (such as {source}=3), or unset it"
                " for the profile's default"
            ) from None
    return text


def _setting(profile: Profile, name: str) -> str:
    """How an error names a field's value: the ``WOOF_`` variable it came from, when it did
    (so the message names what the user typed), else ``name=value``."""
    variable, value = f"WOOF_{name.upper()}", getattr(profile, name)
    field = next(f for f in dataclasses.fields(Profile) if f.name == name)
    if variable in os.environ:
        try:
            from_environment = _parse(field, os.environ[variable], variable) == value
        except ValueError:
            from_environment = False
        if from_environment:
            return f"{variable}={os.environ[variable]!r}"
    return f"{name}={value!r}"


def _refuse(profile: Profile, name: str, problem: str) -> ValueError:
    """A ``ValueError`` that names the setting, says what is wrong with it and how to fix it."""
    setting = _setting(profile, name)
    if setting.startswith("WOOF_"):
        fix = f"change {setting.split('=')[0]}, or unset it for the profile's default"
    else:
        fix = f"pass another {name}"
    return ValueError(f"{setting}: {problem}; {fix}")


# The smallest value each whole-number field accepts, and why.
_AT_LEAST = {
    "image_size_px": (catalog.MIN_IMAGE_SIZE_PX, "ResNet50 needs images of at least 32 px"),
    "batch_size": (1, "a batch holds at least 1 image"),
    "epochs": (1, "each phase trains at least 1 epoch"),
    "max_images_per_class": (1, "none keeps every image"),
    "synthetic_train_per_class": (1, "the generated dataset needs at least 1 train image per class"),
    "synthetic_val_per_class": (1, "the generated dataset needs at least 1 val image per class"),
    "synthetic_shortest_side_px": (8, "generated images need a shortest side of at least 8 px"),
    "seed": (0, "a seed is a whole number of 0 or more"),
}


def _validate(profile: Profile) -> Profile:
    """Refuse a profile that could only fail later, with a message that names the setting
    (the ``WOOF_`` variable, when it came from one), what is wrong, and the fix."""
    known = ("synthetic", *catalog.VERSIONS)
    if profile.dataset not in known:
        raise _refuse(profile, "dataset", f"unknown dataset; choose one of {known}")
    if profile.weights not in (None, "imagenet"):
        # A path: a weights file (or a folder of Keras' files) that must exist now, not
        # minutes later when the first model is built.
        path = Path(profile.weights).expanduser()
        if not path.exists():
            raise ValueError(
                f"{_setting(profile, 'weights')}: no such file or folder. Use None (random init),"
                " 'imagenet' (Keras downloads ImageNet's weights) or the path of a ResNet50 weights"
                f" file such as {KERAS_RESNET50_FILES[False]}"
            )
        if path.is_file() and path.suffix not in (".h5", ".keras") and not path.name.endswith(".weights.h5"):
            raise ValueError(f"weights file {path}: Keras reads .h5 weight files; got {path.suffix!r}")
    for name, (least, why) in _AT_LEAST.items():
        value = getattr(profile, name)
        if value is not None and value < least:
            raise _refuse(profile, name, f"must be at least {least} ({why})")
    if profile.data_dir.exists() and not profile.data_dir.is_dir():
        raise _refuse(profile, "data_dir", "is a file, not a folder")
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
    _refuse_unknown_variables()
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


# WOOF_ variables that are not profile fields: the profile's name, and settings read elsewhere.
OTHER_VARIABLES = {
    ENV_VAR: "the profile: smoke or full",
    "WOOF_RESULTS_DIR": "where trial results go (wh.results.results_dir)",
    "WOOF_INSTALL_SPEC": "what a chapter's Colab setup cell installs (pip requirement)",
    "WOOF_DRIVE_DIR": "where Google Drive is mounted in Colab (wh.session)",
    "WOOF_CHROMIUM": "the browser of the book's browser test",
    "WOOF_REAL_SAMPLE": "a folder of real sample photos for the tests",
}


def _refuse_unknown_variables() -> None:
    """Refuse a ``WOOF_`` variable that nothing reads (a typo would otherwise be silently
    ignored and the run would use the default), suggesting the closest name."""
    known = {f"WOOF_{field.upper()}" for field in FIELDS if field != "name"} | set(OTHER_VARIABLES)
    for variable in sorted(v for v in os.environ if v.startswith("WOOF_") and v not in known):
        close = difflib.get_close_matches(variable, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ValueError(
            f"unknown environment variable {variable}: {hint}The profile's variables are"
            f" {', '.join(sorted(known))}. Rename or unset it."
        )


def record(profile: Profile) -> dict:
    """What of ``profile`` a result depends on, as a plain dict (saved in every trial result
    and checkpoint, and compared when one is loaded): every field but where the data and
    the archive are and whether a CPU run was allowed, which change no result, plus
    ``real_results``, so a page that shows a saved result can say whether its numbers mean
    anything about dogs without the weights file at hand."""
    saved = dataclasses.asdict(profile)
    for where in ("data_dir", "archive_mirror", "allow_cpu"):
        saved.pop(where)
    saved["real_results"] = profile.real_results
    return saved
