"""Trials as data, and one engine that runs any of them.

A :class:`Trial` is a small frozen dataclass: everything that made one of the original
exercise's runs what it was. :data:`TRIALS` holds trials 1-5 exactly as the original ran
them, two documented variants (``"trial4_honest"``, ``"trial5_honest"``: the same trials with
the 500 ImageNet-validation images held out as their test set), plus ``"corrected"``, the
recipe this course recommends; :data:`LADDER` goes from trial 3 to the corrected recipe one
change at a time (registered, run only by a full run that publishes). :func:`plan` says what a
chapter will train or load. :func:`run_trial` trains a trial's two phases (the head on a
frozen base, then fine-tuning), tests it on the trial's own test split and on the
leakage-free test set, and saves a :class:`TrialResult` as JSON with its plots under
``results/<profile>/<trial>/``. Running a finished trial again loads that result;
``retrain=True`` trains again.

- **Resume.** Every finished epoch is checkpointed as one unit: a folder
  ``checkpoint/epoch-<n>/`` holding the weights with the optimizer's state and the
  history, written under a temporary name and renamed into place only when complete, so
  a run killed at any moment (or stopped by a full disk) leaves the last finished epoch's
  checkpoint whole. Run a killed trial again and it continues from that epoch; the
  history it saves is complete. Each epoch's data order depends only on the seed and the
  epoch number, so a resumed run sees the same batches as one that was never interrupted.
  A damaged result or checkpoint is named in a :class:`DamagedFileError`; ``retrain=True``
  (``--retrain`` on the command line) starts over.
- **Cached features.** With a frozen base and no augmentation the base's output never
  changes during the head phase, so the base runs once over the data (``predict``) and
  the head trains on those features: the same head, far faster.
- **Hardware.** On a GPU: XLA, and mixed precision (``mixed_float16`` with loss scaling,
  output layer float32) only for trials that ask for it (``Trial.mixed_precision``: the
  corrected recipe); trials 1-5 train in float32, as the original did. The head alone,
  on cached features, is compiled with XLA on a CPU too. Several GPUs: ``MirroredStrategy``
  (without XLA); a Colab TPU: ``TPUStrategy``; otherwise the default strategy.
- **One run at a time.** A lock file per trial makes a second process that asks for the
  same trial wait (it says so, and for what), then load the first one's result.

Taught in the trial chapters (*Trial 1* ... *Trial 5*).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import re
import secrets
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock
import numpy as np

from woofhelpers import data, pipeline, profiles, runtime, splits
from woofhelpers.model import (
    ACTIVATIONS,
    FINE_TUNE_SCHEMES,
    HEADS,
    OPTIMIZERS,
    PREPROCESSING,
    RESNET50_MIN_SIZE_PX,
)

if TYPE_CHECKING:
    import keras
    import pandas as pd
    import tensorflow as tf

RESULT_FILE = "result.json"
CURVES_FILE = "learning_curves.png"
WEIGHTS_FILE = "model.weights.h5"
CHECKPOINT_DIR = "checkpoint"
# Inside CHECKPOINT_DIR, one folder per committed epoch (``epoch-0003``) holds these two.
CHECKPOINT_STATE = "state.json"
CHECKPOINT_WEIGHTS = "checkpoint.weights.h5"
RESULTS_ENV_VAR = "WOOF_RESULTS_DIR"
RETRAIN_HINT = "retrain=True (on the command line: --retrain)"


class DamagedFileError(ValueError):
    """A saved result or checkpoint that cannot be read (truncated, garbage, missing). The
    message names the file and says that ``retrain=True`` (``--retrain``) starts over."""


def _damaged(path: Path, error: BaseException | None = None) -> DamagedFileError:
    """The error for a file that is missing (``error=None``) or cannot be read."""
    if error is None:
        what = "missing"
    else:
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        what = f"damaged ({type(error).__name__}: {first_line})"
    return DamagedFileError(f"{path} is {what}; run the trial again with {RETRAIN_HINT} to start it over")


def _reason(error: OSError) -> tuple[int | None, str]:
    """The system's error number of ``error`` and its words ("No space left on device").
    h5py gives the number only inside its message."""
    number = error.errno
    if number is None:
        found = re.search(r"errno = (\d+)", str(error))
        number = int(found.group(1)) if found else None
    if number:
        return number, os.strerror(number)
    return None, (str(error).strip().splitlines() or [type(error).__name__])[0][:200]


def _os_error(error: OSError, message: str) -> OSError:
    """An ``OSError`` with ``error``'s number and a message that says what to do."""
    new = OSError(message)
    new.errno = _reason(error)[0]  # only the number: with a file name or strerror set, str() would drop the message
    return new


