"""Evaluation: predictions for a split, accuracy with a bootstrap confidence interval,
confusion matrix, per-class precision and recall, and the worst errors.

Every evaluation starts by decoding each file of the part it evaluates
(:func:`woofhelpers.pipeline.scan`); files that fail are *reported* (printed, and
kept in :attr:`Predictions.unreadable`), never skipped silently.

Taught in the chapter *Results* (``chapters/results``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from woofhelpers import hardware, io, pipeline
from woofhelpers import labels as woof_labels
from woofhelpers.splits import PARTS, Split

if TYPE_CHECKING:
    import keras
    import pandas as pd

# How the confidence interval is computed, stated once so chapters can print it.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Predictions:
    """A model's outputs on the files of one part of a split.

    ``scores`` is float32 of shape (n, classes): what the model output for each file
    (probabilities for a softmax head). ``true`` holds the labels (0-9), ``paths`` the
    files relative to the split's root, in the same order. ``unreadable`` maps each file
    that could not be decoded, and so was not evaluated, to the reason.
    """

    paths: tuple[str, ...]
    true: np.ndarray
    scores: np.ndarray
    class_names: tuple[str, ...] = woof_labels.CLASS_NAMES
    unreadable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.paths)
        if self.true.shape != (n,) or self.scores.ndim != 2 or self.scores.shape[0] != n:
            raise ValueError(
                f"{n} paths need labels of shape ({n},) and scores of shape ({n}, classes);"
                f" got {self.true.shape} and {self.scores.shape}"
            )
        if self.scores.shape[1] != len(self.class_names):
            raise ValueError(
                f"scores have {self.scores.shape[1]} columns but there are {len(self.class_names)} class names"
            )

    @property
    def predicted(self) -> np.ndarray:
        """The predicted label of each file (the highest score)."""
        return self.scores.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        """Boolean array: whether each prediction is right."""
        return self.predicted == self.true

    def __len__(self) -> int:
        return len(self.paths)


def check_output_size(model: keras.Model, class_names: tuple[str, ...] | list[str] = woof_labels.CLASS_NAMES) -> int:
    """Raise ``ValueError`` unless ``model`` outputs one score per class; return that number."""
    outputs = model.output_shape[-1] if hasattr(model, "output_shape") else None
    if outputs != len(class_names):
        raise ValueError(
            f"model {getattr(model, 'name', model)!r} outputs {outputs} scores per image, but the split"
            f" has {len(class_names)} classes ({', '.join(class_names)}); evaluate a model whose last"
            f" layer is Dense({len(class_names)}), or pass the class names it was trained on"
        )
    return outputs


def predict(
    model: keras.Model,
    split: Split,
    part: str = "test",
    *,
    image_size_px: int,
    batch_size: int = 32,
    paths: list[str] | tuple[str, ...] | None = None,
    class_names: tuple[str, ...] = woof_labels.CLASS_NAMES,
    verbose: bool = True,
) -> Predictions:
    """Run ``model`` on the files of ``part`` of ``split`` (or on the given ``paths``,
    relative to the split's root, such as :func:`woofhelpers.splits.leakage_free_test`).

    Every file is decoded once first; unreadable ones are printed (unless
    ``verbose=False``), left out and listed in the result's ``unreadable``. Raises
    ``ValueError`` when the model's output size is not the number of classes, or
    when a label is outside the model's classes.
    """
    check_output_size(model, class_names)
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {PARTS}")
    chosen = tuple(split.parts[part] if paths is None else paths)
    if not chosen:
        raise ValueError(f"nothing to evaluate: part {part!r} of split {split.name!r} is empty")
    only = Split(f"{split.name}-{part}", split.root, {"train": (), "validation": (), "test": chosen})
    readable, report = pipeline.scan(only, verbose=False)
    if verbose and report.unreadable:
        print(f"evaluation of {split.name}/{part}: {report}")
    true = readable.labels("test")
    if len(true) and true.max() >= len(class_names):
        raise ValueError(f"labels go up to {true.max()}, but the model has only {len(class_names)} classes")
    scores = np.zeros((0, len(class_names)), dtype=np.float32)
    if readable.parts["test"]:
        ds = pipeline.dataset(readable, "test", image_size_px=image_size_px, batch_size=batch_size, shuffle=False)
        scores = _quiet_predict(model, ds.map(lambda x, y: x))
    return Predictions(readable.parts["test"], true, scores, tuple(class_names), dict(report.unreadable))


def _quiet_predict(model, images) -> np.ndarray:
    """``model.predict`` without TensorFlow's "triggered tf.function retracing" warning,
    which a chapter evaluating several models would otherwise print (the last, smaller
    batch of each test set traces the predict function once more; that is expected)."""
    with hardware.quiet_tf_log():
        return np.asarray(model.predict(images, verbose=0), dtype=np.float32)


def accuracy_ci(
    correct: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Accuracy and its bootstrap percentile interval: ``(accuracy, low, high)``.

    ``correct`` is a boolean array, one entry per image. The images are resampled
    with replacement ``resamples`` times (random generator seeded with ``seed``); the
    interval holds the middle ``level`` of the resampled accuracies.
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 1 or correct.size == 0:
        raise ValueError(f"need a non-empty 1-D array of right/wrong, got shape {correct.shape}")
    if resamples < 1:
        raise ValueError(f"resamples={resamples}: must be at least 1")
    if not 0 < level < 1:
        raise ValueError(f"level={level}: must be between 0 and 1")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, correct.size, size=(resamples, correct.size))
    accuracies = correct[draws].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(accuracies, [tail, 100 - tail])
    return float(correct.mean()), float(low), float(high)


def accuracy_summary(correct: np.ndarray, **bootstrap: Any) -> dict[str, float | int]:
    """The number of images, the accuracy and its 95% bootstrap interval (in %, two
    decimals) of a boolean array of right/wrong: the figures that always go together.
    ``bootstrap`` is passed to :func:`accuracy_ci`."""
    accuracy, low, high = accuracy_ci(correct, **bootstrap)
    return {
        "images": int(np.asarray(correct).size),
        "accuracy %": round(100 * accuracy, 2),
        "95% CI low": round(100 * low, 2),
        "95% CI high": round(100 * high, 2),
    }


def summary(predictions: Predictions, **bootstrap: Any) -> dict[str, float | int]:
    """Images evaluated, images unreadable, accuracy and its 95% bootstrap interval (in %)."""
    figures = accuracy_summary(predictions.correct, **bootstrap)
    return {"images": figures.pop("images"), "unreadable": len(predictions.unreadable), **figures}


def confusion(predictions: Predictions) -> pd.DataFrame:
    """The confusion matrix as a ``pandas.DataFrame``: rows are true breeds, columns predicted."""
    import pandas as pd
    from sklearn.metrics import confusion_matrix

    names = list(predictions.class_names)
    matrix = confusion_matrix(predictions.true, predictions.predicted, labels=range(len(names)))
    frame = pd.DataFrame(matrix, index=names, columns=names)
    frame.index.name, frame.columns.name = "true", "predicted"
    return frame


def calibration(predictions: Predictions, bins: int = 5) -> pd.DataFrame:
    """Is the top probability a confidence? The test images grouped by the probability the
    model gave its answer (``bins`` equal ranges from 0.1 to 1: ten classes, so never below
    0.1), and for each group how many images, the mean of that probability and the share
    that were right. A calibrated model's two columns agree; the last row, ``all``, gives
    the expected calibration error: the gap between them, averaged over the images.
    Taught in the chapter *Is my dog one of the ten?*"""
    import pandas as pd

    if bins < 1:
        raise ValueError(f"bins={bins}: use 1 or more")
    confidence = predictions.scores.max(axis=1).astype(np.float64)
    right = predictions.correct
    edges = np.linspace(0.1, 1.0, bins + 1)
    group = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    rows, gap = [], 0.0
    for number in range(bins):
        members = group == number
        count = int(members.sum())
        row = {"probability given": f"{edges[number]:.2f}–{edges[number + 1]:.2f}", "images": count}
        if count:
            row["mean probability %"] = 100 * confidence[members].mean()
            row["right %"] = 100 * right[members].mean()
            gap += count * abs(confidence[members].mean() - right[members].mean())
        rows.append(row)
    total = len(confidence)
    rows.append(
        {
            "probability given": "all",
            "images": total,
            "mean probability %": 100 * confidence.mean() if total else np.nan,
            "right %": 100 * right.mean() if total else np.nan,
            "calibration error %": 100 * gap / total if total else np.nan,
        }
    )
    return pd.DataFrame(rows).set_index("probability given")


def per_class(predictions: Predictions) -> pd.DataFrame:
    """Precision, recall, F1 and number of images per breed (scikit-learn), as a DataFrame.

    A breed that is never predicted has precision 0 (scikit-learn's ``zero_division=0``).
    """
    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, support = precision_recall_fscore_support(
        predictions.true, predictions.predicted, labels=range(len(predictions.class_names)), zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "F1": f1, "images": support},
        index=pd.Index(predictions.class_names, name="breed"),
    ).round(3)


def cross_entropy(true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Cross-entropy of each row of ``scores`` (shape (n, classes)) against its label in
    ``true``, computed as Keras' ``sparse_categorical_crossentropy`` does on a non-logit
    output: scores are divided by their sum and clipped to [1e-7, 1 - 1e-7]. A row of
    all-zero scores (a ReLU head that went dead) counts as uniform. The trial engine's test
    loss is the mean of this."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0, None)
    totals = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1 / scores.shape[1]) if scores.size else scores
    probabilities = np.where(totals > 0, scores / np.where(totals > 0, totals, 1), uniform)
    probabilities = np.clip(probabilities, 1e-7, 1 - 1e-7)
    return -np.log(probabilities[np.arange(len(true)), np.asarray(true)])


def losses(predictions: Predictions) -> np.ndarray:
    """The :func:`cross_entropy` of each image of ``predictions``."""
    return cross_entropy(predictions.true, predictions.scores)


def worst_errors(predictions: Predictions, k: int = 8) -> pd.DataFrame:
    """The ``k`` wrong predictions with the highest loss, worst first, as a DataFrame with
    the file, true breed, predicted breed, the score of each and the loss."""
    import pandas as pd

    loss = losses(predictions)
    wrong = np.flatnonzero(~predictions.correct)
    order = wrong[np.argsort(-loss[wrong], kind="stable")][:k]
    names = predictions.class_names
    return pd.DataFrame(
        {
            "path": [predictions.paths[i] for i in order],
            "true": [names[predictions.true[i]] for i in order],
            "predicted": [names[predictions.predicted[i]] for i in order],
            "score of true": predictions.scores[order, predictions.true[order]].round(3),
            "score of predicted": predictions.scores[order, predictions.predicted[order]].round(3),
            "loss": loss[order].round(3),
        }
    )


def save(predictions: Predictions, path: str | Path) -> Path:
    """Write predictions to a ``.npz`` file (atomically) for :func:`load`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.replacing(path, ".npz") as tmp:
        np.savez(
            tmp,
            paths=np.array(predictions.paths, dtype=str),
            true=predictions.true,
            scores=predictions.scores,
            class_names=np.array(predictions.class_names, dtype=str),
            unreadable_paths=np.array(list(predictions.unreadable), dtype=str),
            unreadable_reasons=np.array(list(predictions.unreadable.values()), dtype=str),
        )
    return path


def load(path: str | Path) -> Predictions:
    """Read predictions written by :func:`save`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; evaluate the model and save its predictions first")
    with np.load(path) as f:
        return Predictions(
            tuple(str(p) for p in f["paths"]),
            f["true"].astype(np.int64),
            f["scores"].astype(np.float32),
            tuple(str(n) for n in f["class_names"]),
            dict(zip((str(p) for p in f["unreadable_paths"]), (str(r) for r in f["unreadable_reasons"]), strict=True)),
        )
