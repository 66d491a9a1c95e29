"""What the original exercise really did, as data: every epoch line its notebooks printed,
the figures its write-up reported (:data:`REPORTED`) and its relabelling table
(:data:`LABELS`, with the two terriers swapped).

The original notebooks (trials 1-4) were saved with their outputs, so their Keras logs
survive: loss, accuracy, val_loss and val_accuracy of every epoch, on the real Imagewoof v1
with ImageNet weights, plus the "test" evaluation at the end. They are the only real learning
curves the course has. This module carries them as package data
(``woofhelpers/data_files/original_histories.json``, copied unchanged from the course's
reference material), with where they were read (:data:`SOURCE`).

Two things to know when reading them:

- **"validation" was not a fixed set.** The original split Imagewoof's held-out images
  with ``take(n_batches // 5)`` ("test") and ``skip`` (the rest, "validation") of one dataset
  that reshuffled at every pass: the "validation" figures are on the 404 (trials 1-3) or
  2,078 (trial 4) images left after ``take``, a different draw at each evaluation, and they
  overlap the "test" images (:func:`split_sizes`).
- **Fine-tuning ran 11 epochs.** ``fit(initial_epoch=9, epochs=20)`` after 10 head epochs:
  Keras printed "Epoch 10/20" ... "Epoch 20/20". :func:`history` numbers the epochs in the
  order they ran, 1-10 for the head and 11-21 for fine-tuning, as the course's engine numbers
  its own; :func:`epoch_lines` keeps Keras' printed numbers.

Trial 5 published no notebook, only its final figure: asking for its log raises
``ValueError``. The figures the original's *write-up* reported (which differ from these
notebooks' final "test" lines: the notebooks were re-run after it was written) live in
:data:`REPORTED`.

Taught in the trial chapters (``chapters/trial1_relu_output`` to ``chapters/trial5_batch_size``),
section *What the original run really did*; drawn by :func:`woofhelpers.plots.original_curves`.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from importlib import resources

DATA_FILE = "data_files/original_histories.json"

# The relabelling table of the original exercise, exactly as it was written. It
# swaps the two terriers: ImageNet's n02093754 is *Border* terrier and n02096294 is
# *Australian* terrier. Kept so the relabelling chapter can show the difference
# (wh.labels.check_against_imagenet(LABELS)).
LABELS: dict[str, str] = {
    "n02093754": "Australian terrier",
    "n02088364": "Beagle",
    "n02096294": "Border terrier",
    "n02115641": "Dingo",
    "n02089973": "English foxhound",
    "n02099601": "Golden retriever",
    "n02105641": "Old English sheepdog",
    "n02087394": "Rhodesian ridgeback",
    "n02086240": "Shih-Tzu",
    "n02111889": "Samoyed",
}

# What the original exercise's write-up reported for each trial, as (right, images): trials
# 1-3 tested 3 batches of 32 (96 images), trial 4 16 batches of 32 (512), trial 5 51 batches
# of 10 (510), drawn from a pipeline that reshuffled at every pass and overlapped validation.
# 14/96 = 14.58%, 70/96 = 72.92%, 69/96 = 71.88%, 437/512 = 85.35%, 440/510 = 86.27%.
REPORTED = {
    "trial1": (14, 96),
    "trial2": (70, 96),
    "trial3": (69, 96),
    "trial4": (437, 512),
    "trial5": (440, 510),
}

# The metrics of each epoch line, in the order Keras printed them.
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# Every logged trial used batches of 32: its "test" had ``batches * 32`` images.
BATCH_SIZE = 32
# Images the original held out from training, before take/skip divided them: Imagewoof v1's
# val/ folder (trials 1-3), and the 20% of the 12,954 pooled images Keras held out (trial 4).
HELD_OUT_IMAGES = {"trial1": 500, "trial2": 500, "trial3": 500, "trial4": 2_590}


@functools.cache
def _load() -> dict:
    text = resources.files("woofhelpers").joinpath(DATA_FILE).read_text(encoding="utf-8")
    return json.loads(text)


SOURCE: str = _load()["source"]
NOTE: str = _load()["note"]
_SOURCE_PATTERN = re.compile(r"^(?P<repository>[\w.-]+/[\w.-]+) @ (?P<commit>[0-9a-f]{7,40})\b")
REPOSITORY: str = _SOURCE_PATTERN.match(SOURCE)["repository"]
COMMIT: str = _SOURCE_PATTERN.match(SOURCE)["commit"]
# The trials whose notebooks were published with their outputs.
TRIALS: tuple[str, ...] = tuple(name for name, record in _load()["trials"].items() if record.get("epochs"))


def _record(trial_name: str) -> dict:
    records = _load()["trials"]
    if trial_name not in TRIALS:
        if trial_name in records:
            raise ValueError(
                f"there is no log of the original {trial_name!r}: {records[trial_name].get('note', 'no notebook')}."
                f" Logs exist for {TRIALS}; the write-up's figure is in wh.original.REPORTED"
            )
        raise ValueError(f"no original trial {trial_name!r}; the original's logs are of {TRIALS}")
    return records[trial_name]


def has_log(trial_name: str) -> bool:
    """Whether the original's notebook for ``trial_name`` survives with its epoch lines
    (trials 1-4; not trial 5, not the course's own variants)."""
    return trial_name in TRIALS


def citation(trial_name: str) -> str:
    """Where ``trial_name``'s log was read, in one line, e.g.
    ``"GateraGael/Resnet50_TransferLearning_ImageWoof @ 1b4ed52, Trial2_ImageWolfClassifier.ipynb"``."""
    _record(trial_name)
    number = trial_name.removeprefix("trial")
    return f"{REPOSITORY} @ {COMMIT}, Trial{number}_ImageWolfClassifier.ipynb"


def epoch_lines(trial_name: str) -> list[dict]:
    """Every epoch line of ``trial_name``'s notebook, in order, as printed: ``phase``
    (``"head"`` or ``"fine_tune"``), ``epoch`` and ``of`` (Keras' "Epoch 10/20"), ``steps``,
    ``seconds`` and the :data:`METRICS`. A copy: changing it changes nothing here."""
    return copy.deepcopy(_record(trial_name)["epochs"])


def history(trial_name: str) -> dict:
    """The original run of ``trial_name`` in the shape of ``wh.results.TrialResult.history``:
    ``{"head": {"epoch": [...], "loss": [...], "accuracy": [...], "val_loss": [...],
    "val_accuracy": [...]}, "fine_tune": {...}}``, with no ``"fine_tune"`` for a trial
    without fine-tuning (trial 1). Epochs are numbered in the order they ran, continuing
    across the phases (1-10, then 11-21); Keras printed the fine-tuning epochs as 10-20
    (:func:`epoch_lines`). Raises ``ValueError`` for a trial with no log (trial 5)."""
    phases: dict[str, dict[str, list]] = {}
    for number, line in enumerate(_record(trial_name)["epochs"], start=1):
        phase = phases.setdefault(line["phase"], {"epoch": [], **{metric: [] for metric in METRICS}})
        phase["epoch"].append(number)
        for metric in METRICS:
            phase[metric].append(line[metric])
    return phases


def final_test(trial_name: str) -> dict:
    """The notebook's last line: the "test" evaluation after training, as ``{"accuracy",
    "loss", "batches", "images"}`` (``images`` = batches × 32). Its images were the first
    batches of a reshuffling pipeline (:func:`split_sizes`); the write-up's figure is in
    ``wh.original.REPORTED``."""
    test = dict(_record(trial_name)["final_test"])
    return {**test, "images": test["batches"] * BATCH_SIZE}


def split_sizes(trial_name: str) -> dict[str, int]:
    """How the original divided its held-out images for ``trial_name``: ``"held out"``
    (:data:`HELD_OUT_IMAGES`), ``"test"`` (the ``take``: whole batches of 32) and
    ``"validation"`` (the rest, what every epoch's val_loss and val_accuracy are on)."""
    test = final_test(trial_name)["images"]
    held_out = HELD_OUT_IMAGES[trial_name]
    return {"held out": held_out, "test": test, "validation": held_out - test}