@dataclass(frozen=True)
class Trial:
    """One training run's settings. ``fine_tune=None`` means no fine-tuning phase.

    Learning rates are the optimizers' step sizes; epochs are per phase (the fine-tuning
    epochs continue the head's numbering). Unknown values raise ``ValueError`` naming the
    valid ones.
    """

    name: str
    image_size_px: int
    batch_size: int
    output_activation: str
    head_learning_rate: float
    head_optimizer: str
    head_epochs: int
    fine_tune: str | None
    fine_tune_learning_rate: float | None
    fine_tune_optimizer: str | None
    fine_tune_epochs: int
    split: str
    preprocessing: str
    head: str
    augment: bool
    seed: int
    dropout: float = 0.2
    # On a GPU, train under mixed_float16 with loss scaling. Only the corrected recipe asks
    # for it; the original trials trained in float32 and their reproductions do too.
    mixed_precision: bool = False
    description: str = ""

    def __post_init__(self):
        def check(label, value, valid):
            if value not in valid:
                raise ValueError(f"trial {self.name!r}: unknown {label} {value!r}; choose one of {tuple(valid)}")

        if self.image_size_px < RESNET50_MIN_SIZE_PX:
            raise ValueError(
                f"trial {self.name!r}: image_size_px={self.image_size_px} is below ResNet50's minimum;"
                f" use at least {RESNET50_MIN_SIZE_PX}"
            )
        if self.batch_size < 1:
            raise ValueError(f"trial {self.name!r}: batch_size={self.batch_size}; use 1 or more")
        if self.head_epochs < 1 or self.fine_tune_epochs < 0:
            raise ValueError(f"trial {self.name!r}: head_epochs must be >= 1 and fine_tune_epochs >= 0")
        check("split", self.split, splits.SPLIT_NAMES)
        check("output activation", self.output_activation, ACTIVATIONS)
        check("head", self.head, HEADS)
        check("preprocessing", self.preprocessing, PREPROCESSING)
        check("head optimizer", self.head_optimizer, OPTIMIZERS)
        check("fine-tuning scheme", self.fine_tune, (None, *FINE_TUNE_SCHEMES))
        if self.fine_tune is not None:
            check("fine-tuning optimizer", self.fine_tune_optimizer, OPTIMIZERS)
            if not self.fine_tune_learning_rate or self.fine_tune_learning_rate <= 0:
                raise ValueError(f"trial {self.name!r}: fine-tuning needs a positive fine_tune_learning_rate")

    @property
    def epochs(self) -> int:
        """Epochs of both phases together."""
        return self.head_epochs + (self.fine_tune_epochs if self.fine_tune else 0)

    def for_profile(self, profile: profiles.Profile) -> Trial:
        """The trial as ``profile`` runs it: the profile's image size, batch size and
        epochs per phase replace the trial's where the profile sets them (smoke does;
        full keeps the trial's own)."""
        changes = {}
        if profile.image_size_px is not None:
            changes["image_size_px"] = profile.image_size_px
        if profile.batch_size is not None:
            changes["batch_size"] = profile.batch_size
        if profile.epochs is not None:
            changes["head_epochs"] = profile.epochs
            changes["fine_tune_epochs"] = profile.epochs if self.fine_tune else 0
        return dataclasses.replace(self, **changes)

    def settings(self) -> dict:
        """The settings as a plain dict, without the description."""
        settings = dataclasses.asdict(self)
        settings.pop("description")
        return settings


def table(*trials: Trial) -> pd.DataFrame:
    """The trials' settings side by side, one column per trial (a ``pandas.DataFrame``)."""
    import pandas as pd

    frame = pd.DataFrame({t.name: t.settings() for t in trials})
    return frame.drop(index="name").astype(object).where(frame.drop(index="name").notna(), "–")


_ORIGINAL = dict(
    batch_size=32,
    head_optimizer="adam",
    head_epochs=10,
    fine_tune_optimizer="rmsprop",
    # 11, as the original's logs show: fit(initial_epoch=9, epochs=20) after 10 head epochs
    # (Keras printed "Epoch 10/20" ... "Epoch 20/20"; wh.original.epoch_lines).
    fine_tune_epochs=11,
    preprocessing="none",
    head="original",
    augment=False,
    seed=123,
)

TRIALS: dict[str, Trial] = {
    "trial1": Trial(
        "trial1",
        image_size_px=160,
        output_activation="relu",
        head_learning_rate=0.01,
        fine_tune=None,
        fine_tune_learning_rate=None,
        split="official",
        description="ReLU output layer, head only",
        **{**_ORIGINAL, "fine_tune_optimizer": None, "fine_tune_epochs": 0},
    ),
    "trial2": Trial(
        "trial2",
        image_size_px=160,
        output_activation="softmax",
        head_learning_rate=0.01,
        fine_tune="original",
        fine_tune_learning_rate=0.001,
        split="official",
        description="softmax output, fine-tuning at lr 0.001",
        **_ORIGINAL,
    ),
    "trial3": Trial(
        "trial3",
        image_size_px=160,
        output_activation="softmax",
        head_learning_rate=0.0001,
        fine_tune="original",
        fine_tune_learning_rate=0.00001,
        split="official",
        description="learning rate 0.0001 (fine-tuning 0.00001)",
        **_ORIGINAL,
    ),
    "trial4": Trial(
        "trial4",
        image_size_px=200,
        output_activation="softmax",
        head_learning_rate=0.0001,
        fine_tune="original",
        fine_tune_learning_rate=0.00001,
        split="pooled",
        description="train and val pooled, random 80/20 re-split",
        **_ORIGINAL,
    ),
    "trial5": Trial(
        "trial5",
        image_size_px=200,
        output_activation="softmax",
        head_learning_rate=0.0001,
        fine_tune="original",
        fine_tune_learning_rate=0.00001,
        split="pooled",
        description="batch size 10",
        **{**_ORIGINAL, "batch_size": 10},
    ),
    "corrected": Trial(
        "corrected",
        image_size_px=224,
        batch_size=32,
        output_activation="softmax",
        head_learning_rate=0.001,
        head_optimizer="adam",
        head_epochs=10,
        fine_tune="corrected",
        fine_tune_learning_rate=0.00001,
        fine_tune_optimizer="adam",
        fine_tune_epochs=10,
        split="leakage_free",
        preprocessing="resnet50",
        head="corrected",
        augment=True,
        seed=123,
        mixed_precision=True,
        description=(
            "preprocessing in the model, pooled head, top stage fine-tuned with BatchNorm frozen,"
            " augmentation, honest test set"
        ),
    ),
}


