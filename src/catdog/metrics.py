"""Binary classification metrics for cat (0) versus dog (1), in NumPy only.

Training, evaluation and monitoring all report these same numbers from this one function, and the
torch-free serving install can import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np

# Probabilities are clipped this far from 0 and 1 so one confident mistake costs a finite loss.
LOG_LOSS_EPS = 1e-7


class ClassificationMetrics(TypedDict):
    """The scores of one set of predictions; the confusion counts let a reader re-derive them."""

    n: int
    accuracy: float
    precision: float
    recall: float
    f1: float
    roc_auc: float | None
    log_loss: float
    tp: int
    fp: int
    tn: int
    fn: int


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    p_dog: Sequence[float] | np.ndarray,
    *,
    threshold: float = 0.5,
) -> ClassificationMetrics:
    """Accuracy, precision, recall, F1 (dog is the positive class), ROC AUC and log loss.

    A photo is called a dog when p_dog >= threshold. ROC AUC is None when only one class is
    present (it is undefined, not 0.5); precision and recall are 0.0 when undefined.
    """
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(p_dog, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} labels but {p.size} probabilities")
    if y.size == 0:
        raise ValueError("no examples to score")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (cat) or 1 (dog)")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    log_loss = float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    return {
        "n": int(y.size),
        "accuracy": (tp + tn) / y.size,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y, p),
        "log_loss": log_loss,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve via the rank-sum (Mann-Whitney U) identity, ties averaged."""
    y = np.asarray(y_true).ravel()
    positives = int(np.sum(y == 1))
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64).ravel())
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="mergesort")
    y_sorted, s_sorted = y[order], s[order]
    # Keep the last index of each run of equal scores: one point per threshold.
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], y.size - 1]
    tps = np.cumsum(y_sorted == 1)[last]
    fps = np.cumsum(y_sorted == 0)[last]
    positives, negatives = max(int(tps[-1]), 1), max(int(fps[-1]), 1)
    return np.r_[0.0, fps / negatives], np.r_[0.0, tps / positives]


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with tied values sharing their mean rank (as scipy.stats.rankdata)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_values))[0] + 1]
    ends = np.r_[starts[1:], values.size]
    mean_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks
