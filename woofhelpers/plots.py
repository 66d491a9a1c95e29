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
