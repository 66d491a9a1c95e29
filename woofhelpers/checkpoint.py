"""Checkpoints: a trial's progress, one finished epoch at a time, committed as one unit.

After every finished epoch the engine saves a folder ``checkpoint/epoch-<n>/`` holding the
weights with the optimizer's state (``checkpoint.weights.h5``) and the run's state
(``state.json``: which phase, how many epochs are done, the history so far, the wall
time, and the identity of the run). The folder is written under a temporary name and
renamed into place only when complete (:func:`woofhelpers.io.replace_folder`), so a run
killed at any moment, or stopped by a full disk, leaves the last finished epoch's
checkpoint whole; run the trial again and it continues from there. A damaged checkpoint
raises :class:`woofhelpers.results.DamagedFileError`, naming the file.

Used by :func:`woofhelpers.trials.run_trial`; taught in *Running the course* (``running.md``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from woofhelpers import io, results

if TYPE_CHECKING:
    import keras

FOLDER = "checkpoint"
# Inside FOLDER, one folder per committed epoch (``epoch-0003``) holds these two.
STATE = "state.json"
WEIGHTS = "checkpoint.weights.h5"


def _folder(epoch: int) -> str:
    """The name of the committed folder of ``epoch`` (``epoch-0003``)."""
    return f"epoch-{epoch:04d}"


def _epoch(folder: Path) -> int | None:
    """The epoch a committed folder holds, from its name; ``None`` for any other name."""
    number = folder.name.removeprefix("epoch-")
    return int(number) if folder.name.startswith("epoch-") and number.isdigit() else None


def committed(checkpoint: Path) -> list[Path]:
    """The committed epoch folders of ``checkpoint`` (``epoch-<n>``), oldest first."""
    found = [p for p in checkpoint.glob("epoch-*") if p.is_dir() and _epoch(p) is not None]
    return sorted(found, key=_epoch)


def last(checkpoint: Path, identity: dict) -> tuple[dict | None, Path | None]:
    """The state and the weights file of the last committed epoch in ``checkpoint``, or
    ``(None, None)`` when there is none. Removes the temporary folder of a checkpoint whose
    writing was cut short (the caller holds the trial's lock, so no one is writing it).
    Raises :class:`DamagedFileError` naming a file that cannot be read, and ``ValueError``
    when the checkpoint is another run's."""
    for unfinished in checkpoint.glob(".epoch-*"):
        shutil.rmtree(unfinished, ignore_errors=True)
    done = committed(checkpoint)
    if not done:
        if (checkpoint / STATE).exists():
            raise results.DamagedFileError(
                f"{checkpoint} holds a checkpoint in an older layout (state.json beside the weights, which a"
                f" killed run could leave out of step); run the trial again with {results.RETRAIN_HINT}"
                " to start it over"
            )
        return None, None
    state_path, weights = done[-1] / STATE, done[-1] / WEIGHTS
    if not state_path.is_file():
        raise results.damaged(state_path)
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
        raise results.damaged(state_path, error) from error
    results.check_identity(checkpoint, identity, state["identity"])
    if not weights.is_file():
        raise results.damaged(weights)
    return state, weights


def commit(checkpoint: Path, fit_model: keras.Model, state: dict) -> None:
    """Save ``fit_model``'s weights (with its optimizer's state) and ``state`` as one unit:
    both are written into a temporary folder, which is renamed to ``epoch-<n>`` only when
    both are complete; then the older epochs are removed. Killed at any moment, or stopped
    by a full disk, it leaves the last committed epoch whole (an ``OSError`` says so)."""
    epoch = state["epochs_done"]

    def write(folder: Path) -> None:
        fit_model.save_weights(folder / WEIGHTS)
        (folder / STATE).write_text(json.dumps(state, indent=1))

    try:
        io.replace_folder(checkpoint / _folder(epoch), write, on_failure=_close_files_left_open)
    except OSError as error:
        kept = committed(checkpoint)
        kept_text = f"the checkpoint after epoch {_epoch(kept[-1])} is kept" if kept else "no checkpoint is kept"
        raise io.os_error(
            error,
            f"could not save the checkpoint after epoch {epoch} in {checkpoint} ({io.reason(error)[1]});"
            f" {kept_text}. Free some space (or make the folder writable) and run the trial again: it resumes"
            " from there",
        ) from error
    for older in committed(checkpoint)[:-1]:
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


def restore(fit_model: keras.Model, weights: Path) -> None:
    """Load a checkpoint's weights (and optimizer state) into ``fit_model``."""
    try:
        fit_model.load_weights(weights)
    except Exception as error:  # h5py's OSError for garbage or a cut file; Keras' ValueError for another model's
        raise results.damaged(weights, error) from error
