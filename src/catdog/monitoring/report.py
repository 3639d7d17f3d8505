"""`catdog monitor report` and `check`: live accuracy, feedback coverage and drift per model
version over a time window, from the prediction store, against the training baseline."""

from __future__ import annotations

import html
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from catdog.monitoring.baseline import Baseline
from catdog.monitoring.drift import continuous_drift, ratio_drift
from catdog.monitoring.params import MonitorParams
from catdog.monitoring.simulate import classification_report
from catdog.monitoring.stats import STATISTICS
from catdog.monitoring.store import PredictionRow

# `catdog monitor check` exit codes: the retraining trigger of a scheduled job.
HEALTHY, UNHEALTHY, TOO_LITTLE_DATA = 0, 1, 2


def distinct_photos(rows: list[PredictionRow]) -> list[PredictionRow]:
    """One row per photo (by sha256; rows without one count alone): the same photo sent ten
    times is one observation of what users upload, not ten, and would fake significance."""
    seen: dict[str, PredictionRow] = {}
    alone = []
    for row in rows:
        if row.sha256 is None:
            alone.append(row)
        else:
            seen.setdefault(row.sha256, row)
    return [*seen.values(), *alone]


def version_report(
    rows: list[PredictionRow], baseline: Baseline | None, params: MonitorParams
) -> dict[str, Any]:
    """One model version's figures over the window."""
    labelled = [r for r in rows if r.feedback_label is not None]
    classes = sorted({c for r in rows for c in r.probabilities})
    scores = (
        classification_report(
            [str(r.feedback_label) for r in labelled],
            [r.label for r in labelled],
            sorted({*classes, *(str(r.feedback_label) for r in labelled)}),
        )
        if labelled
        else None
    )
    with_pet = [r.pet_score for r in rows if r.pet_score is not None]
    counts = Counter(r.label for r in rows)
    photos = distinct_photos(rows)
    drift: dict[str, Any] = {}
    if baseline is not None:
        for statistic in STATISTICS:
            live = [getattr(r, statistic) for r in photos if getattr(r, statistic) is not None]
            drift[statistic] = continuous_drift(baseline.statistics[statistic].values, live, params)
        drift["confidence"] = continuous_drift(
            baseline.confidence.values, [r.confidence for r in photos], params
        )
        drift["predicted_ratio"] = ratio_drift(
            baseline.predicted_ratio, Counter(r.label for r in photos), params
        )
    return {
        "predictions": len(rows),
        "distinct_photos": len(photos),
        "labelled": len(labelled),
        "feedback_coverage": len(labelled) / len(rows) if rows else 0.0,
        "first": rows[0].created_at.isoformat() if rows else None,
        "last": rows[-1].created_at.isoformat() if rows else None,
        "metrics": scores,
        "predicted_ratio": {c: n / len(rows) for c, n in sorted(counts.items())},
        "mean_confidence": sum(r.confidence for r in rows) / len(rows) if rows else None,
        "pet_scored": len(with_pet),
        "not_a_pet_rate": (sum(s < 0.5 for s in with_pet) / len(with_pet) if with_pet else None),
        "drift": drift,
        "drifted": sorted(k for k, v in drift.items() if v.get("drifted")),
    }


def build_report(
    rows: list[PredictionRow],
    baseline: Baseline | None,
    params: MonitorParams,
    *,
    since: datetime,
    until: datetime,
    store: str,
) -> dict[str, Any]:
    """The whole report: every version seen in the window, newest first, and the verdict."""
    by_version: dict[str, list[PredictionRow]] = {}
    for row in rows:
        by_version.setdefault(row.model_version, []).append(row)
    ordered = sorted(by_version.items(), key=lambda kv: kv[1][-1].created_at, reverse=True)
    versions = {v: version_report(r, baseline, params) for v, r in ordered}
    report: dict[str, Any] = {
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "store": store,
        "baseline": (
            {
                "model_version": baseline.model_version,
                "photos": baseline.photos,
                "source": baseline.source,
            }
            if baseline is not None
            else None
        ),
        "thresholds": params.model_dump(mode="json", exclude={"database_url"}),
        "versions": versions,
    }
    report["check"] = verdict(report, params)
    return report


@dataclass(frozen=True)
class Verdict:
    """What `catdog monitor check` says and exits with."""

    code: int
    reason: str


def judge(report: dict[str, Any], params: MonitorParams) -> Verdict:
    """Of the newest version in the window: failing accuracy or drift (1) before too little
    data to judge (2) before healthy (0)."""
    if not report["versions"]:
        return Verdict(TOO_LITTLE_DATA, "too little data: no predictions in the window")
    version, figures = next(iter(report["versions"].items()))
    labelled, n = figures["labelled"], figures["distinct_photos"]
    accuracy = figures["metrics"]["accuracy"] if figures["metrics"] else None
    if accuracy is not None and labelled >= params.min_labelled and accuracy < params.min_accuracy:
        return Verdict(
            UNHEALTHY,
            f"model {version}: live accuracy {accuracy:.3f} < {params.min_accuracy} "
            f"over {labelled} labelled predictions",
        )
    if n >= params.min_predictions and len(figures["drifted"]) >= params.max_drifted:
        return Verdict(
            UNHEALTHY,
            f"model {version}: drift in {', '.join(figures['drifted'])} over {n} distinct photos",
        )
    missing = []
    if labelled < params.min_labelled:
        missing.append(f"{labelled} labelled predictions (need {params.min_labelled})")
    if n < params.min_predictions:
        missing.append(f"{n} distinct photos (need {params.min_predictions})")
    if report["baseline"] is None:
        missing.append("no drift baseline")
    if missing:
        return Verdict(TOO_LITTLE_DATA, f"model {version}: too little data: {'; '.join(missing)}")
    return Verdict(
        HEALTHY,
        f"model {version}: healthy: accuracy {accuracy:.3f} over {labelled} labelled, "
        f"no drift over {n} distinct photos",
    )


