"""The whole loop on real photos: `catdog simulate` sends labelled sample photos and their
feedback to a real `catdog serve`; `catdog monitor report` and `check` read what it logged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.serving.serving_support import SAMPLES, run_server

from catdog.model_store import resolve_model
from catdog.monitoring.baseline_export import export_baseline
from catdog.monitoring.records import utcnow
from catdog.monitoring.store import PredictionStore
from catdog.predictor import OnnxClassifier

TOKEN = "loop-token"
PER_CLASS = 12


def catdog(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catdog.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **env},
        cwd=cwd,
    )


def write_params(path: Path, baseline: Path, **thresholds: float) -> Path:
    lines = ["monitor:", f"  baseline: {baseline}"]
    lines += [f"  {key}: {value}" for key, value in thresholds.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.integration
@pytest.mark.slow
def test_simulate_then_report_and_check(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for folder, label in (("Cat", "cat"), ("Dog", "dog")):
        (photos / label).mkdir(parents=True)
        for src in sorted((SAMPLES / folder).glob("*.jpg"))[:PER_CLASS]:
            shutil.copy(src, photos / label / src.name)
    # The served model (the shipped reference) and its baseline, computed on these photos.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    reference = resolve_model(None)
    for name in (reference.name, reference.with_suffix("").name + ".card.json"):
        shutil.copy(reference.parent / name, model_dir / name)
    model = model_dir / reference.name
    baseline = export_baseline(model, photos)
    classifier = OnnxClassifier(model)
    expected = [
        classifier.classify([path])[0].label == path.parent.name
        for path in sorted(photos.rglob("*.jpg"))
    ]
    env = {"CATDOG_API_TOKEN": TOKEN, "CATDOG_DATA_DIR": str(tmp_path / "data")}
    with run_server(tmp_path, "--model", str(model), env=env) as server:
        simulated = catdog(
            "simulate", "--url", server.url, "--data", str(photos), "--concurrency", "3",
            "--feedback", "--out", str(tmp_path / "sim"), env=env, cwd=tmp_path,
        )  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    sim = json.loads((tmp_path / "sim" / "simulate.json").read_text())
    assert sim["requests"] == sim["answered"] == 2 * PER_CLASS
    assert sim["status_counts"] == {"200": 2 * PER_CLASS}
    assert sim["feedback"]["status_counts"] == {"200": 2 * PER_CLASS}
    scores = sim["classification"]
    assert scores["accuracy"] == pytest.approx(sum(expected) / len(expected))
    assert sum(map(sum, scores["confusion_matrix"])) == 2 * PER_CLASS
    assert sim["latency_ms"]["p95"] >= sim["latency_ms"]["p50"] > 0
    assert sim["images_per_s"] > 0
    for chart in ("confusion.png", "per_class_accuracy.png", "latency.png"):
        assert (tmp_path / "sim" / chart).stat().st_size > 1000

    healthy = write_params(
        tmp_path / "healthy.yaml", baseline, min_accuracy=0.5, min_labelled=10, min_predictions=10
    )
    reported = catdog(
        "monitor", "report", "--params", str(healthy), "--out", str(tmp_path / "mon"),
        env=env, cwd=tmp_path,
    )  # fmt: skip
    assert reported.returncode == 0, reported.stderr
    assert "report.html" in reported.stdout
    report = json.loads((tmp_path / "mon" / "report.json").read_text())
    (version,) = report["versions"].values()
    assert version["labelled"] == version["predictions"] == 2 * PER_CLASS
    assert version["feedback_coverage"] == 1.0
    assert version["metrics"]["accuracy"] == pytest.approx(scores["accuracy"])
    assert version["drifted"] == []  # the very photos of the baseline
    assert "<img" in (tmp_path / "mon" / "report.html").read_text()

    ok = catdog("monitor", "check", "--params", str(healthy), env=env, cwd=tmp_path)
    assert (ok.returncode, ok.stdout.count("\n")) == (0, 1), ok.stdout + ok.stderr
    assert "healthy" in ok.stdout
    starved = write_params(tmp_path / "starved.yaml", baseline, min_labelled=1000)
    little = catdog("monitor", "check", "--params", str(starved), env=env, cwd=tmp_path)
    assert little.returncode == 2
    assert "too little data" in little.stdout

    # Shelter staff now say three answers in four were wrong: the trigger fires (exit 1).
    store = PredictionStore(f"sqlite:///{tmp_path / 'data' / 'predictions.db'}")
    for row in store.predictions()[: 2 * PER_CLASS * 3 // 4]:
        wrong = "dog" if row.label == "cat" else "cat"
        store.record_feedback(row.id, wrong, now=utcnow(), retention_days=30)
    store.close()
    retrain = catdog("monitor", "check", "--params", str(healthy), env=env, cwd=tmp_path)
    assert retrain.returncode == 1, retrain.stdout + retrain.stderr
    assert retrain.stdout.count("\n") == 1 and "live accuracy" in retrain.stdout
