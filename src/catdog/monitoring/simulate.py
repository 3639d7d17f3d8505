"""`catdog simulate`: real labelled photos to a running service, optionally their true labels as
feedback, and a report of what the service got right and how fast.

Photos come from class folders (cat/, dog/, as the data stage reads them). Traffic goes through
catdog.monitoring.traffic (closed loop, bounded, 127.0.0.1 only).
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from catdog.data.sources import list_files
from catdog.errors import DataError, MonitorError
from catdog.monitoring import traffic
from catdog.monitoring.http1 import build_json_post, build_upload
from catdog.monitoring.traffic import Outcome, latency_summary

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass(frozen=True)
class LabelledPhoto:
    """A photo to send and the label its folder names."""

    name: str
    label: str
    data: bytes


@dataclass(frozen=True)
class Target:
    """Where to send: the service's host, port and path prefix."""

    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise MonitorError(f"--url must be http://127.0.0.1:PORT, not {url!r}")
        try:
            traffic.check_loopback(parts.hostname)
        except ValueError as exc:
            raise MonitorError(str(exc)) from exc
        return cls(parts.hostname, parts.port or 80, parts.path.rstrip("/"))


def held_back(manifest: Path, split: str) -> set[str]:
    """The source paths a catdog manifest put in `split` (e.g. the test photos the model never
    trained on), relative to the raw folder the data stage read."""
    try:
        with manifest.open(encoding="utf-8", newline="") as f:
            return {
                row["source_path"]
                for row in csv.DictReader(f)
                if row.get("split") == split and row.get("status") == "kept"
            }
    except (OSError, KeyError) as exc:
        raise MonitorError(f"cannot read the manifest {manifest}: {exc}") from exc


def load_labelled(
    root: Path, limit: int | None = None, only: set[str] | None = None
) -> list[LabelledPhoto]:
    """The photos of a class-folder tree (those in `only`, if given), classes interleaved, in a
    fixed order."""
    try:
        files = [
            f
            for f in list_files(root)
            if f.label and Path(f.source).suffix.lower() in PHOTO_SUFFIXES
        ]
    except DataError as exc:
        raise MonitorError(exc.detail) from exc
    if only is not None:
        files = [f for f in files if f.source in only]
    by_label: dict[str, list[str]] = {}
    for f in files:
        assert f.label is not None
        by_label.setdefault(f.label, []).append(f.source)
    if not by_label:
        raise MonitorError(f"no photos in class folders (cat/, dog/) under {root}")
    order = _interleave(list(by_label.items()))
    return [
        LabelledPhoto(Path(source).name, label, (root / source).read_bytes())
        for label, source in order[: limit or len(order)]
    ]