def _honest(trial: Trial) -> Trial:
    """A variant, not a trial the original ran: ``trial`` with an honest test set, the 500
    ImageNet-validation files held out before pooling (``splits.pooled_leakage_free``)."""
    return dataclasses.replace(
        trial,
        name=f"{trial.name}_honest",
        split="pooled_leakage_free",
        description=f"variant: {trial.name.replace('trial', 'trial ')} with the ImageNet-validation files"
        " held out as test before pooling",
    )


def _with_variants(registry: dict[str, Trial]) -> dict[str, Trial]:
    """The registry with each variant right after the trial it varies (trials 4 and 5), the
    order in which chapters and tables show them."""
    ordered = {}
    for name, trial in registry.items():
        ordered[name] = trial
        if name in ("trial4", "trial5"):
            ordered[f"{name}_honest"] = _honest(trial)
    return ordered


TRIALS = _with_variants(TRIALS)
TRIAL_NAMES = tuple(TRIALS)


# The corrected recipe changes six things at once. The ladder takes them one at a time, from
# trial 3 (the original's best-behaved run) to the corrected recipe, so that a full run
# measures what each fix is worth. Every rung is tested on the leakage-free test set and
# trains in mixed precision on a GPU, so the only difference between two neighbouring rungs
# is the change named. The last change (224 px) gives the corrected recipe itself: the
# ladder ends with "corrected", not with a copy of it.
RUNGS: tuple[tuple[str, str, dict], ...] = (
    ("original", "trial 3's recipe, tested honestly", dict(split="leakage_free", mixed_precision=True)),
    ("preprocessing", "+ ResNet50's preprocessing in the model", dict(preprocessing="resnet50")),
    ("pooled_head", "+ pooling head (trained at 0.001)", dict(head="corrected", head_learning_rate=0.001)),
    (
        "fine_tuning",
        "+ corrected fine-tuning (top stage, BatchNorm frozen, Adam, 10 epochs)",
        dict(fine_tune="corrected", fine_tune_optimizer="adam", fine_tune_epochs=10),
    ),
    ("augmentation", "+ augmentation (flip, rotation)", dict(augment=True)),
    ("corrected", "+ 224 px images: the corrected recipe", dict(image_size_px=224)),
)


def _ladder(start: Trial) -> dict[str, Trial]:
    """Rungs 0-4 of :data:`LADDER`, each the previous one with one change (:data:`RUNGS`)."""
    rungs, trial = {}, start
    for number, (short, description, changes) in enumerate(RUNGS[:-1]):
        name = f"ladder{number}_{short}"
        trial = dataclasses.replace(trial, name=name, description=f"ladder: {description}", **changes)
        rungs[name] = trial
    return rungs


# Registered (``get``, ``run_trial``, the command line and ``publish`` know them) but not
# among TRIAL_NAMES: the chapters show the ladder's settings, and its results only from a
# published full run (five more trainings would double the chapters' smoke runs).
LADDER_TRIALS: dict[str, Trial] = _ladder(TRIALS["trial3"])
LADDER: tuple[str, ...] = (*LADDER_TRIALS, "corrected")


def get(name: str) -> Trial:
    """The registered trial called ``name`` (one of :data:`TRIAL_NAMES`)."""
    if name in LADDER_TRIALS:
        return LADDER_TRIALS[name]
    if name not in TRIALS:
        raise ValueError(f"unknown trial {name!r}; choose one of {TRIAL_NAMES}, or a rung of the ladder {LADDER[:-1]}")
    return TRIALS[name]


def variant(trial: Trial, name: str, **changes: Any) -> Trial:
    """A copy of ``trial`` named ``name`` with some settings changed (validated)."""
    return dataclasses.replace(trial, name=name, **changes)


# --- results ---------------------------------------------------------------------------


