"""A published full run: the results of every trial, in a small bundle the book can show.

A full run (on a GPU, real data, ImageNet weights) lives in ``results/<profile>/``, which git
ignores, so the book cannot show it. :func:`publish` (on the command line ``python -m
woofhelpers publish --profile full``) runs or loads every registered trial of a profile and
writes a small bundle under ``results/published/``, which git keeps:

- ``bundle.json``: ``meta`` (when it was made, the software versions, the git commit of the
  checkout, the hardware, the profile and whether its numbers are real results) and, per
  trial, its settings, both phases' history, its summary row (images, accuracy and 95%
  interval on both test sets), test accuracy and loss, the confusion counts of both test
  sets, wall time and hardware; and ``gradcam``, the overlays listed with their breeds;
- ``gradcam/*.png``: Grad-CAM overlays of the corrected recipe on a few leakage-free test
  images, one per breed, at the trial's image size.

No weights and no per-image outputs: the bundle stays a few hundred KiB. It is written into
a temporary folder beside its place and renamed into place only when complete, so a run cut
short leaves the previous bundle (or none), never half of one. :func:`load` reads it back as a
:class:`Bundle`; :func:`show` is what a trial page calls: the published curves, labelled, or
one sentence saying that no full run has been published yet.

Taught in the chapter *Results*; drawn on the trial pages.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from woofhelpers import data, gradcam, io, labels, pipeline, plots, profiles, recipes, trials
from woofhelpers import results as results_lib

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

BUNDLE_FILE = "bundle.json"
GRADCAM_DIR = "gradcam"
GRADCAM_TRIAL = "corrected"
GRADCAM_TEST_SET = "leakage_free"
NO_BUNDLE = (
    "No full run has been published yet: until one is, the original's own records are this page's only real evidence."
)
PUBLISH_AGAIN = "python -m woofhelpers publish --profile full"


def default_dir() -> Path:
    """Where the bundle goes and is read from: ``published/`` in :func:`woofhelpers.results.results_dir`
    (``$WOOF_RESULTS_DIR``, else ``results/`` of the checkout, else ``~/woof-results``)."""
    return results_lib.results_dir() / "published"


# --- reading ---------------------------------------------------------------------------


@dataclass
class Bundle:
    """A published run, as :func:`load` reads it: ``meta`` (how, when and where it was
    made), ``trials`` (one record per trial, by name) and ``gradcam`` (one dict per
    overlay: ``file``, relative to ``path``, and the ``true`` and ``predicted`` breed)."""

    path: Path
    meta: dict
    trials: dict
    gradcam: list[dict]

    @property
    def label(self) -> str:
        """One line that says what the bundle is: when, on what, with which data, weights
        and woofhelpers; it starts with "REHEARSAL bundle: NOT real results" unless the run
        had real data and ImageNet's weights."""
        profile = self.meta.get("profile", {})
        date = str(self.meta.get("created", "?"))[:10]
        made = f"{profile.get('name', '?')} run of {date} on {_hardware_words(self.meta)}"
        version = f"woofhelpers {self.meta.get('versions', {}).get('woofhelpers', '?')}"
        if self.meta.get("real_results") is True:
            return f"Published {made} (real data, ImageNet weights), {version}"
        return f"REHEARSAL bundle: NOT real results. Published {made} ({_inputs_words(profile)}), {version}"

    def _record(self, name: str) -> dict:
        if name not in self.trials:
            raise ValueError(f"the published run has no trial {name!r}; it has {tuple(self.trials)}")
        return self.trials[name]

    def table(self) -> pd.DataFrame:
        """One row per trial, indexed by trial: the number of images, the accuracy (%) and
        its 95% interval on the trial's own test split and on the leakage-free test set
        (``wh.results.TrialResult.summary`` of each, as published)."""
        import pandas as pd

        return pd.DataFrame([record["summary"] for record in self.trials.values()]).set_index("trial")

    def curves(self, name: str) -> Figure:
        """The published learning curves of trial ``name`` (``wh.plots.history_curves``),
        titled with the bundle's kind."""
        kind = "published run" if self.meta.get("real_results") is True else "REHEARSAL bundle, NOT real results"
        return plots.history_curves(self._record(name)["history"], f"{name}: learning curves ({kind})")

    def confusion(self, name: str, which: str = "leakage_free") -> pd.DataFrame:
        """The confusion counts of trial ``name`` on test set ``which`` (``"own"`` or
        ``"leakage_free"``): true breeds as rows, predicted breeds as columns."""
        import pandas as pd

        counts = self._record(name)["confusion"]
        if which not in counts:
            raise ValueError(f"unknown test set {which!r}; choose one of {tuple(counts)}")
        frame = pd.DataFrame(counts[which], index=list(labels.CLASS_NAMES), columns=list(labels.CLASS_NAMES))
        frame.index.name, frame.columns.name = "true", "predicted"
        return frame

    def gradcam_grid(self, columns: int = 3) -> Figure | None:
        """The published Grad-CAM overlays in a grid, each titled with its true and
        predicted breed (``wh.plots.image_grid``); ``None`` when the bundle has none."""
        if not self.gradcam:
            return None
        titles = [
            f"{entry['true']}\n→ {entry['predicted']} {'✓' if entry['true'] == entry['predicted'] else '✗'}"
            for entry in self.gradcam
        ]
        return plots.image_grid([self.path / entry["file"] for entry in self.gradcam], titles, columns=columns)


