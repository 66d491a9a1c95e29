"""Recipes: every trial as data.

A :class:`Trial` is a small frozen dataclass: everything that made one of the original
exercise's runs what it was, from the image size to the fine-tuning scheme. :data:`TRIALS`
holds trials 1-5 exactly as the original ran them, two documented variants
(``"trial4_honest"``, ``"trial5_honest"``: the same trials with the 500 ImageNet-validation
images held out as their test set), plus ``"corrected"``, the recipe this course recommends;
:data:`LADDER` goes from trial 3 to the corrected recipe one change at a time. The words a
recipe may use (heads, activations, preprocessing, fine-tuning schemes, optimizers) are
defined here; :mod:`woofhelpers.model` builds what they name and
:func:`woofhelpers.trials.run_trial` runs any recipe.

Taught in the trial chapters (*Trial 1* ... *Trial 5*) and *Results* (the ladder).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from woofhelpers import catalog, splits

if TYPE_CHECKING:
    import pandas as pd

    from woofhelpers.profiles import Profile

# The words of a recipe. Heads: "original" is Flatten -> Dense(1000, relu) -> Dense(10),
# "corrected" GlobalAveragePooling -> Dropout -> Dense(10) (see woofhelpers.model).
HEADS = ("original", "corrected")
ACTIVATIONS = ("relu", "softmax")
PREPROCESSING = ("none", "resnet50")
FINE_TUNE_SCHEMES = ("original", "corrected")
OPTIMIZERS = ("adam", "rmsprop")


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

        if self.image_size_px < catalog.MIN_IMAGE_SIZE_PX:
            raise ValueError(
                f"trial {self.name!r}: image_size_px={self.image_size_px} is below ResNet50's minimum;"
                f" use at least {catalog.MIN_IMAGE_SIZE_PX}"
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

    def for_profile(self, profile: Profile) -> Trial:
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
