"""The engine: one function that runs any trial, and what a chapter asks of it.

:func:`plan` says what a chapter will train or load. :func:`run_trial` takes a recipe (a
:class:`woofhelpers.recipes.Trial` or a registered name) and a profile, and trains the
recipe's two phases (the head on a frozen base, then fine-tuning), tests it on the
trial's own test split and on the leakage-free test set, and saves a
:class:`woofhelpers.results.TrialResult` with the final weights under
``results/<profile>/<trial>/``. Running a finished trial again loads that result;
``retrain=True`` trains again. It orchestrates; each part has its own module:

- the data: :func:`trial_data` (the trial's split, capped by the profile, and the
  leakage-free test set), from :mod:`woofhelpers.data` and :mod:`woofhelpers.splits`;
- the network: :mod:`woofhelpers.model`; the features the head trains on, and the test:
  :mod:`woofhelpers.features`;
- resuming: :mod:`woofhelpers.checkpoint` (every finished epoch committed as one unit; run a
  killed trial again and it continues from there, with the same batches);
- the machine: :mod:`woofhelpers.hardware`. On a GPU: XLA, and mixed precision
  (``mixed_float16`` with loss scaling, output layer float32) only for trials that ask for
  it (``Trial.mixed_precision``: the corrected recipe); trials 1-5 train in float32, as
  the original did. The head alone, on cached features, is compiled with XLA on a CPU too.
  Several GPUs: ``MirroredStrategy`` (without XLA); a Colab TPU: ``TPUStrategy``. Seeds,
  the dtype policy and TensorFlow's logger are set for the run and put back after it.
- one run at a time: a lock file per trial makes a second process that asks for the
  same trial wait (it says so, and for what), then load the first one's result.

A damaged result or checkpoint is named in a :class:`woofhelpers.results.DamagedFileError`;
``retrain=True`` (``--retrain`` on the command line) starts over.

Taught in the trial chapters (*Trial 1* ... *Trial 5*).
"""

from __future__ import annotations

import contextlib
import datetime
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from woofhelpers import (
    catalog,
    checkpoint,
    data,
    features,
    hardware,
    io,
    pipeline,
    profiles,
    recipes,
    runtime,
    splits,
)
from woofhelpers import model as model_lib
from woofhelpers import results as results_lib
from woofhelpers.recipes import Trial
from woofhelpers.results import TrialResult

if TYPE_CHECKING:
    import keras
    import pandas as pd
    import tensorflow as tf


def plan(*names: str | Trial, profile: profiles.Profile) -> pd.DataFrame:
    """What a chapter runs, before it runs it: for each trial in ``names`` (registered names
    or :class:`Trial` objects), whether a finished
    result is already saved under :func:`woofhelpers.results.results_dir` (then :func:`run_trial` loads it; in
    Colab, results kept on Google Drive by an earlier chapter count) or will be trained
    here, and roughly how long the full profile takes to train it on a Colab GPU and on a
    2-core CPU (estimates from the original's logs: see :mod:`woofhelpers.runtime`)."""
    import pandas as pd

    rows = []
    for name in names:
        trial = recipes.get(name) if isinstance(name, str) else name
        saved = results_lib.results_dir() / profile.name / trial.name / results_lib.RESULT_FILE
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