def _hardware_words(meta: dict) -> str:
    """``"NVIDIA T4"``, ``"a GPU"`` (trained on one whose name is not known), ``"CPU"``."""
    hardware = meta.get("hardware", {})
    trained_on = hardware.get("trained_on")
    names = hardware.get("gpu_names") or []
    if trained_on == "gpu":
        return ", ".join(dict.fromkeys(names)) if names else "a GPU"
    if trained_on == "mixed":
        return "GPU and CPU"
    return "CPU"


def _inputs_words(profile: dict) -> str:
    """What a profile record trained on: ``"generated data, random init"`` and the like."""
    data_words = "generated data" if profile.get("dataset") == "synthetic" else "real-format data"
    weights = profile.get("weights")
    if weights is None:
        weights_words = "random init"
    elif weights == "imagenet":
        weights_words = "ImageNet weights"
    else:
        weights_words = "weights from a file, not ImageNet's"
    return f"{data_words}, {weights_words}"


def load(path: str | Path | None = None) -> Bundle | None:
    """The bundle in ``path`` (a folder, or its ``bundle.json``; default :func:`default_dir`),
    or ``None`` when there is none. A bundle that cannot be read raises ``ValueError``
    naming the file and saying to publish again."""
    path = Path(path).expanduser() if path is not None else default_dir()
    file = path if path.name == BUNDLE_FILE else path / BUNDLE_FILE
    if not file.is_file():
        return None
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
        for key, kind in (("meta", dict), ("trials", dict), ("gradcam", list)):
            if not isinstance(record.get(key), kind):
                raise TypeError(f"{key} is not a {kind.__name__}")
    except (ValueError, TypeError, AttributeError) as error:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"{file} is damaged ({type(error).__name__}: {first_line}); publish again ({PUBLISH_AGAIN})"
        ) from error
    return Bundle(path=file.parent, meta=record["meta"], trials=record["trials"], gradcam=record["gradcam"])


def show(name: str, bundle: Bundle | None = None) -> Figure | None:
    """For a trial page: print the published bundle's label and return trial ``name``'s
    published learning curves. Without a bundle (``bundle``, else the one in
    :func:`default_dir`), print :data:`NO_BUNDLE` and return ``None``; when the bundle does
    not include ``name``, say so and return ``None``."""
    bundle = bundle or load()
    if bundle is None:
        print(NO_BUNDLE)
        return None
    print(bundle.label)
    if name not in bundle.trials:
        print(f"The published run does not include {name}: it has {', '.join(bundle.trials) or 'no trials'}.")
        return None
    return bundle.curves(name)


# --- writing ---------------------------------------------------------------------------


def registered() -> tuple[str, ...]:
    """Every registered trial, in the order a bundle lists them: :data:`woofhelpers.recipes.TRIAL_NAMES`,
    then the ladder's rungs (:data:`woofhelpers.recipes.LADDER_TRIALS`), which only a full run trains."""
    return (*recipes.TRIAL_NAMES, *recipes.LADDER_TRIALS)