@dataclass
class TrialResult:
    """What a trial run produced. ``history`` maps ``"head"`` and ``"fine_tune"`` to
    ``{metric: [one value per epoch]}`` plus ``"epoch"`` (1-based, continuing across
    phases); ``test`` maps ``"own"`` and ``"leakage_free"`` to accuracy, loss and the
    number of images; ``predictions`` holds each test set's labels and output
    probabilities, for later analysis."""

    trial: dict
    effective: dict
    profile: dict
    split: dict
    history: dict
    test: dict
    wall_s: dict
    predictions: dict
    hardware: dict
    cached_features: bool
    created: str
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.trial["name"]

    @property
    def fine_tune_start_epoch(self) -> int | None:
        """1-based number of the first fine-tuning epoch, or ``None`` without fine-tuning."""
        epochs = self.history.get("fine_tune", {}).get("epoch", [])
        return epochs[0] if epochs else None

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        fields.pop("path")
        return json.dumps(fields, indent=1)

    @classmethod
    def load(cls, path: str | Path) -> TrialResult:
        """Read a ``result.json`` (or the folder that holds one)."""
        path = Path(path)
        if path.is_dir():
            path = path / RESULT_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no trial result at {path}; run wh.trials.run_trial first")
        try:
            # JSONDecodeError and UnicodeDecodeError are ValueErrors; missing or unknown fields a TypeError.
            return cls(**json.loads(path.read_text()), path=path.parent)
        except (ValueError, TypeError) as error:
            raise _damaged(path, error) from error

    def saved_outputs(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """The saved test labels (int64, shape (n,)) and outputs (float32, shape (n, classes);
        (0, 0) for an empty test set) of ``which``: ``"own"`` or ``"leakage_free"``."""
        saved = self.predictions[which]
        true = np.asarray(saved["labels"], dtype=np.int64)
        scores = np.asarray(saved["probabilities"], dtype=np.float32)
        return true, scores.reshape(len(true), -1) if len(true) else scores.reshape(0, 0)

    def summary(self) -> dict:
        """One row for a comparison table: for the own test split and the leakage-free
        test set, the number of images, the accuracy (%) and its 95% bootstrap interval
        (``wh.evaluate.accuracy_summary`` of the saved predictions), so an accuracy is
        never shown without the size of its test set. An empty test set shows "–"."""
        from woofhelpers import evaluate  # the results layer, above this one; only needed here

        row: dict[str, Any] = {"trial": self.name}
        for which, label in (("own", "own test"), ("leakage_free", "leakage-free test")):
            true, scores = self.saved_outputs(which)
            row[f"{label}: images"] = len(true)
            if len(true):
                figures = evaluate.accuracy_summary(scores.argmax(axis=1) == true)
                row[f"{label}: accuracy %"] = f"{figures['accuracy %']:.2f}"
                row[f"{label}: 95% CI"] = f"{figures['95% CI low']:.2f}–{figures['95% CI high']:.2f}"
            else:
                row[f"{label}: accuracy %"] = row[f"{label}: 95% CI"] = "–"
        return row


def plan(*names: str | Trial, profile: profiles.Profile | None = None) -> pd.DataFrame:
    """What a chapter runs, before it runs it: for each trial in ``names`` (registered names
    or :class:`Trial` objects), whether a finished
    result is already saved under :func:`results_dir` (then :func:`run_trial` loads it; in
    Colab, results kept on Google Drive by an earlier chapter count) or will be trained
    here, and roughly how long the full profile takes to train it on a Colab GPU and on a
    2-core CPU (estimates from the original's logs: see :mod:`woofhelpers.runtime`)."""
    import pandas as pd

    profile = profile or profiles.current()
    rows = []
    for name in names:
        trial = get(name) if isinstance(name, str) else name
        saved = results_dir() / profile.name / trial.name / RESULT_FILE
        estimate = runtime.full_size(trial)
        rows.append(
            {
                "trial": trial.name,
                f"in this run ({profile.name} profile)": "saved result: loaded" if saved.is_file() else "trains here",
                "full profile, Colab GPU": f"about {runtime.duration(estimate.gpu_s)}",
                "full profile, 2-core CPU": f"about {runtime.duration(estimate.cpu_s)}",
            }
        )
    return pd.DataFrame(rows).set_index("trial")


def results_dir() -> Path:
    """Where results go: ``$WOOF_RESULTS_DIR``, else ``results/`` of the checkout, else
    ``~/woof-results``."""
    if os.environ.get(RESULTS_ENV_VAR):
        return Path(os.environ[RESULTS_ENV_VAR]).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "results"
    return Path.home() / "woof-results"


def _atomic_save_weights(model, path: Path) -> None:
    with data.replacing(path, ".weights.h5") as tmp:
        model.save_weights(tmp)


# --- data ------------------------------------------------------------------------------


def _cap(split: splits.Split, per_class: int | None) -> splits.Split:
    """Keep the first ``per_class`` files of each class in each part (manifest order)."""
    if per_class is None:
        return split
    parts = {}
    for part in splits.PARTS:
        kept, seen = [], {}
        for path in split.parts[part]:
            wnid = path.split("/")[-2]
            if seen.get(wnid, 0) < per_class:
                seen[wnid] = seen.get(wnid, 0) + 1
                kept.append(path)
        parts[part] = tuple(kept)
    return splits.Split(split.name, split.root, parts, split.excluded)


def trial_data(trial: Trial, profile: profiles.Profile) -> tuple[splits.Split, splits.Split]:
    """The trial's split (scanned, unreadable files excluded) and a split whose test part
    is the leakage-free test set: the ImageNet-validation files the split neither trains
    nor validates on. The profile's ``max_images_per_class`` caps every part."""
    try:
        root = data.dataset_root(profile)
    except data.DownloadError:
        raise
    except OSError as error:
        if "WOOF_DATA_DIR" in str(error):  # it says what to do already
            raise
        raise _os_error(
            error,
            f"cannot prepare the dataset in {profile.data_dir} ({_reason(error)[1]}); set WOOF_DATA_DIR"
            " (the profile's data_dir) to a folder you can write, with free space",
        ) from error
    try:
        made = splits.make(trial.split, root)
    except ValueError as error:
        if profile.real_data:
            raise
        raise ValueError(
            f"{error}. The generated dataset has {profile.synthetic_train_per_class} train and"
            f" {profile.synthetic_val_per_class} val images per class: raise WOOF_SYNTHETIC_TRAIN_PER_CLASS"
            " and WOOF_SYNTHETIC_VAL_PER_CLASS (by default 30 and 10)"
        ) from error
    split, _ = pipeline.scan(made, verbose=False)
    honest = splits.leakage_free_test(split)
    cap = getattr(profile, "max_images_per_class", None)
    split = _cap(split, cap)
    honest_split = _cap(
        splits.Split(f"{trial.split}-leakage-free", root, {"train": (), "validation": (), "test": honest}), cap
    )
    return split, honest_split


# --- hardware --------------------------------------------------------------------------


def choose_strategy() -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy for this machine: ``TPUStrategy`` on a Colab TPU,
    ``MirroredStrategy`` with several GPUs, else the default (one device)."""
    import tensorflow as tf

    if any(os.environ.get(v) for v in ("COLAB_TPU_ADDR", "TPU_NAME")):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _on_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# --- the engine ------------------------------------------------------------------------


def _fixed(trial: Trial, split: splits.Split, part: str):
    """The images of one part of ``split`` in manifest order, batched as ``trial`` says."""
    return pipeline.dataset(split, part, image_size_px=trial.image_size_px, batch_size=trial.batch_size, shuffle=False)


def _phase_datasets(trial: Trial, split: splits.Split):
    """Train (as a function of the epoch) and validation datasets of images."""

    def train(epoch: int):
        return pipeline.dataset(
            split,
            "train",
            image_size_px=trial.image_size_px,
            batch_size=trial.batch_size,
            shuffle=True,
            augment=trial.augment,
            seed=trial.seed + epoch,
        )

    return train, _fixed(trial, split, "validation")


def probe(model: keras.Model) -> keras.Model:
    """A view of ``model`` (same layers, same weights) with two outputs: the base's output
    features and the model's predictions. The engine predicts with it both to extract the
    head's features and to test the model, so TensorFlow builds one prediction graph per
    trial instead of two (each takes seconds to trace for a ResNet50)."""
    import keras

    from woofhelpers import model as model_lib

    # The base's output inside ``model`` is the input of the head's first layer.
    first_head_layer = model.layers[model.layers.index(model_lib.base_of(model)) + 1]
    return keras.Model(model.input, [first_head_layer.input, model.output], name=f"{model.name}_probe")


def _predict(probe_model, split: splits.Split, part: str, trial: Trial):
    """The probe's two outputs (features, predictions) for one part of ``split``."""
    return probe_model.predict(_fixed(trial, split, part).map(lambda x, y: x), verbose=0)


def _feature_datasets(probe_model, trial: Trial, split: splits.Split):
    """Compute the base's output (after preprocessing) once for train and validation, and
    return (train-by-epoch, validation) datasets of features in the same order as the
    image datasets: both shuffle the manifest order with the same seed and buffer."""
    import tensorflow as tf

    train_x, train_y = _predict(probe_model, split, "train", trial)[0], split.labels("train")
    val_x, val_y = _predict(probe_model, split, "validation", trial)[0], split.labels("validation")

    def train(epoch: int):
        ds = tf.data.Dataset.from_tensor_slices((train_x, train_y))
        return ds.shuffle(len(train_y), seed=trial.seed + epoch, reshuffle_each_iteration=True).batch(trial.batch_size)

    return train, tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(trial.batch_size)


def _evaluate(probe_model, split: splits.Split, trial: Trial) -> tuple[dict, dict]:
    import keras

    probabilities = np.asarray(_predict(probe_model, split, "test", trial)[1], dtype=np.float32)
    labels = split.labels("test")
    loss = np.asarray(keras.losses.sparse_categorical_crossentropy(labels, probabilities))
    metrics = {
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)),
        "loss": float(np.mean(loss)),
        "n": int(len(labels)),
    }
    return metrics, {"labels": labels.tolist(), "probabilities": np.round(probabilities, 6).tolist()}


