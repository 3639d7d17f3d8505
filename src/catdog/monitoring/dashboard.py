"""The Grafana dashboard, as code (grafanalib): `python -m catdog.monitoring.dashboard` writes
deploy/grafana/dashboards/catdog.json, and a test keeps that file in step with this module.

Every query names series the service exports (catdog.serving.metrics) or the recording rules of
deploy/prometheus/rules define; the test checks both, and that each query is valid PromQL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
OUTPUT = Path("deploy/grafana/dashboards/catdog.json")
PREDICT = 'route=~"/predict.*"'

# (title, unit, [(PromQL, legend)], description), in rows of three panels.
PANELS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    (
        "Traffic",
        "reqps",
        [(f"sum by (route) (rate(catdog_requests_total{{{PREDICT}}}[5m]))", "{{route}}")],
        "Prediction requests per second.",
    ),
    (
        "Images classified",
        "ops",
        [("sum by (label) (rate(catdog_predictions_total[5m]))", "{{label}}")],
        "Answered photos per second, by predicted label.",
    ),
    (
        "Error ratio",
        "percentunit",
        [
            (
                f'sum(rate(catdog_requests_total{{{PREDICT}, status=~"5.."}}[5m])) '
                f"/ sum(rate(catdog_requests_total{{{PREDICT}}}[5m]))",
                "5xx",
            ),
            (
                f'sum(rate(catdog_requests_total{{{PREDICT}, status=~"4.."}}[5m])) '
                f"/ sum(rate(catdog_requests_total{{{PREDICT}}}[5m]))",
                "4xx",
            ),
        ],
        "Share of prediction requests refused; alert CatdogHighErrorRatio at 5% 5xx.",
    ),
    (
        "Latency of /predict",
        "s",
        [
            (
                f"histogram_quantile({q}, sum by (le) "
                '(rate(catdog_request_latency_seconds_bucket{route="/predict"}[5m])))',
                f"p{round(q * 100)}",
            )
            for q in (0.5, 0.95, 0.99)
        ],
        "Time in the service per request; the objective is p95 under 500 ms.",
    ),
    (
        "Batch size",
        "none",
        [
            (
                "sum(rate(catdog_batch_size_sum[5m])) / sum(rate(catdog_batch_size_count[5m]))",
                "mean",
            ),
            ("histogram_quantile(0.95, sum by (le) (rate(catdog_batch_size_bucket[5m])))", "p95"),
        ],
        "Images per model run (micro-batching).",
    ),
    (
        "Queue and refusals",
        "short",
        [
            ("sum(catdog_queue_depth)", "uploads waiting"),
            ("sum by (reason) (rate(catdog_refusals_total[5m]))", "refused/s {{reason}}"),
        ],
        "Uploads waiting for a runner, and refusals by reason.",
    ),
    (
        "Live accuracy by model version",
        "percentunit",
        [("max by (model_version) (catdog_live_accuracy_ratio)", "{{model_version}}")],
        "Over the last CATDOG_ACCURACY_WINDOW labelled predictions (POST /feedback).",
    ),
    (
        "Feedback received",
        "ops",
        [
            (
                "sum by (model_version, outcome) (rate(catdog_feedback_total[15m]))",
                "{{model_version}} {{outcome}}",
            ),
        ],
        "True labels received per second, by whether the model was right.",
    ),
    (
        "Drift: input mean shift",
        "none",
        [("catdog:input_mean_shift:stddevs", "{{statistic}}")],
        "Live mean of each input statistic minus the training baseline's, in baseline standard "
        "deviations; alert CatdogInputDrift above 0.5.",
    ),
    (
        "Not-a-pet rate",
        "percentunit",
        [
            (
                "sum(rate(catdog_not_a_pet_predictions_total[15m])) "
                "/ sum(rate(catdog_predictions_total[15m]))",
                "not a pet",
            )
        ],
        "Share of answered photos judged to show no cat or dog.",
    ),
    (
        "Confidence",
        "percentunit",
        [
            (
                "sum(rate(catdog_prediction_confidence_sum[15m])) "
                "/ sum(rate(catdog_prediction_confidence_count[15m]))",
                "mean confidence",
            )
        ],
        "Mean top probability; a falling confidence often comes before a falling accuracy.",
    ),
    (
        "Prediction log",
        "short",
        [
            ("sum(catdog_prediction_log_queue_depth)", "queued rows"),
            (
                "sum by (reason) (rate(catdog_prediction_log_dropped_total[5m]))",
                "dropped/s {{reason}}",
            ),
            ("min(catdog_prediction_store_up)", "store up"),
        ],
        "Rows waiting for the writer, rows dropped (the answers were sent), and the store.",
    ),
    (
        "Runner restarts",
        "short",
        [("sum(increase(catdog_runner_restarts_total[10m]))", "restarts in 10 min")],
        "Runner processes that died under a batch; alert CatdogRunnerRestartStorm above 3.",
    ),
    (
        "Model served",
        "none",
        [("max by (name, version) (catdog_model_info)", "{{name}} {{version}}")],
        "The model version every replica serves (1 while served).",
    ),
    (
        "Input brightness",
        "percentunit",
        [
            (
                "sum(rate(catdog_input_brightness_ratio_sum[1h])) "
                "/ sum(rate(catdog_input_brightness_ratio_count[1h]))",
                "live mean",
            ),
            ('max(catdog_input_baseline_mean{statistic="brightness"})', "training mean"),
        ],
        "Mean brightness of uploads against the training photos'.",
    ),
]


def build() -> Any:
    """The dashboard object."""
    from grafanalib.core import Dashboard, GridPos, Target, TimeSeries  # noqa: PLC0415

    panels = []
    for index, (title, unit, queries, description) in enumerate(PANELS):
        panels.append(
            TimeSeries(
                title=title,
                description=description,
                dataSource=DATASOURCE,
                unit=unit,
                targets=[
                    Target(
                        expr=expr,
                        legendFormat=legend,
                        refId=chr(ord("A") + i),
                        datasource=DATASOURCE,
                    )
                    for i, (expr, legend) in enumerate(queries)
                ],
                gridPos=GridPos(h=8, w=8, x=(index % 3) * 8, y=(index // 3) * 8),
            )
        )
    return Dashboard(
        title="catdog",
        uid="catdog",
        description="Traffic, latency, errors, batching, live accuracy, drift and not-a-pet.",
        tags=["catdog", "mlops"],
        timezone="utc",
        refresh="30s",
        panels=panels,
    ).auto_panel_ids()


def render() -> str:
    """The dashboard's JSON, as Grafana's provisioning reads it."""
    from grafanalib._gen import DashboardEncoder  # noqa: PLC0415

    return json.dumps(build().to_json_data(), cls=DashboardEncoder, indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write the dashboard file (path: first argument, else deploy/grafana/dashboards/...)."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
