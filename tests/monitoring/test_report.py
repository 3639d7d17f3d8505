"""What `catdog monitor` computes: classification figures, drift against a baseline computed on
real photos, and the check's verdicts (0 healthy, 1 retrain, 2 too little data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from tests.serving.serving_support import SAMPLES

from catdog.model_store import resolve_model
from catdog.monitoring.baseline import Baseline, baseline_path, load_baseline
from catdog.monitoring.baseline_export import export_baseline
from catdog.monitoring.params import MonitorParams
from catdog.monitoring.records import new_prediction_id, utcnow
from catdog.monitoring.report import (
    HEALTHY,
    TOO_LITTLE_DATA,
    UNHEALTHY,
    build_report,
    judge,
    write_report,
)
from catdog.monitoring.simulate import classification_report
from catdog.monitoring.stats import STATISTICS
from catdog.monitoring.store import PredictionStore

PARAMS = MonitorParams(min_labelled=20, min_predictions=40, min_accuracy=0.8)


def test_classification_report_agrees_with_scikit_learn() -> None:
    rng = np.random.default_rng(7)
    truth = rng.choice(["cat", "dog"], 300).tolist()
    predicted = [t if rng.random() < 0.8 else ("dog" if t == "cat" else "cat") for t in truth]
    ours = classification_report(truth, predicted, ["cat", "dog"])
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=["cat", "dog"]
    )
    assert ours["confusion_matrix"] == confusion_matrix(truth, predicted).tolist()
    assert ours["precision"] == pytest.approx(precision.mean())
    assert ours["recall"] == pytest.approx(recall.mean())
    assert ours["f1"] == pytest.approx(f1.mean())
    assert ours["per_class"]["dog"]["support"] == support[1]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """The reference model's baseline on the bundled sample photos."""
    folder = tmp_path_factory.mktemp("model")
    reference = resolve_model(None)
    for name in (reference.name, reference.with_suffix("").name + ".card.json"):
        (folder / name).write_bytes((reference.parent / name).read_bytes())
    path = export_baseline(folder / reference.name, SAMPLES)
    assert path == baseline_path(folder / reference.name)
    return load_baseline(path)


def test_the_baseline_describes_real_photos(baseline: Baseline) -> None:
    assert baseline.photos == 200
    assert set(baseline.statistics) == set(STATISTICS)
    for statistic in ("brightness", "contrast", "colourfulness"):
        summary = baseline.statistics[statistic]
        assert 0 < summary.mean < 1 and summary.stddev > 0
    assert sum(baseline.predicted_ratio.values()) == pytest.approx(1.0)
    assert 0.5 <= baseline.confidence.mean <= 1


def add_rows(
    store: PredictionStore,
    baseline: Baseline,
    n: int,
    *,
    shift: float = 0.0,
    right: float = 0.9,
    only: str | None = None,
    confidence: float | None = None,
) -> None:
    """n predictions whose statistics are drawn from the baseline's (shifted), all labelled,
    the share `right` of them correctly; `only` one class answered, at `confidence`."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        stats = {s: float(rng.choice(baseline.statistics[s].values)) for s in STATISTICS}
        stats["brightness"] = min(1.0, stats["brightness"] + shift)
        label = only or ("cat", "dog")[i % 2]
        truth = label if i < right * n else ("dog" if label == "cat" else "cat")
        rows.append(
            {
                "id": new_prediction_id(),
                "created_at": utcnow(),
                "model_version": "v1",
                "label": label,
                "confidence": confidence or float(rng.choice(baseline.confidence.values)),
                "probabilities": {"cat": 0.5, "dog": 0.5},
                "feedback_label": truth,
                "feedback_at": utcnow(),
                **stats,
            }
        )
    store.add(rows)


def report_of(store: PredictionStore, baseline: Baseline | None) -> dict:  # type: ignore[type-arg]
    now = utcnow()
    return build_report(
        store.predictions(), baseline, PARAMS, since=now.replace(year=2000), until=now, store="t"
    )


def test_healthy_traffic_passes(store: PredictionStore, baseline: Baseline) -> None:
    add_rows(store, baseline, 200)
    report = report_of(store, baseline)
    assert report["versions"]["v1"]["drifted"] == []
    assert report["versions"]["v1"]["metrics"]["accuracy"] == pytest.approx(0.9)
    assert judge(report, PARAMS).code == HEALTHY


def test_brighter_photos_are_drift(store: PredictionStore, baseline: Baseline) -> None:
    add_rows(store, baseline, 200, shift=0.3)
    report = report_of(store, baseline)
    drift = report["versions"]["v1"]["drift"]["brightness"]
    assert drift["drifted"] and drift["p_value"] < 0.01 and drift["psi"] > 0.25
    assert report["versions"]["v1"]["drifted"] == ["brightness"]
    verdict = judge(report, PARAMS)
    assert verdict.code == UNHEALTHY and "brightness" in verdict.reason


def test_a_model_answering_one_class_less_surely_is_drift(
    store: PredictionStore, baseline: Baseline
) -> None:
    """The photos look as in training, but the answers do not: every one `cat`, less sure."""
    add_rows(store, baseline, 200, only="cat", confidence=0.6)
    report = report_of(store, baseline)
    figures = report["versions"]["v1"]
    assert figures["drifted"] == ["confidence", "predicted_ratio"]
    assert figures["drift"]["predicted_ratio"]["p_value"] < 0.01
    assert figures["drift"]["confidence"]["psi"] > 0.25
    verdict = judge(report, PARAMS)
    assert verdict.code == UNHEALTHY and "confidence, predicted_ratio" in verdict.reason


def test_low_live_accuracy_fails(store: PredictionStore, baseline: Baseline) -> None:
    add_rows(store, baseline, 100, right=0.6)
    verdict = judge(report_of(store, baseline), PARAMS)
    assert verdict.code == UNHEALTHY and "accuracy 0.600" in verdict.reason


def test_too_little_data(store: PredictionStore, baseline: Baseline) -> None:
    assert judge(report_of(store, baseline), PARAMS).code == TOO_LITTLE_DATA
    add_rows(store, baseline, 10)
    verdict = judge(report_of(store, baseline), PARAMS)
    assert verdict.code == TOO_LITTLE_DATA and "need 20" in verdict.reason


def test_the_html_page_and_plots(
    tmp_path: Path, store: PredictionStore, baseline: Baseline
) -> None:
    add_rows(store, baseline, 60)
    report = report_of(store, baseline)
    page = write_report(report, store.predictions(), baseline, tmp_path)
    html = page.read_text()
    assert "model v1" in html and "check: exit 0" in html
    for image in ("v0-confusion.png", "v0-brightness.png", "v0-confidence.png"):
        assert f'src="{image}"' in html
        assert (tmp_path / image).stat().st_size > 1000
    assert (tmp_path / "report.json").exists()


def test_drift_is_judged_on_distinct_photos(store: PredictionStore, baseline: Baseline) -> None:
    """One photo sent 200 times is one observation: no drift verdict from it."""
    now = utcnow()
    photo = {s: baseline.statistics[s].mean + 0.3 for s in STATISTICS}
    store.add(
        [
            {
                "id": new_prediction_id(),
                "created_at": now,
                "model_version": "v1",
                "label": "cat",
                "confidence": 0.9,
                "probabilities": {"cat": 0.9, "dog": 0.1},
                "sha256": "ab" * 32,
                **photo,
            }
            for _ in range(200)
        ]
    )
    report = report_of(store, baseline)
    figures = report["versions"]["v1"]
    assert (figures["predictions"], figures["distinct_photos"]) == (200, 1)
    verdict = judge(report, PARAMS)
    assert verdict.code == TOO_LITTLE_DATA and "1 distinct photos" in verdict.reason
