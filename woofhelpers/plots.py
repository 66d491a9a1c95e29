"""Figures as functions: each returns a matplotlib ``Figure`` and repeats no boilerplate
in the chapters.

Taught in the chapter *The dataset* (``chapters/dataset``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from woofhelpers import io, labels
from woofhelpers.results import CURVES_FILE

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from woofhelpers.resnet import DegradationResult
    from woofhelpers.results import TrialResult


def class_counts(counts: dict[str, dict[str, int]], title: str = "Images per breed") -> Figure:
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
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def size_distribution(sizes: np.ndarray, title: str = "Image sizes") -> Figure:
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


def image_grid(paths: list[Path], titles: list[str], columns: int = 5, size_in: float = 2.0) -> Figure:
    """Show images from files in a grid, each with its title."""
    from PIL import Image

    rows = max(1, int(np.ceil(len(paths) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * size_in, rows * size_in * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, title in zip(axes.flat, paths, titles, strict=False):  # spare axes stay blank
        with Image.open(path) as image:
            ax.imshow(image.convert("RGB"))
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def gradcam_grid(
    images: list, heatmaps: list, titles: list[str], columns: int = 5, alpha: float = 0.4, size_in: float = 2.2
) -> Figure:
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
    table: pd.DataFrame,
    value: str = "accuracy %",
    low: str = "95% CI low",
    high: str = "95% CI high",
    group: str = "test set",
    count: str = "images",
    title: str = "Test accuracy with 95% bootstrap intervals",
) -> Figure:
    """Bars with error bars from a long table (pandas) with one row per (trial, test set),
    such as :func:`woofhelpers.results.trial_table`: columns ``trial``, ``group``,
    ``value``, ``low``, ``high`` and ``count``. Each trial's bars stand side by side, one
    colour per test set; the error bar is the interval and ``n=`` under each bar is the
    number of images behind it. Rows with no value are left out. Taught in *Results*
    (``chapters/results``)."""
    missing = [c for c in ("trial", group, value, low, high, count) if c not in table]
    if missing:
        raise ValueError(f"the table has no column {missing}; make it with wh.results.trial_table")
    table = table.dropna(subset=[value])
    trials = list(dict.fromkeys(table["trial"]))
    groups = list(dict.fromkeys(table[group]))
    colours = {name: f"C{i}" for i, name in enumerate(groups)}
    width = 0.8 / max([1, *table.groupby("trial", sort=False).size()])
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(trials) + 2), 4.5))
    labelled = set()
    for position, trial in enumerate(trials):
        rows = table[table["trial"] == trial]
        for i, (_, row) in enumerate(rows.iterrows()):
            x = position + (i - (len(rows) - 1) / 2) * width
            height = float(row[value])
            errors = [[height - float(row[low])], [float(row[high]) - height]]
            name = row[group]
            ax.bar(
                x,
                height,
                width,
                yerr=np.nan_to_num(errors, nan=0.0),
                capsize=3,
                color=colours[name],
                label=None if name in labelled else name,
            )
            labelled.add(name)
            ax.text(
                x,
                1,
                f"n={int(row[count])}",
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
            )
    ax.set_xticks(np.arange(len(trials)), trials, rotation=20, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    # Below the axes, where it hides no bar.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(4, max(1, len(groups))))
    fig.tight_layout()
    return fig


def confusion_matrix(frame: pd.DataFrame, title: str = "Confusion matrix") -> Figure:
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


# --- residual learning (chapter: Background: residual networks, ``chapters/resnet_background``) ---


def _draw_block(ax, layers: list[str], title: str, output_label: str, shortcut_label: str | None):
    """Draw one block top to bottom: input, weight layers with ReLUs between, an optional
    identity shortcut around them into a "+", the output."""
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    step = 7.0 / (len(layers) + 1)
    ys = [8.6 - step * (i + 1) for i in range(len(layers))]

    def arrow(y0, y1, x=4.0):
        ax.add_patch(FancyArrowPatch((x, y0), (x, y1), arrowstyle="-|>", mutation_scale=12, lw=1.3))

    ax.text(4.0, 9.4, "x", ha="center", va="center", fontsize=12, style="italic")
    arrow(9.1, ys[0] + 0.45)
    for i, (y, text) in enumerate(zip(ys, layers, strict=True)):
        ax.add_patch(
            FancyBboxPatch(
                (1.9, y - 0.4), 4.2, 0.8, boxstyle="round,pad=0.05", facecolor="#dbe9f6", edgecolor="#2b5d8a", lw=1.2
            )
        )
        ax.text(4.0, y, text, ha="center", va="center", fontsize=9)
        if i < len(layers) - 1:
            ax.text(4.25, (y + ys[i + 1]) / 2, "ReLU", ha="left", va="center", fontsize=8, color="#555")
            arrow(y - 0.45, ys[i + 1] + 0.45)
    join = ys[-1] - 1.3
    if shortcut_label:
        arrow(ys[-1] - 0.45, join + 0.35)
        ax.add_patch(Circle((4.0, join), 0.33, facecolor="white", edgecolor="black", lw=1.2))
        ax.text(4.0, join, "+", ha="center", va="center", fontsize=13)
        ax.add_patch(
            FancyArrowPatch(
                (4.3, 9.2),
                (4.35, join + 0.05),
                connectionstyle="arc3,rad=-0.55",
                arrowstyle="-|>",
                mutation_scale=12,
                lw=1.3,
                color="#c0392b",
            )
        )
        ax.text(8.9, (9.2 + join) / 2, shortcut_label, ha="center", va="center", fontsize=9, color="#c0392b")
        ax.text(1.5, (ys[0] + ys[-1]) / 2, "F(x)", ha="right", va="center", fontsize=10, style="italic")
        bottom = join - 0.35
    else:
        bottom = ys[-1] - 0.45
        ax.text(1.5, (ys[0] + ys[-1]) / 2, "H(x)", ha="right", va="center", fontsize=10, style="italic")
    ax.text(4.25, bottom - 0.45, "ReLU", ha="left", va="center", fontsize=8, color="#555")
    arrow(bottom, bottom - 0.9)
    ax.text(4.0, bottom - 1.25, output_label, ha="center", va="center", fontsize=11, style="italic")


def residual_block() -> Figure:
    """Three blocks side by side: a plain pair of layers, the residual block of He et al.
    (2015, their Fig. 2), and the bottleneck block ResNet50 is built from."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.6))
    _draw_block(axes[0], ["weight layer", "weight layer"], "plain: learn H(x)", "H(x)", None)
    _draw_block(axes[1], ["weight layer", "weight layer"], "residual: learn F(x) = H(x) − x", "F(x) + x", "identity x")
    _draw_block(
        axes[2],
        ["1×1 conv, 64", "3×3 conv, 64", "1×1 conv, 256"],
        "ResNet50 bottleneck (conv2)",
        "F(x) + x",
        "identity x\n(1×1 conv in a\nstage's first block)",
    )
    fig.tight_layout()
    return fig


def degradation(result: DegradationResult, title: str = "Training error against depth") -> Figure:
    """Left: final training error against depth, plain and residual. Right: training error
    per epoch of the deepest plain and residual networks. ``result`` is what
    ``wh.resnet.degradation_experiment`` returns."""
    table = result.table
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    styles = {"plain": dict(color="#7f7f7f", marker="o"), "residual": dict(color="#c0392b", marker="s")}
    for network, rows in table.groupby("network"):
        left.plot(rows["depth"], 100 * rows["train_error"], label=network, **styles[network])
    left.set_xlabel("depth (weight layers)")
    left.set_ylabel("training error (%)")
    left.set_xticks(sorted(table["depth"].unique()))
    left.set_title(title)
    left.legend()
    deepest = int(table["depth"].max())
    shallowest = int(table["depth"].min())
    epochs = range(1, result.epochs + 1)
    for (network, depth), curve in sorted(result.curves.items()):
        if depth in (deepest, shallowest):
            right.plot(
                epochs,
                [100 * e for e in curve],
                label=f"{network}, {depth} layers",
                color=styles[network]["color"],
                linestyle="-" if depth == deepest else ":",
            )
    right.set_xlabel("epoch")
    right.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    right.set_ylabel("training error (%)")
    right.set_title("During training")
    right.legend()
    fig.tight_layout()
    return fig


def _series(history: dict, key: str) -> tuple[list[int], list[float]]:
    """Epochs and values of ``key`` over both phases of a history (``TrialResult.history``'s
    shape), the head's first."""
    phases = [p for p in ("head", "fine_tune") if history.get(p, {}).get("epoch")]
    epochs = [e for p in phases for e in history[p]["epoch"]]
    values = [v for p in phases for v in history[p].get(key, [])]
    return epochs, values


def _draw_history(axes, history: dict, metrics: tuple[str, str], labels: tuple[str, str]) -> None:
    """On each of ``axes``, one of ``metrics`` over both phases: training (solid) and
    validation (dashed), labelled ``labels``, with the first fine-tuning epoch marked."""
    fine_tune = history.get("fine_tune", {}).get("epoch", [])
    for ax, metric in zip(axes, metrics, strict=True):
        for prefix, style, label in (("", "-", labels[0]), ("val_", "--", labels[1])):
            ax.plot(*_series(history, prefix + metric), style, marker="o", markersize=3, label=label)
        if fine_tune:
            ax.axvline(fine_tune[0] - 0.5, color="grey", linestyle=":")
            ax.annotate(
                "fine-tuning starts",
                (fine_tune[0] - 0.5, 0.97),
                xycoords=("data", "axes fraction"),
                ha="left",
                va="top",
                fontsize=8,
                color="grey",
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)


