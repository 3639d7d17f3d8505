"""Two models on the same photos: which one is right where they disagree, and is it chance?

Accuracies of two models measured on the same photos are not independent: only the photos where
exactly one of them is right carry information about which is better. McNemar's exact test asks
whether those disagreements split more unevenly than a fair coin would (a binomial test on the
discordant pairs, from SciPy). Promotion and the int8 gate both decide with it, on the selection
split (val/), so that the final test split stays an unbiased estimate of what is served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from catdog.errors import ModelError
from catdog.training.evaluate import Evaluation


class EvidenceParams(BaseModel):
    """How much evidence a decision needs; shared by `promote:` and `export:` in params.yaml."""

    model_config = ConfigDict(extra="forbid")

    # Fewer photos than this and the command refuses to decide (and says so).
    min_photos: int = Field(200, ge=1)
    # Significance level of the one-sided exact McNemar test.
    alpha: float = Field(0.05, gt=0, lt=1)


@dataclass(frozen=True)
class PairedComparison:
    """Candidate against baseline on the same photos."""

    photos: int
    candidate_only: int  # photos only the candidate gets right
    baseline_only: int  # photos only the baseline gets right
    candidate_accuracy: float
    baseline_accuracy: float

    @property
    def disagreements(self) -> int:
        """Photos exactly one of the two models gets right: the only ones that tell them apart."""
        return self.candidate_only + self.baseline_only

    @property
    def accuracy_delta(self) -> float:
        """Candidate accuracy minus the baseline's, as a fraction."""
        return self.candidate_accuracy - self.baseline_accuracy

    def p_better(self) -> float:
        """One-sided exact McNemar p-value for "the candidate is more often right"."""
        return _binomial_tail(self.candidate_only, self.disagreements)

    def p_worse(self) -> float:
        """One-sided exact McNemar p-value for "the candidate is more often wrong"."""
        return _binomial_tail(self.baseline_only, self.disagreements)

    def smallest_p(self) -> float:
        """The best p-value these many disagreements could give: 0.5 ** disagreements."""
        return float(0.5**self.disagreements)

    def summary(self) -> str:
        """One line a person reads: the counts and both accuracies."""
        return (
            f"{self.photos} photos, {self.disagreements} disagreements "
            f"({self.candidate_only} won by the candidate, {self.baseline_only} by the baseline); "
            f"accuracy {self.candidate_accuracy:.4f} vs {self.baseline_accuracy:.4f}"
        )


def _binomial_tail(successes: int, trials: int) -> float:
    """P(X >= successes) for X ~ Binomial(trials, 1/2): McNemar's exact test, one-sided."""
    if trials == 0:
        return 1.0
    from scipy.stats import binomtest  # noqa: PLC0415

    return float(binomtest(successes, trials, 0.5, alternative="greater").pvalue)


def compare_correct(candidate: np.ndarray, baseline: np.ndarray) -> PairedComparison:
    """Compare two boolean arrays of "right on photo i", aligned photo by photo."""
    if candidate.shape != baseline.shape:
        raise ModelError(f"paired comparison of {candidate.shape} and {baseline.shape} answers")
    n = int(candidate.size)
    return PairedComparison(
        photos=n,
        candidate_only=int(np.count_nonzero(candidate & ~baseline)),
        baseline_only=int(np.count_nonzero(~candidate & baseline)),
        candidate_accuracy=float(candidate.mean()) if n else 0.0,
        baseline_accuracy=float(baseline.mean()) if n else 0.0,
    )


def compare(candidate: Evaluation, baseline: Evaluation) -> PairedComparison:
    """Pair two evaluations by photo; only photos both models scored count."""
    base_right = dict(zip(baseline.sources, _correct(baseline), strict=True))
    pairs = [
        (right, base_right[source])
        for source, right in zip(candidate.sources, _correct(candidate), strict=True)
        if source in base_right
    ]
    both = np.asarray(pairs, dtype=bool).reshape(-1, 2)
    return compare_correct(both[:, 0], both[:, 1])


def _correct(evaluation: Evaluation) -> np.ndarray:
    """Right or wrong on each photo, at the threshold the metrics use (p_dog >= 0.5 is dog)."""
    right: np.ndarray = (evaluation.p_dog >= 0.5).astype(int) == evaluation.labels
    return right
