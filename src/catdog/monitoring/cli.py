"""`catdog simulate` and `catdog monitor report|check`.

Only typer at the top: SQLAlchemy, scipy and matplotlib are imported by the command that needs
them, so `catdog --help` stays fast.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from catdog.params import DEFAULT_PARAMS

app = typer.Typer(help="The monitoring loop: reports on live traffic and the retraining check.")

ParamsOption = Annotated[
    Path, typer.Option("--params", help="params.yaml: the `monitor` section's thresholds.")
]
SinceOption = Annotated[
    datetime | None,
    typer.Option(help="Start of the window (UTC). Default: `monitor.window_days` before --until."),
]
UntilOption = Annotated[
    datetime | None, typer.Option(help="End of the window (UTC). Default: now.")
]
VersionOption = Annotated[
    str | None, typer.Option("--model-version", help="Only this model version.")
]
BaselineOption = Annotated[
    Path | None,
    typer.Option(
        help="The drift baseline saved beside the served model (model.baseline.json). "
        "Default: `monitor.baseline`.",
        show_default=False,
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="The store. Default: `monitor.database_url`, else $CATDOG_DATABASE_URL, else "
        "sqlite:///data/predictions.db.",
        show_default=False,
    ),
]


def simulate(
    *,
    url: Annotated[str, typer.Option(help="The running service, http://127.0.0.1:PORT.")],
    data: Annotated[
        Path,
        typer.Option(help="Class folders of labelled photos (cat/, dog/).", exists=True),
    ],
    n: Annotated[
        int | None, typer.Option("--n", min=1, help="Photos to send (cycling). Default: all.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight.")] = 4,
    feedback: Annotated[
        bool, typer.Option("--feedback", help="Send each true label to /feedback afterwards.")
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token for --feedback. Default: $CATDOG_API_TOKEN.", show_default=False
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder of simulate.json and its charts.")] = Path(
        "reports/simulate"
    ),
    seconds: Annotated[float, typer.Option(min=1, help="Stop sending after this long.")] = 300.0,
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="A catdog manifest (data/prepared/manifest.csv): send only the photos of "
            "--data it put in --split, e.g. the raw photos held back from training.",
            exists=True,
        ),
    ] = None,
    split: Annotated[str, typer.Option(help="With --manifest: the split to send.")] = "test",
) -> None:
    """Send real labelled photos to a running service (optionally their true labels as
    feedback) and report accuracy, precision, recall, F1, latency and throughput."""
    from catdog.errors import MonitorError  # noqa: PLC0415
    from catdog.monitoring.simulate import held_back, load_labelled, write_report  # noqa: PLC0415
    from catdog.monitoring.simulate import simulate as run  # noqa: PLC0415
    from catdog.terminal import console, progress, summary_table  # noqa: PLC0415

    secret = token or os.environ.get("CATDOG_API_TOKEN")
    if feedback and not secret:
        raise MonitorError("--feedback needs the service's token: --token or $CATDOG_API_TOKEN")
    only = held_back(manifest, split) if manifest is not None else None
    photos = load_labelled(data, limit=n, only=only)
    total = n or len(photos)
    with progress() as bar:
        task = bar.add_task("photos", total=total)
        report = run(
            url,
            photos,
            n=total,
            concurrency=concurrency,
            max_seconds=seconds,
            feedback_token=secret if feedback else None,
            on_outcome=lambda _: bar.advance(task),
        )
    path = write_report(report, out)
    scores = report["classification"] or {}
    rows: list[tuple[str, Any]] = [
        ("answered / sent", f"{report['answered']} / {report['requests']}"),
        ("images/s", report["images_per_s"]),
        (
            "latency p50 / p95 / p99 (ms)",
            "{p50:.1f} / {p95:.1f} / {p99:.1f}".format(**report["latency_ms"]),
        ),
        ("accuracy", scores.get("accuracy", "–")),
        (
            "precision / recall / F1 (macro)",
            " / ".join(f"{scores[k]:.3f}" for k in ("precision", "recall", "f1"))
            if scores
            else "–",
        ),
        ("statuses", report["status_counts"]),
    ]
    if report["feedback"]:
        rows.append(("feedback statuses", report["feedback"]["status_counts"]))
    summary_table(f"simulate {report['url']}", rows)
    console.print(f"report: {path}")


def _load(
    params_path: Path,
    *,
    database_url: str | None,
    since: datetime | None,
    until: datetime | None,
    model_version: str | None,
    baseline_path: Path | None,
) -> tuple[Any, ...]:
    from catdog.monitoring.baseline import load_baseline  # noqa: PLC0415
    from catdog.monitoring.params import MonitorParams  # noqa: PLC0415
    from catdog.monitoring.records import utcnow  # noqa: PLC0415
    from catdog.monitoring.report import build_report, default_window  # noqa: PLC0415
    from catdog.monitoring.store import PredictionStore  # noqa: PLC0415
    from catdog.params import load_section  # noqa: PLC0415
    from catdog.serving.settings import load_settings  # noqa: PLC0415

    params = load_section(params_path, "monitor", MonitorParams)
    url = database_url or params.database_url or load_settings().store_url
    start, end = default_window(since, until, params, utcnow())
    store = PredictionStore(url)
    try:
        store.migrate()
        rows = store.predictions(since=start, until=end, model_version=model_version)
    finally:
        store.close()
    baseline_path = baseline_path or params.baseline
    baseline = load_baseline(baseline_path) if baseline_path.exists() else None
    if baseline is None:
        typer.echo(f"no drift baseline at {baseline_path}: drift is not judged", err=True)
    report = build_report(rows, baseline, params, since=start, until=end, store=store.describe())
    return report, rows, baseline


@app.command()
def report(
    *,
    since: SinceOption = None,
    until: UntilOption = None,
    model_version: VersionOption = None,
    out: Annotated[Path, typer.Option(help="Folder of report.json, report.html and plots.")] = Path(
        "reports/monitor"
    ),
    database_url: DatabaseOption = None,
    baseline: BaselineOption = None,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Live accuracy, feedback coverage and drift per model version, as JSON and an HTML page."""
    from catdog.monitoring.report import write_report  # noqa: PLC0415
    from catdog.terminal import console  # noqa: PLC0415

    built, rows, loaded = _load(
        params,
        database_url=database_url,
        since=since,
        until=until,
        model_version=model_version,
        baseline_path=baseline,
    )
    page = write_report(built, rows, loaded, out)
    for version, figures in built["versions"].items():
        accuracy = figures["metrics"]["accuracy"] if figures["metrics"] else None
        console.print(
            f"model {version}: {figures['predictions']} predictions, {figures['labelled']} "
            f"labelled, accuracy {'–' if accuracy is None else f'{accuracy:.3f}'}, "
            f"drifted: {', '.join(figures['drifted']) or 'none'}"
        )
    console.print(f"check: {built['check']['reason']}")
    typer.echo(f"report: {page}")


@app.command()
def check(
    *,
    since: SinceOption = None,
    until: UntilOption = None,
    model_version: VersionOption = None,
    database_url: DatabaseOption = None,
    baseline: BaselineOption = None,
    params: ParamsOption = DEFAULT_PARAMS,
) -> None:
    """Exit 0 when healthy, 1 when live accuracy or drift is past its threshold (retrain),
    2 when there is too little data to judge; the reason in one line."""
    built, _, _ = _load(
        params,
        database_url=database_url,
        since=since,
        until=until,
        model_version=model_version,
        baseline_path=baseline,
    )
    typer.echo(built["check"]["reason"])
    raise typer.Exit(built["check"]["exit_code"])