def _fit_epochs(phase, fit_model, train_by_epoch, val_ds, first, last, state, save, callbacks, verbose):
    """Fit one epoch at a time from ``first`` to ``last`` (0-based, exclusive), recording
    the history and checkpointing after each finished epoch."""
    history = state["history"].setdefault(phase, {"epoch": []})
    for epoch in range(first, last):
        if verbose:
            print(f"{phase.replace('_', '-')} phase: epoch {epoch + 1} of {last}")
        start = time.perf_counter()
        logs = fit_model.fit(
            train_by_epoch(epoch),
            validation_data=val_ds,
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=verbose,
            callbacks=callbacks,
            shuffle=False,  # the datasets are shuffled already
        ).history
        state["wall_s"][phase] = state["wall_s"].get(phase, 0.0) + time.perf_counter() - start
        history["epoch"].append(epoch + 1)
        for key, values in logs.items():
            history.setdefault(key, []).append(float(values[-1]))
        state["phase"], state["epochs_done"] = phase, epoch + 1
        save(fit_model)


@contextlib.contextmanager
def _no_retracing_warnings():
    """Each trial builds new models, and TensorFlow warns about "retracing" once several
    have predicted; in a notebook that warning goes to stdout. It is expected here."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def run_trial(
    trial: Trial | str,
    profile: profiles.Profile | None = None,
    *,
    retrain: bool = False,
    verbose: int = 0,
    callbacks: list | None = None,
    cached_features: bool | None = None,
    strategy: tf.distribute.Strategy | None = None,
    results: str | Path | None = None,
) -> TrialResult:
    """Train ``trial`` (a :class:`Trial` or a registered name) in ``profile`` (default: the
    current one), evaluate it, save and return its :class:`TrialResult`.

    The result, its learning curves and final weights go to
    ``<results>/<profile>/<trial name>/`` (``results`` defaults to :func:`results_dir`).
    A finished result there is loaded instead of training, unless ``retrain``; an
    unfinished run there is resumed from its last finished epoch. ``verbose=1`` shows
    Keras' progress bars. ``cached_features`` forces (``True``) or forbids (``False``)
    training the head on precomputed features; by default they are used whenever the
    base is frozen and there is no augmentation (always in the head phase, unless
    ``augment``). ``callbacks`` are passed to every ``fit``.
    """
    trial = get(trial) if isinstance(trial, str) else trial
    profile = profile or profiles.current()
    base = Path(results or results_dir()).expanduser()
    folder = base / profile.name / trial.name
    fix = f"pass results= a folder you can write (on the command line: --results), or set {RESULTS_ENV_VAR} to one"
    if base.exists() and not base.is_dir():
        raise ValueError(f"the results folder {base} is a file; {fix}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _os_error(
            error, f"cannot create the results folder {folder.parent} ({_reason(error)[1]}); {fix}"
        ) from error
    # One process at a time per trial: a second one (another notebook, a test worker) waits,
    # then loads what the first saved, instead of both training into the same folder.
    lock = filelock.FileLock(folder.parent / f".{trial.name}.lock")
    with _holding(lock, trial.name, folder, announce=bool(verbose)), _no_retracing_warnings():
        return _load_or_train(trial, profile, folder, retrain, verbose, callbacks, cached_features, strategy)


@contextlib.contextmanager
def _holding(lock: filelock.FileLock, name: str, folder: Path, notice_every_s: float = 60.0, announce: bool = True):
    """Hold ``lock`` for the block. When another process holds it, wait; with ``announce``
    (``verbose``: the command line), say so on stderr, and for what, repeating the notice
    every ``notice_every_s`` seconds. A chapter (``verbose=0``) waits quietly, so its
    outputs do not depend on which notebook got to a trial first."""
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if not announce:
            lock.acquire()
            try:
                yield
            finally:
                lock.release()
            return
        print(
            f"waiting: another process (a notebook, a terminal, a test worker) is running trial {name!r}"
            f" into {folder} and holds {lock.lock_file}; this run goes on when that one ends, then loads"
            " its result or resumes from its checkpoint",
            file=sys.stderr,
            flush=True,
        )
        started = time.monotonic()
        while True:
            try:
                lock.acquire(timeout=notice_every_s)
                break
            except filelock.Timeout:
                minutes = (time.monotonic() - started) / 60
                print(f"still waiting for trial {name!r} ({minutes:.0f} min so far)", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        lock.release()


def _load_or_train(trial, profile, folder, retrain, verbose, callbacks, cached_features, strategy) -> TrialResult:
    import keras

    from woofhelpers import model as model_lib
    from woofhelpers import plots

    effective = trial.for_profile(profile)
    identity = {"trial": trial.settings(), "effective": effective.settings(), "profile": _profile_record(profile)}
    if retrain and folder.exists():
        shutil.rmtree(folder)
    if (folder / RESULT_FILE).is_file():
        result = TrialResult.load(folder)
        _check_identity(
            folder, identity, {"trial": result.trial, "effective": result.effective, "profile": result.profile}
        )
        return result

    use_cache = (not effective.augment) if cached_features is None else cached_features
    if use_cache and effective.augment:
        raise ValueError(f"trial {trial.name!r} augments its images, so the head cannot train on cached features")
    checkpoint = folder / CHECKPOINT_DIR
    checkpoint.mkdir(parents=True, exist_ok=True)
    state, saved_weights = _last_checkpoint(checkpoint, identity)
    if state is None:
        state = {"identity": identity, "phase": "head", "epochs_done": 0, "history": {}, "wall_s": {}}

    def save(fit_model):
        _commit_checkpoint(checkpoint, fit_model, state)

    gpu = _on_gpu()
    # Mixed precision (with loss scaling) only where the trial asks for it, and only on a GPU.
    mixed_precision = effective.mixed_precision and gpu
    strategy = strategy or choose_strategy()
    # XLA: the whole model on one GPU; the head alone, on features, on any one device (on a
    # CPU that fuses the optimizer's update of the original head's 51 million weights into
    # one pass, about 4x faster per epoch: benchmarks/README.md). Not across replicas, where
    # XLA refuses variables placed on several devices.
    single = strategy.num_replicas_in_sync == 1
    jit = {"head": single and (gpu or use_cache), "fine_tune": single and gpu}
    keras.utils.set_random_seed(effective.seed)
    split, honest_split = trial_data(effective, profile)
    # A full-size run on a machine without a GPU stops here, saying how long it would take.
    runtime.check_device(effective, profile, split.sizes(), gpu)
    train_images, val_images = _phase_datasets(effective, split)
    with strategy.scope():
        try:
            model = model_lib.build(effective, profiles.weights_file(profile), mixed_precision=mixed_precision)
        except Exception as error:  # Keras' download failure is a bare Exception
            if "URL fetch failure" not in str(error):
                raise
            raise ConnectionError(
                f"could not download ResNet50's ImageNet weights ({' '.join(str(error).split())[:300]}); check the"
                f" network and run again, or download {profiles.KERAS_RESNET50_FILES[False]} elsewhere and set"
                " WOOF_WEIGHTS to its path (WOOF_WEIGHTS=none trains from random weights)"
            ) from error
        probing = probe(model)
        head_model = model_lib.head_model(model) if use_cache else model
        model_lib.compile_model(
            head_model, effective.head_optimizer, effective.head_learning_rate, jit_compile=jit["head"]
        )
        if state["phase"] == "head" and state["epochs_done"] > 0:  # resume the head phase
            _restore(head_model, saved_weights)

    # Phase 1: the head, on a frozen base.
    if state["phase"] == "head" and state["epochs_done"] < effective.head_epochs:
        train_ds, val_ds = _feature_datasets(probing, effective, split) if use_cache else (train_images, val_images)
        _fit_epochs(
            "head",
            head_model,
            train_ds,
            val_ds,
            state["epochs_done"],
            effective.head_epochs,
            state,
            save,
            callbacks,
            verbose,
        )

    # Phase 2: fine-tuning, its epochs numbered on from the head's.
    if effective.fine_tune:
        if state["phase"] == "head":
            state["phase"] = "fine_tune"
        with strategy.scope():
            model_lib.unfreeze(model, effective.fine_tune)
            model_lib.compile_model(
                model, effective.fine_tune_optimizer, effective.fine_tune_learning_rate, jit_compile=jit["fine_tune"]
            )
            if state["epochs_done"] > effective.head_epochs:  # resume the fine-tuning phase
                _restore(model, saved_weights)
        _fit_epochs(
            "fine_tune",
            model,
            train_images,
            val_images,
            state["epochs_done"],
            effective.epochs,
            state,
            save,
            callbacks,
            verbose,
        )

    own, own_predictions = _evaluate(probing, split, effective)
    honest, honest_predictions = _evaluate(probing, honest_split, effective)
    result = TrialResult(
        trial=trial.settings(),
        effective=effective.settings(),
        profile=_profile_record(profile),
        split={
            "name": split.name,
            "sizes": split.sizes(),
            "fingerprint": split.fingerprint(),
            "leakage_free_test_fingerprint": honest_split.fingerprint(),
        },
        history=state["history"],
        test={"own": own, "leakage_free": honest},
        wall_s={phase: round(seconds, 2) for phase, seconds in state["wall_s"].items()},
        predictions={"own": own_predictions, "leakage_free": honest_predictions},
        hardware={
            "gpu": gpu,
            "mixed_precision": mixed_precision,
            "jit_compile": jit,
            "strategy": type(strategy).__name__,
            "replicas": int(strategy.num_replicas_in_sync),
        },
        cached_features=use_cache,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        path=folder,
    )
    import matplotlib.pyplot as plt

    figure = plots.trial_curves(result)
    try:
        # An uncompiled twin shares the layers, so the file holds the weights without the optimizer's state.
        _atomic_save_weights(keras.Model(model.inputs, model.outputs, name=model.name), folder / WEIGHTS_FILE)
        with data.replacing(folder / CURVES_FILE, ".png") as tmp:
            figure.savefig(tmp, dpi=100)
        data.write_text_atomically(folder / RESULT_FILE, result.to_json())  # last: it marks the trial finished
    except OSError as error:
        raise _os_error(
            error,
            f"could not save the result of trial {trial.name!r} in {folder} ({_reason(error)[1]});"
            f" its checkpoint (all {effective.epochs} epochs) is kept: free some space and run the trial"
            " again to save the result without training",
        ) from error
    finally:
        plt.close(figure)
    shutil.rmtree(checkpoint)
    return result


def _committed(checkpoint: Path) -> list[Path]:
    """The committed epoch folders of ``checkpoint`` (``epoch-<n>``), oldest first."""
    found = [p for p in checkpoint.glob("epoch-*") if p.is_dir() and p.name[len("epoch-") :].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len("epoch-") :]))


def _last_checkpoint(checkpoint: Path, identity: dict) -> tuple[dict | None, Path | None]:
    """The state and the weights file of the last committed epoch in ``checkpoint``, or
    ``(None, None)`` when there is none. Removes the temporary folder of a checkpoint whose
    writing was cut short (the caller holds the trial's lock, so no one is writing it).
    Raises :class:`DamagedFileError` naming a file that cannot be read, and ``ValueError``
    when the checkpoint is another run's."""
    for unfinished in checkpoint.glob(".epoch-*"):
        shutil.rmtree(unfinished, ignore_errors=True)
    committed = _committed(checkpoint)
    if not committed:
        if (checkpoint / CHECKPOINT_STATE).exists():
            raise DamagedFileError(
                f"{checkpoint} holds a checkpoint in an older layout (state.json beside the weights, which a"
                f" killed run could leave out of step); run the trial again with {RETRAIN_HINT} to start it over"
            )
        return None, None
    state_path, weights = committed[-1] / CHECKPOINT_STATE, committed[-1] / CHECKPOINT_WEIGHTS
    if not state_path.is_file():
        raise _damaged(state_path)
    try:
        state = json.loads(state_path.read_text())
        for key, kind in (
            ("identity", dict),
            ("phase", str),
            ("epochs_done", int),
            ("history", dict),
            ("wall_s", dict),
        ):
            if not isinstance(state[key], kind):
                raise TypeError(f"{key} is not a {kind.__name__}")
    except (ValueError, KeyError, TypeError) as error:
        raise _damaged(state_path, error) from error
    _check_identity(checkpoint, identity, state["identity"])
    if not weights.is_file():
        raise _damaged(weights)
    return state, weights


def _commit_checkpoint(checkpoint: Path, fit_model: keras.Model, state: dict) -> None:
    """Save ``fit_model``'s weights (with its optimizer's state) and ``state`` as one unit:
    both are written into a temporary folder, which is renamed to ``epoch-<n>`` only when
    both are complete; then the older epochs are removed. Killed at any moment, or stopped
    by a full disk, it leaves the last committed epoch whole (an ``OSError`` says so)."""
    epoch = state["epochs_done"]
    final = checkpoint / f"epoch-{epoch:04d}"
    staging = checkpoint / f".epoch-{epoch:04d}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
        fit_model.save_weights(staging / CHECKPOINT_WEIGHTS)
        (staging / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except OSError as error:
        _close_files_left_open(staging)
        shutil.rmtree(staging, ignore_errors=True)
        kept = _committed(checkpoint)
        kept_text = (
            f"the checkpoint after epoch {int(kept[-1].name[len('epoch-') :])} is kept"
            if kept
            else "no checkpoint is kept"
        )
        raise _os_error(
            error,
            f"could not save the checkpoint after epoch {epoch} in {checkpoint} ({_reason(error)[1]});"
            f" {kept_text}. Free some space (or make the folder writable) and run the trial again: it resumes"
            " from there",
        ) from error
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for older in _committed(checkpoint)[:-1]:
        shutil.rmtree(older, ignore_errors=True)


def _close_files_left_open(folder: Path) -> None:
    """Close the HDF5 files under ``folder`` that a failed ``save_weights`` left open, after
    emptying them. On a full disk, h5py would otherwise try to write them again when the
    process ends, fail, and crash the interpreter (a segmentation fault)."""
    import h5py

    for path in folder.glob("*"):
        with contextlib.suppress(OSError):
            os.truncate(path, 0)  # frees the space, so the closing writes below fit
    for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        with contextlib.suppress(Exception):
            if Path(os.fsdecode(file_id.name)).is_relative_to(folder):
                h5py.File(file_id).close()


def _restore(fit_model: keras.Model, weights: Path) -> None:
    """Load a checkpoint's weights (and optimizer state) into ``fit_model``."""
    try:
        fit_model.load_weights(weights)
    except Exception as error:  # h5py's OSError for garbage or a cut file; Keras' ValueError for another model's
        raise _damaged(weights, error) from error


def _profile_record(profile: profiles.Profile) -> dict:
    record = dataclasses.asdict(profile)
    # Where the data and the archive are, and whether a CPU run was allowed, change no result.
    for where in ("data_dir", "archive_mirror", "allow_cpu"):
        record.pop(where)
    # Whether the numbers mean anything about dogs (real data and ImageNet's weights), so a
    # page that shows a saved result can say so without the weights file at hand.
    record["real_results"] = profile.real_results
    return record


def _check_identity(where: Path, wanted: dict, found: dict) -> None:
    if json.loads(json.dumps(wanted)) != found:
        try:
            name = repr(found["trial"]["name"])
        except (KeyError, TypeError):
            name = "a trial"
        raise ValueError(
            f"{where} holds a run of {name} with other settings or another profile; pass {RETRAIN_HINT}"
            " to replace it, or choose another results folder (results=, on the command line --results)"
        )


def load_model(result: TrialResult) -> keras.Model:
    """Rebuild a finished trial's model and load its final weights (for Grad-CAM and
    further analysis). It computes in float32 even if the trial trained in mixed precision:
    the weights are float32 either way, and analysis needs no loss scaling."""
    from woofhelpers import model as model_lib

    effective = Trial(**result.effective)
    model = model_lib.build(effective, None, mixed_precision=False)
    if effective.fine_tune:
        model_lib.unfreeze(model, effective.fine_tune)
    weights = Path(result.path) / WEIGHTS_FILE
    if not weights.is_file():
        raise _damaged(weights)
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py's OSError for garbage or a cut file
        raise _damaged(weights, error) from error
    return model
