"""What a trial run saved, and reading it back: results, their folder, their tables.

A finished run of :func:`woofhelpers.trials.run_trial` leaves ``result.json`` (a
:class:`TrialResult`: the recipe, the profile, both phases' history, both test sets'
accuracy and loss, and each test image's file, label and output probabilities) and the
final weights in ``<results>/<profile>/<trial>/`` (:func:`results_dir`). This module reads
them back (:meth:`TrialResult.load`; a damaged file raises :class:`DamagedFileError`,
naming it), turns the saved test outputs into :class:`woofhelpers.evaluate.Predictions`
(:func:`from_trial`, no dataset needed) and puts trials side by side with the original
exercise's reported figures (:func:`trial_table`).

Taught in the trial chapters and *Results* (``chapters/results``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from woofhelpers import catalog, evaluate, original

if TYPE_CHECKING:
    import pandas as pd

RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.weights.h5"
CURVES_FILE = "learning_curves.png"  # written by the command line's run-trial
RESULTS_ENV_VAR = "WOOF_RESULTS_DIR"
RETRAIN_HINT = "retrain=True (on the command line: --retrain)"


class DamagedFileError(ValueError):
    """A saved result or checkpoint that cannot be read (truncated, garbage, missing). The
    message names the file and says that ``retrain=True`` (``--retrain``) starts over."""


def damaged(path: Path, error: BaseException | None = None) -> DamagedFileError:
    """The error for a file that is missing (``error=None``) or cannot be read."""
    if error is None:
        what = "missing"
    else:
        first_line = (str(error).strip().splitlines() or [""])[0][:200]
        what = f"damaged ({type(error).__name__}: {first_line})"
    return DamagedFileError(f"{path} is {what}; run the trial again with {RETRAIN_HINT} to start it over")


def results_dir() -> Path:
    """Where results go: ``$WOOF_RESULTS_DIR``, else ``results/`` of the checkout, else
    ``~/woof-results``."""
    if os.environ.get(RESULTS_ENV_VAR):
        return Path(os.environ[RESULTS_ENV_VAR]).expanduser()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file():
        return checkout / "results"
    return Path.home() / "woof-results"


@dataclass
class TrialResult:
    """What a trial run produced. ``history`` maps ``"head"`` and ``"fine_tune"`` to
    ``{metric: [one value per epoch]}`` plus ``"epoch"`` (1-based, continuing across
    phases); ``test`` maps ``"own"`` and ``"leakage_free"`` to accuracy, loss and the
    number of images; ``predictions`` holds each test set's files (relative to the
    dataset's folder), labels and output probabilities, for later analysis."""

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
            raise damaged(path, error) from error

    def saved_outputs(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """The saved test labels (int64, shape (n,)) and outputs (float32, shape (n, classes);
        (0, 0) for an empty test set) of ``which``: ``"own"`` or ``"leakage_free"``."""
        saved = self.predictions[which]
        true = np.asarray(saved["labels"], dtype=np.int64)
        scores = np.asarray(saved["probabilities"], dtype=np.float32)
        return true, scores.reshape(len(true), -1) if len(true) else scores.reshape(0, 0)

    def saved_files(self, which: str) -> tuple[str, ...]:
        """The files of the saved test outputs of ``which`` (``"own"`` or ``"leakage_free"``),
        relative to the dataset's folder, in the order of :meth:`saved_outputs`."""
        saved = self.predictions[which]
        if "files" not in saved:
            path = (self.path / RESULT_FILE) if self.path else RESULT_FILE
            raise DamagedFileError(
                f"{path} was saved before trial results recorded their test files; run the trial again"
                f" with {RETRAIN_HINT} to save them"
            )
        return tuple(saved["files"])

    def summary(self) -> dict:
        """One row for a comparison table: for the own test split and the leakage-free
        test set, the number of images, the accuracy (%) and its 95% bootstrap interval
        (``wh.evaluate.accuracy_summary`` of the saved predictions), so an accuracy is
        never shown without the size of its test set. An empty test set shows "–"."""
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


def check_identity(where: Path, wanted: dict, found: dict) -> None:
    """Raise ``ValueError`` unless ``found`` (the identity a saved result or checkpoint in
    ``where`` records: recipe, effective settings, profile record) is ``wanted``; the
    message says to retrain or to choose another results folder."""
    if json.loads(json.dumps(wanted)) != found:
        try:
            name = repr(found["trial"]["name"])
        except (KeyError, TypeError):
            name = "a trial"
        raise ValueError(
            f"{where} holds a run of {name} with other settings or another profile; pass {RETRAIN_HINT}"
            " to replace it, or choose another results folder (results=, on the command line --results)"
        )


TEST_SETS = {"own": "own split's test", "leakage_free": "leakage-free (ImageNet val)"}
REPORTED_TEST_SET = "original's write-up"
SAME_TEST_SET = "own test = leakage-free"


def from_trial(result: TrialResult, which: str = "leakage_free") -> evaluate.Predictions:
    """The saved test predictions of a trial as :class:`woofhelpers.evaluate.Predictions`,
    with the file of each row (relative to the dataset's folder): ``which`` is ``"own"``
    (the trial's own test split) or ``"leakage_free"``. Read from the result alone; a
    result saved before results recorded their files raises :class:`DamagedFileError`."""
    if which not in TEST_SETS:
        raise ValueError(f"unknown test set {which!r}; choose one of {tuple(TEST_SETS)}")
    true, scores = result.saved_outputs(which)
    files = result.saved_files(which)
    if [catalog.label_of(f) for f in files] != true.tolist():
        raise ValueError(
            f"the saved {which} test labels of {result.name!r} do not match the classes of their files;"
            f" the result is damaged: run the trial again with {RETRAIN_HINT}"
        )
    return evaluate.Predictions(files, true, scores)


def trial_table(results: list[TrialResult], **bootstrap: Any) -> pd.DataFrame:
    """Every trial side by side, one row per (trial, test set), each with its number of
    images, accuracy and 95% bootstrap interval (in %): an accuracy is never shown
    without them.

    Per trial, in this order: the figure the original exercise's write-up reported
    (trials 1-5 only, from :data:`woofhelpers.original.REPORTED`'s counts), the trial's own test
    split and the leakage-free test set, both from the saved labels and probabilities of
    the ``wh.results.TrialResult``. When the two saved test sets are identical (same
    labels, same outputs: the same images, as for a split whose test *is* the
    leakage-free set), they make one row, labelled :data:`SAME_TEST_SET`. A test set
    with no images has no row.
    """
    import pandas as pd

    rows = []
    for result in results:
        if result.name in original.REPORTED:
            right, images = original.REPORTED[result.name]
            figures = evaluate.accuracy_summary(np.arange(images) < right, **bootstrap)
            rows.append({"trial": result.name, "test set": REPORTED_TEST_SET, **figures})
        (own_true, own_scores), (free_true, free_scores) = (
            result.saved_outputs("own"),
            result.saved_outputs("leakage_free"),
        )
        same = np.array_equal(own_true, free_true) and np.array_equal(own_scores, free_scores)
        if same:
            sets = [(SAME_TEST_SET, own_true, own_scores)]
        else:
            sets = [(TEST_SETS["own"], own_true, own_scores), (TEST_SETS["leakage_free"], free_true, free_scores)]
        for label, true, scores in sets:
            if len(true):
                figures = evaluate.accuracy_summary(scores.argmax(axis=1) == true, **bootstrap)
                rows.append({"trial": result.name, "test set": label, **figures})
    return pd.DataFrame(rows, columns=["trial", "test set", "images", "accuracy %", "95% CI low", "95% CI high"])
