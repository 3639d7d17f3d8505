"""The PNG pictures of a training run: curves, confusion matrix, ROC curve, worst mistakes.

Matplotlib's object API (a `Figure` needs no display and no pyplot state), NumPy in, one PNG
out per picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from catdog.metrics import ClassificationMetrics, roc_curve
from catdog.preprocess import CLASSES


def plot_curves(history: Sequence[dict[str, Any]], path: Path) -> Path:
    """Train and val loss (left) and accuracy (right) per epoch."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    for split in ("train", "val"):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], marker="o", label=split)
        acc_ax.plot(epochs, [row[f"{split}_accuracy"] for row in history], marker="o", label=split)
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.set(title="accuracy", xlabel="epoch")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def plot_confusion(metrics: ClassificationMetrics, path: Path, title: str) -> Path:
    """Counts of actual (rows) versus predicted (columns) classes."""
    counts = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    fig = Figure(figsize=(4, 4))
    ax = fig.subplots()
    ax.imshow(counts, cmap="Blues")
    for (row, col), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        ax.text(col, row, str(value), ha="center", va="center", color=colour, fontsize=14)
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=CLASSES,
        yticklabels=CLASSES,
        xlabel="predicted",
        ylabel="actual",
        title=f"{title} (accuracy {metrics['accuracy']:.3f})",
    )
    return _save(fig, path)


def plot_roc(labels: np.ndarray, p_dog: np.ndarray, auc: float | None, path: Path) -> Path:
    """ROC curve of p_dog, dog being the positive class."""
    fpr, tpr = roc_curve(labels, p_dog)
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    ax.plot(fpr, tpr, label=f"AUC {auc:.4f}" if auc is not None else "AUC undefined")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(
        xlabel="false positive rate (cats called dogs)", ylabel="true positive rate", title="ROC"
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_worst_mistakes(
    images: np.ndarray,
    labels: np.ndarray,
    p_dog: np.ndarray,
    sources: Sequence[str],
    path: Path,
    *,
    count: int = 16,
) -> Path:
    """The most confident wrong answers: uint8 CHW photos with truth, p(dog) and file name."""
    confidence_wrong = np.where(labels == 1, 1 - p_dog, p_dog)
    wrong = np.nonzero(confidence_wrong > 0.5)[0]
    worst = wrong[np.argsort(-confidence_wrong[wrong], kind="stable")][:count]
    cols = 4
    rows = max(1, -(-len(worst) // cols))
    fig = Figure(figsize=(cols * 2.6, rows * 2.9))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, index in zip(axes.ravel(), worst, strict=False):
        ax.imshow(images[index].transpose(1, 2, 0))
        name = Path(sources[index]).name
        ax.set_title(
            f"{CLASSES[labels[index]]}, p(dog)={p_dog[index]:.2f}\n{name[:24]}", fontsize=8
        )
    if len(worst) == 0:
        axes[0, 0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle("worst mistakes (truth, predicted p(dog))")
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
