"""Drift of live traffic against the training baseline, with scipy's tests.

A continuous quantity (an input statistic, the confidence) is compared with scipy's two-sample
Kolmogorov-Smirnov test and a population stability index over the baseline's quantile bins (PSI
is the symmetric KL divergence, `scipy.stats.entropy` both ways). The predicted-class ratio is
compared with a chi-square goodness-of-fit test and the same PSI over the classes. A quantity
drifted when the test's p-value is below `drift_p_value` AND the PSI is above `drift_psi`: with
thousands of predictions a KS test flags differences too small to matter, the PSI says how big.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from catdog.monitoring.params import MonitorParams

# Empty bins would make the PSI infinite: every bin keeps at least this share.
PSI_FLOOR = 1e-4


def psi(expected_shares: np.ndarray, actual_shares: np.ndarray) -> float:
    """Population stability index of two distributions over the same bins."""
    e = np.clip(np.asarray(expected_shares, dtype=np.float64), PSI_FLOOR, None)
    a = np.clip(np.asarray(actual_shares, dtype=np.float64), PSI_FLOOR, None)
    e, a = e / e.sum(), a / a.sum()
    return float(stats.entropy(a, e) + stats.entropy(e, a))


def continuous_drift(
    baseline: Sequence[float], live: Sequence[float], params: MonitorParams
) -> dict[str, Any]:
    """KS test and PSI (quantile bins of the baseline) of one quantity."""
    base = np.asarray(baseline, dtype=np.float64)
    now = np.asarray(live, dtype=np.float64)
    now = now[np.isfinite(now)]
    if now.size == 0 or base.size == 0:
        return {"n": int(now.size), "judged": False}
    test = stats.ks_2samp(base, now)
    edges = np.unique(np.quantile(base, np.linspace(0, 1, params.psi_bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    expected = np.histogram(base, bins=edges)[0] / base.size
    actual = np.histogram(now, bins=edges)[0] / now.size
    index = psi(expected, actual)
    p_value = float(test.pvalue)
    return {
        "n": int(now.size),
        "judged": True,
        "baseline_mean": float(base.mean()),
        "live_mean": float(now.mean()),
        "ks_statistic": float(test.statistic),
        "p_value": p_value,
        "psi": index,
        "drifted": p_value < params.drift_p_value and index > params.drift_psi,
    }


def ratio_drift(
    baseline: Mapping[str, float], counts: Mapping[str, int], params: MonitorParams
) -> dict[str, Any]:
    """Chi-square test and PSI of the predicted-class shares."""
    classes = sorted(set(baseline) | set(counts))
    observed = np.array([counts.get(c, 0) for c in classes], dtype=np.float64)
    total = observed.sum()
    if total == 0:
        return {"n": 0, "judged": False}
    expected_shares = np.clip([baseline.get(c, 0.0) for c in classes], PSI_FLOOR, None)
    expected_shares = expected_shares / expected_shares.sum()
    test = stats.chisquare(observed, expected_shares * total)
    index = psi(expected_shares, observed / total)
    p_value = float(test.pvalue)
    return {
        "n": int(total),
        "judged": True,
        "baseline": {c: float(s) for c, s in zip(classes, expected_shares, strict=True)},
        "live": {c: float(o / total) for c, o in zip(classes, observed, strict=True)},
        "chi2_statistic": float(test.statistic),
        "p_value": p_value,
        "psi": index,
        "drifted": p_value < params.drift_p_value and index > params.drift_psi,
    }
