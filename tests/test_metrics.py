"""The shared metrics agree with scikit-learn on awkward inputs (ties, extremes, one class)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from catdog.metrics import classification_metrics, roc_curve


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.5, 0.5, 0.9, 1.0, 0.33])),
        min_size=2,
        max_size=40,
    )
)
def test_metrics_match_scikit_learn(pairs: list[tuple[int, float]]) -> None:
    y = np.array([label for label, _ in pairs])
    p = np.array([prob for _, prob in pairs])
    got = classification_metrics(y, p)
    pred = (p >= 0.5).astype(int)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(sk.precision_score(y, pred, zero_division=0))
    assert got["recall"] == pytest.approx(sk.recall_score(y, pred, zero_division=0))
    assert got["f1"] == pytest.approx(sk.f1_score(y, pred, zero_division=0))
    assert got["log_loss"] == pytest.approx(
        sk.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])
    )
    if len(set(y.tolist())) == 2:
        assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, p))
        fpr, tpr = roc_curve(y, p)
        sk_fpr, sk_tpr, _ = sk.roc_curve(y, p, drop_intermediate=False)
        np.testing.assert_allclose(fpr, sk_fpr)
        np.testing.assert_allclose(tpr, sk_tpr)
    else:
        assert got["roc_auc"] is None
    assert got["tp"] + got["fp"] + got["tn"] + got["fn"] == y.size


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        classification_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics([0, 1], [0.1, 1.2])
    with pytest.raises(ValueError, match="2 labels but 1"):
        classification_metrics([0, 1], [0.1])