def check_request(
    profile: profiles.Profile, names: list[str] | tuple[str, ...] | None = None, allow_not_real: bool = False
) -> tuple[str, ...]:
    """The registered trials ``names`` (default: all, :func:`registered`) in registry
    order, after checking that they can be published from ``profile``: a ``ValueError``
    with one line saying what to do for an unknown name, no names, or a profile whose
    numbers are not real results (unless ``allow_not_real``). Nothing runs."""
    names = registered() if names is None else tuple(names)
    for name in names:
        recipes.get(name)  # the ValueError names the valid ones
    if not names:
        raise ValueError(f"no trials to publish; name at least one of {registered()}")
    if not allow_not_real and not profile.real_results:
        raise ValueError(
            f"the {profile.name} profile does not give real results (they need the real data and ImageNet's"
            " weights), so it cannot be published as a full run; publish from the full profile (--profile full),"
            " or pass allow_not_real=True (--allow-not-real) for a rehearsal bundle labelled NOT real results"
        )
    return tuple(name for name in registered() if name in names)


def publish(
    profile: profiles.Profile,
    out: str | Path | None = None,
    names: list[str] | tuple[str, ...] | None = None,
    results: str | Path | None = None,
    gradcam_images: int = 6,
    allow_not_real: bool = False,
    verbose: int = 0,
) -> Path:
    """Run or load every trial in ``names`` (default: all registered ones, :func:`registered`) in ``profile``
    (``wh.trials.run_trial``, with ``results`` as its results folder) and write their
    bundle into ``out`` (default :func:`default_dir`), replacing an older one only once the
    new one is complete. Returns ``out``.

    Refuses (``ValueError``, before anything runs) a profile whose numbers are not real
    results, unless ``allow_not_real`` (rehearsals and tests: the bundle's label then says
    so), and an ``out`` that holds files other than a bundle. Up to ``gradcam_images``
    Grad-CAM overlays of the corrected recipe are added when it is among ``names``.
    ``verbose=1`` shows Keras' progress of any trial that trains."""
    names = check_request(profile, names, allow_not_real)
    out = Path(out).expanduser() if out is not None else default_dir()
    _check_out(out)
    if gradcam_images < 0:
        raise ValueError(f"gradcam_images={gradcam_images}; use 0 or more")
    done = {}
    for number, name in enumerate(names, start=1):
        if verbose:
            print(f"[{number}/{len(names)}] {name}", flush=True)
        done[name] = trials.run_trial(name, profile, results=results, verbose=verbose)
    meta = _meta(profile, done)

    def build(folder: Path) -> None:
        overlays, note = _gradcam(done.get(GRADCAM_TRIAL), profile, folder, gradcam_images)
        meta["gradcam"] = note
        record = {"meta": meta, "trials": {name: _trial_record(result) for name, result in done.items()}}
        record["gradcam"] = overlays
        (folder / BUNDLE_FILE).write_text(json.dumps(record, indent=1, ensure_ascii=False), encoding="utf-8")

    _write_folder_atomically(out, build)
    return out


def size_kib(path: str | Path) -> float:
    """The size in KiB of the files under ``path`` (a bundle folder), all together."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1024


def _trial_record(result: results_lib.TrialResult) -> dict:
    """What the bundle keeps of one trial: everything but the weights and the per-image outputs."""
    return {
        "trial": result.trial,
        "effective": result.effective,
        "history": result.history,
        "summary": result.summary(),
        "test": result.test,
        "confusion": {which: _confusion_counts(*result.saved_outputs(which)) for which in result.predictions},
        "split": result.split,
        "wall_s": result.wall_s,
        "hardware": result.hardware,
        "cached_features": result.cached_features,
        "created": result.created,
    }


def _confusion_counts(true: np.ndarray, scores: np.ndarray) -> list[list[int]]:
    """Counts of (true label, predicted label) from a result's saved test labels and outputs
    (the predicted label is the highest output), as a nested list, true labels as rows."""
    size = len(labels.CLASS_NAMES)
    counts = np.zeros((size, size), dtype=np.int64)
    if len(true):
        np.add.at(counts, (true, scores.argmax(axis=1)), 1)
    return counts.tolist()


def _meta(profile: profiles.Profile, done: dict[str, results_lib.TrialResult]) -> dict:
    import keras
    import tensorflow as tf

    first = next(iter(done.values()))
    on_gpu = {bool(result.hardware.get("gpu")) for result in done.values()}
    real = bool(first.profile.get("real_results", False))
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "woofhelpers": importlib.metadata.version("woofhelpers"),  # = wh.__version__
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "git_commit": _git_commit(),
        "hardware": {
            "trained_on": "mixed" if len(on_gpu) > 1 else ("gpu" if on_gpu == {True} else "cpu"),
            # The machine that published; the trials' own records are under trials[name]["hardware"].
            "gpu_names": _gpu_names(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "profile": first.profile,
        "real_results": real,
        "source": (
            f"Made by wh.published.publish (python -m woofhelpers publish) from the {profile.name} profile's results"
            f" of {len(done)} trial(s), each loaded from its saved result.json or trained for this bundle;"
            " the confusion counts are those of the saved test predictions."
            + ("" if real else " The profile had no real data or no ImageNet weights: NOT real results.")
        ),
    }


def _gpu_names() -> list[str]:
    """The names of this machine's GPUs (``"NVIDIA T4"``), as TensorFlow reports them."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            names.append(str(tf.config.experimental.get_device_details(device).get("device_name", device.name)))
        except Exception:  # an accelerator that TensorFlow cannot describe
            names.append(device.name)
    return names