def _interleave(groups: list[tuple[str, list[str]]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    longest = max(len(sources) for _, sources in groups)
    for i in range(longest):
        out.extend((label, sources[i]) for label, sources in groups if i < len(sources))
    return out


def classification_report(
    truth: Sequence[str], predicted: Sequence[str], classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, the confusion matrix and per-class figures."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t], index[p]] += 1
    total = int(matrix.sum())
    per_class: dict[str, dict[str, float | int]] = {}
    for c, i in index.items():
        tp = int(matrix[i, i])
        actual, called = int(matrix[i].sum()), int(matrix[:, i].sum())
        precision = tp / called if called else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[c] = {
            "support": actual,
            "accuracy": recall,  # of the photos of this class, the share called right
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    return {
        "n": total,
        "accuracy": float(np.trace(matrix) / total) if total else float("nan"),
        "precision": float(np.mean([m["precision"] for m in per_class.values()])),
        "recall": float(np.mean([m["recall"] for m in per_class.values()])),
        "f1": float(np.mean([m["f1"] for m in per_class.values()])),
        "classes": list(classes),
        "confusion_matrix": matrix.tolist(),  # rows: true class, columns: predicted
        "per_class": per_class,
    }


def _answer(outcome: Outcome) -> dict[str, Any] | None:
    if outcome.status != 200:
        return None
    try:
        answer: dict[str, Any] = json.loads(outcome.body)
    except ValueError:
        return None
    return answer if "label" in answer and "prediction_id" in answer else None


def _status_counts(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Answers by HTTP status; requests with no answer as "0 <error>"."""
    return dict(
        sorted(Counter(str(o.status) if o.status else f"0 {o.error}" for o in outcomes).items())
    )


async def run_simulation(
    target: Target,
    photos: Sequence[LabelledPhoto],
    *,
    n: int,
    concurrency: int,
    max_seconds: float,
    feedback_token: str | None,
    timeout_s: float = 30.0,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Any]:
    """Send `n` photos (cycling), then, with a token, the true label of every answered one."""
    host, port = target.host, target.port
    uploads = [
        build_upload(
            host, port, f"{target.prefix}/predict", field="file", filename=p.name, data=p.data
        )
        for p in photos
    ]
    run = await traffic.closed_loop(
        host,
        port,
        uploads,
        concurrency=concurrency,
        max_requests=n,
        max_seconds=max_seconds,
        timeout_s=timeout_s,
        on_outcome=on_outcome,
    )
    truth: list[str] = []
    predicted: list[str] = []
    answered: list[tuple[str, str]] = []  # (prediction id, true label)
    versions: Counter[str] = Counter()
    for outcome in run.outcomes:
        answer = _answer(outcome)
        if answer is None:
            continue
        label = photos[outcome.index % len(photos)].label
        truth.append(label)
        predicted.append(str(answer["label"]))
        versions[str(answer.get("model_version"))] += 1
        answered.append((str(answer["prediction_id"]), label))
    classes = sorted({*truth, *predicted, *(p.label for p in photos)})
    ok_latencies = [o.latency_s for o in run.outcomes if o.status == 200]
    report: dict[str, Any] = {
        "url": f"http://{host}:{port}{target.prefix}",
        "requests": len(run.outcomes),
        "answered": len(truth),
        "concurrency": concurrency,
        "elapsed_s": run.elapsed_s,
        "images_per_s": len(ok_latencies) / run.elapsed_s if run.elapsed_s > 0 else 0.0,
        "latency_ms": latency_summary(ok_latencies),
        "status_counts": _status_counts(run.outcomes),
        "errors": dict(Counter(o.error for o in run.outcomes if o.error)),
        "model_versions": dict(versions),
        "classification": classification_report(truth, predicted, classes) if truth else None,
        "feedback": None,
        "_latencies_ms": [x * 1000 for x in ok_latencies],
    }
    if feedback_token is not None and answered:
        bodies = [
            build_json_post(
                host,
                port,
                f"{target.prefix}/feedback",
                {"prediction_id": pid, "label": label},
                token=feedback_token,
            )
            for pid, label in answered
        ]
        sent = await traffic.closed_loop(
            host,
            port,
            bodies,
            concurrency=concurrency,
            max_requests=len(bodies),
            max_seconds=max_seconds,
            timeout_s=timeout_s,
        )
        report["feedback"] = {
            "sent": len(sent.outcomes),
            "status_counts": _status_counts(sent.outcomes),
            "elapsed_s": sent.elapsed_s,
        }
    return report


def simulate(
    url: str,
    photos: Sequence[LabelledPhoto],
    *,
    n: int | None,
    concurrency: int,
    max_seconds: float,
    feedback_token: str | None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Any]:
    """Run the simulation (blocking): `n` requests cycling through `photos` (default: each once)."""
    target = Target.parse(url)
    return asyncio.run(
        run_simulation(
            target,
            photos,
            n=n or len(photos),
            concurrency=concurrency,
            max_seconds=max_seconds,
            feedback_token=feedback_token,
            on_outcome=on_outcome,
        )
    )


def write_report(report: dict[str, Any], out: Path) -> Path:
    """report.json and the charts (confusion matrix, per-class accuracy, latency) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    latencies = report.pop("_latencies_ms", [])
    path = out / "simulate.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    from catdog.monitoring.charts import simulation_charts  # noqa: PLC0415

    simulation_charts(report, latencies, out)
    return path
