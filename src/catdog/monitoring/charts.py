"""PNG charts of a simulation and of a monitoring report (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def confusion_chart(matrix: Sequence[Sequence[int]], classes: Sequence[str], path: Path) -> None:
    """Counts, true class by row and predicted class by column."""
    plt = _pyplot()
    counts = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if value > counts.max() / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour)
    ax.set_title("confusion matrix")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bar_chart(values: dict[str, float], title: str, path: Path, *, ylim: float = 1.0) -> None:
    """One bar per key (per-class accuracy, predicted-class shares)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(list(values), list(values.values()), color="#4477aa")
    ax.set_ylim(0, ylim)
    for i, v in enumerate(values.values()):
        ax.text(i, v, f"{v:.3f}", ha="center", va="bottom")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_chart(latencies_ms: Sequence[float], path: Path) -> None:
    """Histogram of answered requests' latency, with p50/p95/p99 marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3))
    if latencies_ms:
        ax.hist(latencies_ms, bins=40, color="#66aa55")
        for q, style in ((50, "-"), (95, "--"), (99, ":")):
            value = float(np.percentile(latencies_ms, q))
            ax.axvline(value, color="black", linestyle=style, label=f"p{q} {value:.0f} ms")
        ax.legend()
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("requests")
    ax.set_title("latency of answered photos")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def distribution_chart(
    baseline: Sequence[float], live: Sequence[float], title: str, path: Path
) -> None:
    """Baseline against live values of one quantity, as normalised histograms."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    both = np.concatenate([np.asarray(baseline, float), np.asarray(live, float)])
    bins = np.histogram_bin_edges(both, bins=30) if both.size else 10
    ax.hist(baseline, bins=bins, density=True, alpha=0.5, label="training baseline")
    ax.hist(live, bins=bins, density=True, alpha=0.5, label="live")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def simulation_charts(report: dict[str, Any], latencies_ms: Sequence[float], out: Path) -> None:
    """confusion.png, per_class_accuracy.png and latency.png of a simulation."""
    scores = report.get("classification")
    if scores:
        confusion_chart(scores["confusion_matrix"], scores["classes"], out / "confusion.png")
        per_class = {c: float(m["accuracy"]) for c, m in scores["per_class"].items()}
        bar_chart(per_class, "per-class accuracy", out / "per_class_accuracy.png")
    latency_chart(latencies_ms, out / "latency.png")
