"""Decisions on evidence: the paired test, the promotion rule and the int8 gate, each both ways."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from catdog.metrics import classification_metrics
from catdog.training.evaluate import Evaluation
from catdog.training.export import ExportParams, int8_decision
from catdog.training.paired import PairedComparison, compare, compare_correct
from catdog.training.registry import PromoteParams, decide


def _paired(
    photos: int, candidate_only: int, baseline_only: int, both: int = 0
) -> PairedComparison:
    """`photos` answers: some right only for the candidate, some only for the baseline, `both`
    right for both, the rest wrong for both."""
    candidate = np.zeros(photos, dtype=bool)
    baseline = np.zeros(photos, dtype=bool)
    candidate[:candidate_only] = True
    baseline[candidate_only : candidate_only + baseline_only] = True
    start = candidate_only + baseline_only
    candidate[start : start + both] = baseline[start : start + both] = True
    return compare_correct(candidate, baseline)


def _tail(k: int, n: int) -> float:
    """P(X >= k), X ~ Binomial(n, 1/2), summed by hand: the reference for SciPy's answer."""
    return sum(comb(n, i) for i in range(k, n + 1)) / 2**n


def test_the_exact_mcnemar_p_value_counts_only_disagreements() -> None:
    paired = _paired(300, 20, 5, both=250)
    assert (paired.photos, paired.disagreements) == (300, 25)
    assert paired.accuracy_delta == pytest.approx(15 / 300)
    assert paired.p_better() == pytest.approx(_tail(20, 25))
    assert paired.p_worse() == pytest.approx(_tail(5, 25))
    # Photos both get right (or wrong) change the accuracies, not the test.
    assert _paired(1000, 20, 5, both=900).p_better() == pytest.approx(paired.p_better())


RULE = PromoteParams(min_photos=200, alpha=0.05, min_accuracy_delta=0.01, max_log_loss_delta=0)


@pytest.mark.parametrize(
    ("comparison", "log_loss_delta", "promoted", "decided", "why"),
    [
        (_paired(300, 20, 5, both=250), -0.01, True, True, "ok"),
        # Better by 15 photos, but a worse log loss.
        (_paired(300, 20, 5, both=250), +0.01, False, True, "log loss"),
        # 12 against 8 disagreements: p = 0.25, could be chance.
        (_paired(300, 12, 8, both=250), -0.01, False, True, "McNemar"),
        # Significant (p ~ 1e-5) but 20 photos in 5,000 are only 0.4 points: under the margin.
        (_paired(5000, 30, 10, both=4500), -0.01, False, True, "accuracy Δ"),
        # 100 photos: fewer than min_photos, whatever they show.
        (_paired(100, 40, 0, both=50), -0.5, False, False, "too few photos"),
        # 3 disagreements: even 3-0 gives p = 0.125, so nothing can be decided.
        (_paired(300, 3, 0, both=250), -0.5, False, False, "too few disagreements"),
    ],
)
def test_promotion_needs_significance_margin_and_enough_photos(
    comparison: PairedComparison, log_loss_delta: float, promoted: bool, decided: bool, why: str
) -> None:
    decision = decide(comparison, log_loss_delta, RULE)
    assert (decision.promote, decision.decided) == (promoted, decided)
    text = " ".join(decision.reasons)
    assert why in text
    if decided and not promoted:
        assert any(r.startswith(why) and r.endswith("FAIL") for r in decision.reasons)


def test_the_first_version_needs_no_comparison() -> None:
    decision = decide(None, 0.0, RULE)
    assert decision.promote and decision.decided


def _evaluation(right: np.ndarray, labels: np.ndarray, names: list[str]) -> Evaluation:
    """Answers that are right exactly where `right` says, with confident probabilities."""
    p_dog = np.where(right, labels, 1 - labels).astype(np.float64) * 0.8 + 0.1
    return Evaluation(classification_metrics(labels, p_dog), names, labels, p_dog, [], [])


def _fp32_and_int8(photos: int, fp32_only: int, int8_only: int) -> tuple[Evaluation, Evaluation]:
    labels = np.arange(photos) % 2
    names = [f"photo{i}.jpg" for i in range(photos)]
    fp32 = np.ones(photos, dtype=bool)
    int8 = np.ones(photos, dtype=bool)
    int8[:fp32_only] = False
    fp32[fp32_only : fp32_only + int8_only] = False
    return _evaluation(fp32, labels, names), _evaluation(int8, labels, names)


GATE = ExportParams(min_photos=200, alpha=0.05, max_int8_accuracy_drop=0.5)


@pytest.mark.parametrize(
    ("photos", "fp32_only", "int8_only", "kept", "why"),
    [
        (400, 0, 0, True, "not shown worse"),  # the same answers everywhere
        (400, 2, 1, True, "not shown worse"),  # 0.25 points, p = 0.5: within the margin
        (400, 4, 0, False, "accuracy drop"),  # 1 point: over the margin
        # 0.45 points (within the margin) but 9 to 0 where they disagree: p = 0.002.
        (2000, 9, 0, False, "McNemar"),
        (100, 0, 0, False, "too few photos"),  # identical, but too few photos to say so
    ],
)
def test_int8_is_kept_only_on_evidence_that_it_is_not_worse(
    photos: int, fp32_only: int, int8_only: int, kept: bool, why: str
) -> None:
    fp32, int8 = _fp32_and_int8(photos, fp32_only, int8_only)
    decision = int8_decision(fp32, int8, GATE, calibration_photos=64)
    assert decision.kept is kept
    assert why in decision.reason
    assert decision.reason.startswith("kept" if kept else "discarded")
    assert decision.evaluation_photos == photos
    drop = 100 * (fp32_only - int8_only) / photos
    assert decision.accuracy_drop_points == pytest.approx(drop)


def test_photos_are_paired_by_name_whatever_their_order() -> None:
    fp32, int8 = _fp32_and_int8(10, 2, 1)
    order = np.arange(10)[::-1]
    shuffled = Evaluation(
        int8.metrics,
        [int8.sources[i] for i in order],
        int8.labels[order],
        int8.p_dog[order],
        [],
        [],
    )
    assert compare(shuffled, fp32) == compare(int8, fp32)
    assert (compare(int8, fp32).baseline_only, compare(int8, fp32).candidate_only) == (2, 1)