def _cap(split: splits.Split, per_class: int | None) -> splits.Split:
    """Keep the first ``per_class`` files of each class in each part (manifest order)."""
    if per_class is None:
        return split
    parts = {}
    for part in splits.PARTS:
        kept, seen = [], {}
        for path in split.parts[part]:
            wnid = catalog.class_of(path)
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
        raise io.os_error(
            error,
            f"cannot prepare the dataset in {profile.data_dir} ({io.reason(error)[1]}); set WOOF_DATA_DIR"
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


def run_trial(
    trial: Trial | str,
    profile: profiles.Profile,
    *,
    retrain: bool = False,
    verbose: int = 0,
    callbacks: list | None = None,
    cached_features: bool | None = None,
    strategy: tf.distribute.Strategy | None = None,
    results: str | Path | None = None,
) -> TrialResult:
    """Train ``trial`` (a :class:`woofhelpers.recipes.Trial` or a registered name) in
    ``profile``, evaluate it, save and return its :class:`woofhelpers.results.TrialResult`.

    The result and the final weights go to ``<results>/<profile>/<trial name>/``
    (``results`` defaults to :func:`woofhelpers.results.results_dir`).
    A finished result there is loaded instead of training, unless ``retrain``; an
    unfinished run there is resumed from its last finished epoch. ``verbose=1`` shows
    Keras' progress bars. ``cached_features`` forces (``True``) or forbids (``False``)
    training the head on precomputed features; by default they are used whenever the
    base is frozen and there is no augmentation (always in the head phase, unless
    ``augment``). ``callbacks`` are passed to every ``fit``.
    """
    trial = recipes.get(trial) if isinstance(trial, str) else trial
    base = Path(results or results_lib.results_dir()).expanduser()
    folder = base / profile.name / trial.name
    fix = (
        "pass results= a folder you can write (on the command line: --results), or set"
        f" {results_lib.RESULTS_ENV_VAR} to one"
    )
    if base.exists() and not base.is_dir():
        raise ValueError(f"the results folder {base} is a file; {fix}")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise io.os_error(
            error, f"cannot create the results folder {folder.parent} ({io.reason(error)[1]}); {fix}"
        ) from error
    # One process at a time per trial: a second one (another notebook, a test worker) waits,
    # then loads what the first saved, instead of both training into the same folder.
    lock = filelock.FileLock(folder.parent / f".{trial.name}.lock")
    with _holding(lock, trial.name, folder, announce=bool(verbose)), hardware.quiet_tf_log():
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
    """Load the finished result in ``folder`` (checking it is this trial's, in this
    profile), or train from the last checkpoint (or from scratch), then save the result."""
    effective = trial.for_profile(profile)
    identity = {"trial": trial.settings(), "effective": effective.settings(), "profile": profiles.record(profile)}
    if retrain and folder.exists():
        shutil.rmtree(folder)
    if (folder / results_lib.RESULT_FILE).is_file():
        result = TrialResult.load(folder)
        results_lib.check_identity(
            folder, identity, {"trial": result.trial, "effective": result.effective, "profile": result.profile}
        )
        return result

    use_cache = (not effective.augment) if cached_features is None else cached_features
    if use_cache and effective.augment:
        raise ValueError(f"trial {trial.name!r} augments its images, so the head cannot train on cached features")
    saved_in = folder / checkpoint.FOLDER
    saved_in.mkdir(parents=True, exist_ok=True)
    state, saved_weights = checkpoint.last(saved_in, identity)
    if state is None:
        state = {"identity": identity, "phase": "head", "epochs_done": 0, "history": {}, "wall_s": {}}
    with hardware.seeded(effective.seed):
        model, result = _train(
            identity, effective, profile, state, saved_in, saved_weights, use_cache, verbose, callbacks, strategy
        )
    result.path = folder
    import keras

    try:
        # An uncompiled twin shares the layers, so the file holds the weights without the optimizer's state.
        with io.replacing(folder / results_lib.WEIGHTS_FILE, ".weights.h5") as tmp:
            keras.Model(model.inputs, model.outputs, name=model.name).save_weights(tmp)
        io.write_text_atomically(folder / results_lib.RESULT_FILE, result.to_json())  # last: marks it finished
    except OSError as error:
        raise io.os_error(
            error,
            f"could not save the result of trial {trial.name!r} in {folder} ({io.reason(error)[1]});"
            f" its checkpoint (all {effective.epochs} epochs) is kept: free some space and run the trial"
            " again to save the result without training",
        ) from error
    shutil.rmtree(saved_in)
    return result


def _train(identity, effective, profile, state, saved_in, saved_weights, use_cache, verbose, callbacks, strategy):
    """Both phases of ``effective`` from where ``state`` left off, committing a checkpoint
    in ``saved_in`` after every epoch, then both tests: the model and its result, which
    records ``identity`` (the recipe, its effective settings and the profile's record)."""
    gpu = hardware.on_gpu()
    # Mixed precision (with loss scaling) only where the trial asks for it, and only on a GPU.
    mixed_precision = effective.mixed_precision and gpu
    strategy = strategy or hardware.choose_strategy()
    # XLA: the whole model on one GPU; the head alone, on features, on any one device (on a
    # CPU that fuses the optimizer's update of the original head's 51 million weights into
    # one pass, about 4x faster per epoch: benchmarks/README.md). Not across replicas, where
    # XLA refuses variables placed on several devices.
    single = strategy.num_replicas_in_sync == 1
    jit = {"head": single and (gpu or use_cache), "fine_tune": single and gpu}
    split, honest_split = trial_data(effective, profile)
    # A full-size run on a machine without a GPU stops here, saying how long it would take.
    runtime.check_device(effective, profile, split.sizes(), gpu)
    train_images, val_images = features.image_datasets(effective, split)

    def save(fit_model):
        checkpoint.commit(saved_in, fit_model, state)

    with strategy.scope():
        model = _build(effective, profile, mixed_precision)
        probing = features.probe(model)
        head_model = model_lib.head_model(model) if use_cache else model
        model_lib.compile_model(
            head_model, effective.head_optimizer, effective.head_learning_rate, jit_compile=jit["head"]
        )
        if state["phase"] == "head" and state["epochs_done"] > 0:  # resume the head phase
            checkpoint.restore(head_model, saved_weights)

    # Phase 1: the head, on a frozen base.
    if state["phase"] == "head" and state["epochs_done"] < effective.head_epochs:
        if use_cache:
            train_ds, val_ds = features.feature_datasets(probing, effective, split)
        else:
            train_ds, val_ds = train_images, val_images
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
                checkpoint.restore(model, saved_weights)
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

    own, own_predictions = features.test(probing, split, effective)
    honest, honest_predictions = features.test(probing, honest_split, effective)
    result = TrialResult(
        **identity,
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
    )
    return model, result


def _build(effective: Trial, profile: profiles.Profile, mixed_precision: bool) -> keras.Model:
    """The trial's model with the profile's weights; a failed download of ImageNet's
    weights says what to do instead."""
    try:
        return model_lib.build(effective, profiles.weights_file(profile), mixed_precision=mixed_precision)
    except Exception as error:  # Keras' download failure is a bare Exception
        if "URL fetch failure" not in str(error):
            raise
        raise ConnectionError(
            f"could not download ResNet50's ImageNet weights ({' '.join(str(error).split())[:300]}); check the"
            f" network and run again, or download {profiles.KERAS_RESNET50_FILES[False]} elsewhere and set"
            " WOOF_WEIGHTS to its path (WOOF_WEIGHTS=none trains from random weights)"
        ) from error


def load_model(result: TrialResult) -> keras.Model:
    """Rebuild a finished trial's model and load its final weights (for Grad-CAM and
    further analysis). It computes in float32 even if the trial trained in mixed precision:
    the weights are float32 either way, and analysis needs no loss scaling."""
    effective = Trial(**result.effective)
    model = model_lib.build(effective, None, mixed_precision=False)
    if effective.fine_tune:
        model_lib.unfreeze(model, effective.fine_tune)
    weights = Path(result.path) / results_lib.WEIGHTS_FILE
    if not weights.is_file():
        raise results_lib.damaged(weights)
    try:
        model.load_weights(weights)
    except Exception as error:  # h5py's OSError for garbage or a cut file
        raise results_lib.damaged(weights, error) from error
    return model


def load_results(
    names: Sequence[str],
    profile: profiles.Profile,
    *,
    prefer: str = "full",
    run: Callable[[str, profiles.Profile], TrialResult] | None = None,
) -> tuple[str, list[TrialResult]]:
    """The results of the trials ``names``, and the name of the profile that produced them.

    When every one of them has a finished run of the ``prefer`` profile (``full``) under
    ``results/<prefer>/``, those are returned, whatever ``profile`` is. Otherwise each
    trial is run, or loaded when already run, in ``profile`` with ``run`` (default:
    :func:`run_trial`).
    """
    folder = results_lib.results_dir() / prefer
    found = [folder / name / results_lib.RESULT_FILE for name in names]
    if all(path.is_file() for path in found):
        return prefer, [TrialResult.load(path) for path in found]
    run = run or run_trial
    return profile.name, [run(name, profile) for name in names]
