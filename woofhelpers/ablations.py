"""Ablations that measure the original exercise's pitfalls instead of asserting them.

:func:`take_skip_overlap` rebuilds the original's "test" split: one dataset that
reshuffles every time it is read, its first ``n_batches // 5`` batches taken as
"test" and the rest skipped to as "validation". It carries file paths through the
pipeline instead of pixels, so it costs nothing to run and counts exactly which
"test" images the validation pass also saw.

Taught in the chapter *Results* (``chapters/results``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TakeSkipReport:
    """What two passes over a reshuffling take/skip split saw."""

    images: int
    batch_size: int
    test_batches: int
    test_size: int  # images in one pass over "test"
    validation_size: int  # images in one pass over "validation"
    test_in_validation: int  # images of the first "test" pass seen again by a "validation" pass
    test_changed: int  # images of the first "test" pass missing from the second "test" pass
    test_seen_across_passes: int  # distinct images "test" showed across both passes

    def rows(self) -> dict[str, int]:
        """The report as ``{description: count}``, for a table."""
        return {
            "images in the pool": self.images,
            "batch size": self.batch_size,
            "'test' batches (n_batches // 5)": self.test_batches,
            "'test' images per pass": self.test_size,
            "'validation' images per pass": self.validation_size,
            "'test' images (pass 1) also in 'validation' (pass 2)": self.test_in_validation,
            "'test' images (pass 1) gone from 'test' (pass 2)": self.test_changed,
            "distinct images 'test' showed in 2 passes": self.test_seen_across_passes,
        }


def reshuffling_dataset(paths: list[str] | tuple[str, ...], batch_size: int, seed: int | None = 0):
    """A ``tf.data`` dataset of batches of file paths that reshuffles on every pass,
    as ``keras.utils.image_dataset_from_directory(shuffle=True)`` builds it: the file
    list shuffled once, then a ``shuffle`` with a buffer of ``batch_size * 8`` that
    reshuffles each iteration, then batching."""
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    if not paths:
        raise ValueError("no paths to split")
    order = np.array(paths, dtype=str)
    np.random.default_rng(seed).shuffle(order)
    ds = tf.data.Dataset.from_tensor_slices(order)
    ds = ds.shuffle(buffer_size=batch_size * 8, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def _one_pass(ds) -> list[str]:
    return [p.decode() for batch in ds.as_numpy_iterator() for p in batch]


def take_skip_overlap(paths: list[str] | tuple[str, ...], batch_size: int = 32, seed: int | None = 0) -> TakeSkipReport:
    """Measure the original's test split: ``test = ds.take(n // 5)``, ``validation =
    ds.skip(n // 5)`` of one reshuffling dataset ``ds`` of ``paths``.

    Reads "test" once, "validation" once (as ``fit`` does at the end of an epoch),
    then "test" again (as a second ``evaluate`` would), and counts by file path how
    many first-pass "test" images the validation pass saw and how many the second
    "test" pass no longer holds.
    """
    ds = reshuffling_dataset(paths, batch_size, seed)
    n_batches = int(np.ceil(len(paths) / batch_size))
    test_batches = n_batches // 5
    if test_batches == 0:
        raise ValueError(f"{len(paths)} images in batches of {batch_size} make {n_batches} batches: too few for n // 5")
    test_ds, validation_ds = ds.take(test_batches), ds.skip(test_batches)
    test_first = _one_pass(test_ds)
    validation = _one_pass(validation_ds)
    test_second = _one_pass(test_ds)
    first = set(test_first)
    return TakeSkipReport(
        images=len(paths),
        batch_size=batch_size,
        test_batches=test_batches,
        test_size=len(test_first),
        validation_size=len(validation),
        test_in_validation=len(first & set(validation)),
        test_changed=len(first - set(test_second)),
        test_seen_across_passes=len(first | set(test_second)),
    )
