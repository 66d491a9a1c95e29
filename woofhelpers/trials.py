"""Trials as data, and one engine that runs any of them.

A :class:`Trial` is a small frozen dataclass: everything that made one of the original
exercise's runs what it was. :data:`TRIALS` holds trials 1-5 exactly as the original ran
them, two documented variants (``"trial4_honest"``, ``"trial5_honest"``: the same trials with
the 500 ImageNet-validation images held out as their test set), plus ``"corrected"``, the
recipe this course recommends. :func:`plan` says what a chapter will train or load. :func:`run_trial` trains a
trial's two phases (the head on a frozen base, then fine-tuning), tests it on the trial's
own test split and on the leakage-free test set, and saves a :class:`TrialResult` as JSON
with its plots under ``results/<profile>/<trial>/``. Running a finished trial again loads
that result; ``retrain=True`` trains again.

- **Resume.** Every finished epoch is checkpointed (weights, optimizer state, history,
  written to a temporary file and renamed). Run a killed trial again and it continues
  from the last finished epoch; the history it saves is complete. Each epoch's data
  order depends only on the seed and the epoch number, so a resumed run sees the same
  batches as one that was never interrupted.
- **Cached features.** With a frozen base and no augmentation the base's output never
  changes during the head phase, so the base runs once over the data (``predict``) and
  the head trains on those features: the same head, far faster.
- **Hardware.** On a GPU: XLA, and mixed precision (``mixed_float16`` with loss scaling,
  output layer float32) only for trials that ask for it (``Trial.mixed_precision``: the
  corrected recipe); trials 1-5 train in float32, as the original did. The head alone,
  on cached features, is compiled with XLA on a CPU too. Several GPUs: ``MirroredStrategy``
  (without XLA); a Colab TPU: ``TPUStrategy``; otherwise the default strategy.
- **One run at a time.** A lock file per trial makes a second process that asks for the
  same trial wait, then load the first one's result.

Taught in the trial chapters (*Trial 1* ... *Trial 5*).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
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
RESULTS_ENV_VAR = "WOOF_RESULTS_DIR"


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
    fine_tune_epochs=10,
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
    # A variant, not a trial the original ran: trial 4 with an honest test set, the 500
    # ImageNet-validation files held out before pooling (splits.pooled_leakage_free).
    "trial4_honest": Trial(
        "trial4_honest",
        image_size_px=200,
        output_activation="softmax",
        head_learning_rate=0.0001,
        fine_tune="original",
        fine_tune_learning_rate=0.00001,
        split="pooled_leakage_free",
        description="variant: trial 4 with the ImageNet-validation files held out as test before pooling",
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
    # A variant, not a trial the original ran: trial 5 with trial4_honest's split.
    "trial5_honest": Trial(
        "trial5_honest",
        image_size_px=200,
        output_activation="softmax",
        head_learning_rate=0.0001,
        fine_tune="original",
        fine_tune_learning_rate=0.00001,
        split="pooled_leakage_free",
        description="variant: trial 5 with the ImageNet-validation files held out as test before pooling",
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
        augment=False,
        seed=123,
        mixed_precision=True,
        description=(
            "preprocessing in the model, pooled head, top stage fine-tuned with BatchNorm frozen, honest test set"
        ),
    ),
}
TRIAL_NAMES = tuple(TRIALS)


def get(name: str) -> Trial:
    """The registered trial called ``name`` (one of :data:`TRIAL_NAMES`)."""
    if name not in TRIALS:
        raise ValueError(f"unknown trial {name!r}; choose one of {TRIAL_NAMES}")
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
        return cls(**json.loads(path.read_text()), path=path.parent)

    def summary(self) -> dict:
        """One row for a comparison table: for the own test split and the leakage-free
        test set, the number of images, the accuracy (%) and its 95% bootstrap interval
        (``wh.evaluate.accuracy_summary`` of the saved predictions), so an accuracy is
        never shown without the size of its test set. An empty test set shows "–"."""
        from woofhelpers import evaluate  # the results layer, above this one; only needed here

        row: dict[str, Any] = {"trial": self.name}
        for which, label in (("own", "own test"), ("leakage_free", "leakage-free test")):
            saved = self.predictions[which]
            true = np.asarray(saved["labels"], dtype=np.int64)
            row[f"{label}: images"] = len(true)
            if len(true):
                scores = np.asarray(saved["probabilities"], dtype=np.float32).reshape(len(true), -1)
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
    root = data.dataset_root(profile)
    split, _ = pipeline.scan(splits.make(trial.split, root), verbose=False)
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
    folder = Path(results or results_dir()) / profile.name / trial.name
    folder.parent.mkdir(parents=True, exist_ok=True)
    # One process at a time per trial: a second one (another notebook, a test worker) waits,
    # then loads what the first saved, instead of both training into the same folder.
    with filelock.FileLock(folder.parent / f".{trial.name}.lock"), _no_retracing_warnings():
        return _load_or_train(trial, profile, folder, retrain, verbose, callbacks, cached_features, strategy)


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
    state_path = checkpoint / "state.json"
    if state_path.is_file():
        state = json.loads(state_path.read_text())
        _check_identity(checkpoint, identity, state["identity"])
    else:
        state = {"identity": identity, "phase": "head", "epochs_done": 0, "history": {}, "wall_s": {}}

    def save(fit_model):
        _atomic_save_weights(fit_model, checkpoint / "latest.weights.h5")
        data.write_text_atomically(state_path, json.dumps(state, indent=1))

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
        model = model_lib.build(effective, profiles.weights_file(profile), mixed_precision=mixed_precision)
        probing = probe(model)
        head_model = model_lib.head_model(model) if use_cache else model
        model_lib.compile_model(
            head_model, effective.head_optimizer, effective.head_learning_rate, jit_compile=jit["head"]
        )
        if state["phase"] == "head" and state["epochs_done"] > 0:  # resume the head phase
            head_model.load_weights(checkpoint / "latest.weights.h5")

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
                model.load_weights(checkpoint / "latest.weights.h5")
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
    # An uncompiled twin shares the layers, so the file holds the weights without the optimizer's state.
    _atomic_save_weights(keras.Model(model.inputs, model.outputs, name=model.name), folder / WEIGHTS_FILE)
    figure = plots.trial_curves(result)
    figure.savefig(folder / CURVES_FILE, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(figure)
    data.write_text_atomically(folder / RESULT_FILE, result.to_json())
    shutil.rmtree(checkpoint)
    return result


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
        raise ValueError(
            f"{where} holds a run of {found['trial']['name']!r} with other settings or another profile;"
            " pass retrain=True to replace it, or choose another results folder"
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
    model.load_weights(result.path / WEIGHTS_FILE)
    return model