def verdict(report: dict[str, Any], params: MonitorParams) -> dict[str, Any]:
    """The verdict as JSON."""
    found = judge(report, params)
    return {"exit_code": found.code, "reason": found.reason}


def default_window(
    since: datetime | None, until: datetime | None, params: MonitorParams, now: datetime
) -> tuple[datetime, datetime]:
    """--since/--until, defaulting to the last `window_days` up to now."""
    end = until or now
    return since or end - timedelta(days=params.window_days), end


def write_report(
    report: dict[str, Any], rows: list[PredictionRow], baseline: Baseline | None, out: Path
) -> Path:
    """report.json, the plots and report.html in `out`; returns the HTML page's path."""
    from catdog.monitoring import charts  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    sections = []
    for index, (version, figures) in enumerate(report["versions"].items()):
        own = distinct_photos([r for r in rows if r.model_version == version])
        images = []
        if figures["metrics"]:
            name = f"v{index}-confusion.png"
            m = figures["metrics"]
            charts.confusion_chart(m["confusion_matrix"], m["classes"], out / name)
            images.append(name)
        if baseline is not None:
            for statistic in (*STATISTICS, "confidence"):
                name = f"v{index}-{statistic}.png"
                live = [getattr(r, statistic) for r in own if getattr(r, statistic) is not None]
                reference = (
                    baseline.confidence.values
                    if statistic == "confidence"
                    else baseline.statistics[statistic].values
                )
                charts.distribution_chart(reference, live, statistic, out / name)
                images.append(name)
        sections.append(_html_version(version, figures, images))
    page = _HTML.format(
        since=html.escape(report["window"]["since"]),
        until=html.escape(report["window"]["until"]),
        reason=html.escape(report["check"]["reason"]),
        code=report["check"]["exit_code"],
        baseline=html.escape(json.dumps(report["baseline"])),
        sections="\n".join(sections) or "<p>No predictions in this window.</p>",
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _html_version(version: str, figures: dict[str, Any], images: list[str]) -> str:
    metrics = figures["metrics"] or {}
    summary = [
        ("predictions", figures["predictions"]),
        ("distinct photos (drift is judged on these)", figures["distinct_photos"]),
        ("labelled (feedback)", figures["labelled"]),
        ("feedback coverage", figures["feedback_coverage"]),
        ("accuracy", metrics.get("accuracy")),
        ("precision (macro)", metrics.get("precision")),
        ("recall (macro)", metrics.get("recall")),
        ("F1 (macro)", metrics.get("f1")),
        ("mean confidence", figures["mean_confidence"]),
        ("not-a-pet rate (pet_score < 0.5)", figures["not_a_pet_rate"]),
        (
            "predicted ratio",
            json.dumps({k: round(v, 3) for k, v in figures["predicted_ratio"].items()}),
        ),
    ]
    rows = "".join(f"<tr><th>{k}</th><td>{_fmt(v)}</td></tr>" for k, v in summary)
    drift_rows = "".join(
        f"<tr class={'bad' if d.get('drifted') else 'ok'}><th>{name}</th>"
        f"<td>{_fmt(d.get('p_value'))}</td><td>{_fmt(d.get('psi'))}</td>"
        f"<td>{_fmt(d.get('baseline_mean'))}</td><td>{_fmt(d.get('live_mean'))}</td>"
        f"<td>{'DRIFT' if d.get('drifted') else ('ok' if d.get('judged') else 'not judged')}"
        "</td></tr>"
        for name, d in figures["drift"].items()
    )
    pictures = "".join(f'<img src="{name}" alt="{name}">' for name in images)
    return f"""<section><h2>model {html.escape(version)}</h2>
<table>{rows}</table>
<h3>drift against the training baseline</h3>
<table><tr><th></th><th>p-value</th><th>PSI</th><th>baseline mean</th><th>live mean</th>
<th>verdict</th></tr>{drift_rows}</table>
<div class="plots">{pictures}</div></section>"""


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>catdog monitoring report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ text-align: left; background: #f4f4f4; }}
tr.bad td {{ background: #fdd; }}
.verdict {{ font-size: 1.2em; padding: 0.5em; border-radius: 4px; background: #eef; }}
.plots img {{ max-width: 32%; margin: 0.2em; border: 1px solid #eee; }}
</style></head><body>
<h1>catdog monitoring report</h1>
<p>window {since} to {until}</p>
<p class="verdict">check: exit {code} – {reason}</p>
<p>baseline: {baseline}</p>
{sections}
</body></html>
"""