def _git_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout this package runs from, or ``None`` (an
    installed package, no git, not a repository)."""
    checkout = Path(__file__).resolve().parent.parent
    if not (checkout / "pyproject.toml").is_file():
        return None
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if re.fullmatch(r"[0-9a-f]{40,64}", commit) else None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _gradcam(
    result: results_lib.TrialResult | None, profile: profiles.Profile, folder: Path, count: int
) -> tuple[list[dict], str]:
    """Write up to ``count`` Grad-CAM overlays of ``result`` (the corrected recipe) on its
    leakage-free test images into ``folder/gradcam/``: the first image of each breed, in
    label order, then the next ones. Returns their entries and a sentence on what they are,
    or on why there are none."""
    if result is None:
        return [], f"skipped: the trial {GRADCAM_TRIAL!r} is not in this bundle"
    if count == 0:
        return [], "skipped: gradcam_images=0"
    predictions = results_lib.from_trial(result, GRADCAM_TEST_SET)
    if not len(predictions):
        return [], f"skipped: {GRADCAM_TRIAL!r} has no {GRADCAM_TEST_SET} test images"
    firsts = [int(np.flatnonzero(predictions.true == label)[0]) for label in np.unique(predictions.true)]
    chosen = (firsts + [i for i in range(len(predictions)) if i not in firsts])[:count]
    size_px = int(result.effective["image_size_px"])
    root = data.dataset_root(profile)  # the splits' paths are relative to it
    images = np.stack([pipeline.load_image(str(root / predictions.paths[i]), size_px).numpy() for i in chosen])
    model = trials.load_model(result)
    heat = gradcam.heatmaps(model, images)  # each image's map for its predicted class
    (folder / GRADCAM_DIR).mkdir()
    names = predictions.class_names
    entries = []
    for number, (i, image, heatmap) in enumerate(zip(chosen, images, heat, strict=True), start=1):
        true, predicted = names[predictions.true[i]], names[predictions.predicted[i]]
        file = f"{GRADCAM_DIR}/{number:02d}-{_slug(true)}.png"
        _save_png(gradcam.overlay(image, heatmap), folder / file)
        entries.append({"file": file, "true": true, "predicted": predicted, "image": predictions.paths[i]})
    note = (
        f"Grad-CAM ({gradcam.DEFAULT_LAYER}, for the predicted class) of {GRADCAM_TRIAL!r} on {len(entries)} of its"
        f" {len(predictions)} {GRADCAM_TEST_SET} test images, the first of each breed, at {size_px} px"
    )
    return entries, note


def _save_png(picture: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(picture).save(path, optimize=True)


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that is a file, or a folder that holds anything but a bundle (it
    is replaced as a whole)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; name a folder for the bundle (out=, on the command line --out)")
    if out.is_dir() and any(out.iterdir()) and not (out / BUNDLE_FILE).is_file():
        raise ValueError(
            f"{out} holds files but no {BUNDLE_FILE}, and publishing replaces the whole folder; name an empty or"
            " new folder (out=, on the command line --out)"
        )


def _write_folder_atomically(out: Path, build: Callable[[Path], None]) -> None:
    """Build the bundle in a temporary folder beside ``out`` and rename it into place
    (:func:`woofhelpers.io.replace_folder`), first clearing what a publish cut short left
    there. One publish at a time per folder (a lock file beside it)."""
    import filelock

    out.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(out.parent / f".{out.name}.lock"):
        io.tidy_beside(out)
        io.replace_folder(out, build)