def history_curves(history: dict, title: str) -> Figure:
    """Learning curves of a training history in one figure (accuracy and loss, training
    and validation), with the start of fine-tuning marked. ``history`` has the shape of
    ``wh.results.TrialResult.history`` (``{"head": {...}, "fine_tune": {...}}``): a saved
    result's, or a published bundle's (``wh.published.Bundle.curves``)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    _draw_history(axes, history, ("accuracy", "loss"), ("training", "validation"))
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def trial_curves(result: TrialResult, title: str | None = None) -> Figure:
    """:func:`history_curves` of a trial's result (a ``wh.results.TrialResult``), titled
    with its name and profile. Taught in the trial chapters."""
    profile = result.profile.get("name", "?")
    return history_curves(result.history, title or f"{result.name}: learning curves ({profile} profile)")


def save_trial_curves(result: TrialResult) -> Path:
    """Draw :func:`trial_curves` into ``learning_curves.png`` beside the result's
    ``result.json`` (written whole or not at all); return its path. The command line's
    ``run-trial`` does this, for a headless run that has no notebook to show them."""
    path = Path(result.path) / CURVES_FILE
    figure = trial_curves(result)
    try:
        with io.replacing(path, ".png") as tmp:
            figure.savefig(tmp, dpi=100)
    finally:
        plt.close(figure)
    return path


def _profile_label(result: TrialResult) -> str:
    """What a saved result's numbers are, from the profile it records: ``"smoke profile:
    tests the code, not a result"``, or ``"full profile: real data, ImageNet weights"``
    only when the run had both (``real_results``)."""
    name = result.profile.get("name", "?")
    if result.profile.get("real_results", False):
        return f"{name} profile: real data, ImageNet weights"
    return f"{name} profile: tests the code, not a result"


def original_curves(trial_name: str, result: TrialResult | None = None) -> Figure:
    """The original's real learning curves of ``trial_name`` (``"trial1"`` to ``"trial4"``):
    its Colab notebook's Keras log (real Imagewoof v1, ImageNet weights;
    :mod:`woofhelpers.original`). Accuracy (0 to 1) and loss (on a log scale when it spans
    decades), training and "validation" (the images left after the original's ``take``),
    the start of fine-tuning marked, the source under the figure. With ``result`` (a
    ``wh.results.TrialResult``), a second row draws that reproduction the same way, titled
    with its profile: "smoke profile: tests the code, not a result" unless the run had real
    data and ImageNet weights. Raises ``ValueError`` for a trial with no log (trial 5).
    Taught in the trial chapters, section *What the original run really did*."""
    from woofhelpers import original

    rows = [("the original's Colab run: real data, ImageNet weights", original.history(trial_name))]
    sizes = original.split_sizes(trial_name)
    legends = [("training", f'"validation" ({sizes["validation"]:,} images left after take)')]
    if result is not None:
        rows.append((f"{result.name}, {_profile_label(result)}", result.history))
        legends.append(("training", "validation"))
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.4 * len(rows) + 0.4), squeeze=False)
    for row_axes, (label, history), names in zip(axes, rows, legends, strict=True):
        _draw_history(row_axes, history, ("accuracy", "loss"), names)
        accuracy_ax, loss_ax = row_axes
        accuracy_ax.set_ylim(0, 1.12)  # the whole range, with room at the top for the fine-tuning label
        losses = [v for key in ("loss", "val_loss") for v in _series(history, key)[1]]
        if losses and min(losses) > 0 and max(losses) / min(losses) > 20:  # spans decades: a log scale shows them
            loss_ax.set_yscale("log")
            loss_ax.yaxis.set_major_locator(plt.LogLocator(subs=(1.0, 3.0)))
            loss_ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda value, _: f"{value:g}"))
            loss_ax.yaxis.set_minor_formatter(plt.NullFormatter())
            loss_ax.set_ylabel("loss (log scale)")
        loss_ax.margins(y=0.15)
        for ax in row_axes:
            ax.set_title(label, fontsize=9)
        # Below the axes, where it hides no point and no label.
        accuracy_ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.2), ncol=2, frameon=False)
    fig.suptitle(f"{trial_name}: what the original run really did")
    fig.text(0.5, 0.005, f"log: {original.citation(trial_name)}", ha="center", va="bottom", fontsize=7, color="grey")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def compare_trials(results: Iterable[TrialResult], metric: str = "val_accuracy", title: str | None = None) -> Figure:
    """One metric of several trials over epochs (both phases), one line per trial, each
    trial's fine-tuning start marked with a dotted line. Taught in the trial chapters."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for result in results:
        (line,) = ax.plot(*_series(result.history, metric), marker="o", markersize=3, label=result.name)
        if result.fine_tune_start_epoch is not None:
            ax.axvline(result.fine_tune_start_epoch - 0.5, color=line.get_color(), linestyle=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or f"{metric} by epoch")
    fig.tight_layout()
    return fig
