"""Figures as functions: each returns a matplotlib ``Figure`` and repeats no boilerplate
in the chapters.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from woofhelpers import labels


def class_counts(counts: dict[str, dict[str, int]], title: str = "Images per breed"):
    """Grouped horizontal bars: images per breed for each split (``{split: {wnid: n}}``)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    splits = list(counts)
    height = 0.8 / len(splits)
    y = np.arange(len(labels.WNIDS))
    for i, split in enumerate(splits):
        values = [counts[split].get(w, 0) for w in labels.WNIDS]
        ax.barh(y + i * height, values, height=height, label=split)
    ax.set_yticks(y + height * (len(splits) - 1) / 2, labels.CLASS_NAMES)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def size_distribution(sizes: np.ndarray, title: str = "Image sizes"):
    """Scatter of (width, height) in pixels, with the shortest side's histogram beside it.

    ``sizes`` is an integer array of shape (n, 2) holding (width, height).
    """
    sizes = np.asarray(sizes)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.scatter(sizes[:, 0], sizes[:, 1], s=6, alpha=0.4)
    left.set_xlabel("width (px)")
    left.set_ylabel("height (px)")
    left.set_title(title)
    left.set_aspect("equal", adjustable="datalim")
    right.hist(sizes.min(axis=1), bins=20)
    right.set_xlabel("shortest side (px)")
    right.set_ylabel("images")
    right.set_title("Shortest side")
    fig.tight_layout()
    return fig


def image_grid(paths: list[Path], titles: list[str], columns: int = 5, size_in: float = 2.0):
    """Show images from files in a grid, each with its title."""
    from PIL import Image

    rows = max(1, int(np.ceil(len(paths) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size_in, rows * size_in * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, title in zip(axes.flat, paths, titles):
        with Image.open(path) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def gradcam_grid(
    images: list, heatmaps: list, titles: list[str], columns: int = 5, alpha: float = 0.4, size_in: float = 2.2
):
    """Grad-CAM overlays in a grid: each image (values 0-255) with its heatmap blended over
    it (:func:`woofhelpers.gradcam.overlay`) and its title. Taught in *Grad-CAM* (``chapters/gradcam``)."""
    from woofhelpers import gradcam

    if not len(images) == len(heatmaps) == len(titles):
        raise ValueError(
            f"got {len(images)} images, {len(heatmaps)} heatmaps and {len(titles)} titles; need as many of each"
        )
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size_in, rows * size_in * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, heat, title in zip(axes.flat, images, heatmaps, titles, strict=False):
        ax.imshow(gradcam.overlay(image, heat, alpha=alpha))
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_bars(
    table,
    value: str = "accuracy %",
    low: str = "95% CI low",
    high: str = "95% CI high",
    group: str = "test set",
    title: str = "Test accuracy with 95% bootstrap intervals",
):
    """Grouped bars with error bars from a long table (pandas) with one row per (trial, test
    set): columns ``trial``, ``group``, ``value``, ``low``, ``high``. Rows with no value
    are left out. Taught in *Results* (``chapters/results``)."""
    table = table.dropna(subset=[value])
    trials = list(dict.fromkeys(table["trial"]))
    groups = list(dict.fromkeys(table[group]))
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(trials))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(trials) + 2), 4))
    for i, name in enumerate(groups):
        rows = table[table[group] == name]
        positions = np.array([trials.index(t) for t in rows["trial"]])
        values = rows[value].to_numpy(dtype=float)
        errors = np.vstack([values - rows[low].to_numpy(dtype=float), rows[high].to_numpy(dtype=float) - values])
        errors = np.nan_to_num(errors, nan=0.0)
        ax.bar(positions + (i - (len(groups) - 1) / 2) * width, values, width, yerr=errors, capsize=3, label=name)
    ax.set_xticks(x, trials)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def confusion_matrix(frame, title: str = "Confusion matrix"):
    """Draw a confusion matrix (a DataFrame from :func:`woofhelpers.evaluate.confusion`,
    true breeds as rows) with its counts. Taught in *Results* (``chapters/results``)."""
    counts = frame.to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(counts.shape[1]), frame.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(counts.shape[0]), frame.index, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = counts.max() if counts.size else 0
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > top / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig
