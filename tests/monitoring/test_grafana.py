"""deploy/grafana: the checked-in dashboard is what the code generates, has the expected shape,
and every panel query is valid PromQL (asked of a real Prometheus) naming real series."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from tests.monitoring.test_prometheus import NEEDS, PROMETHEUS
from tests.serving.serving_support import REPO, free_port

from catdog.monitoring.dashboard import DATASOURCE, render
from catdog.serving.metrics import ServiceMetrics

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "catdog.json"


def queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def exported_series() -> set[str]:
    """Every series name the service can export, and the recording rules' names."""
    names: set[str] = set()
    registry: CollectorRegistry = ServiceMetrics().registry
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    for family in registry.collect():
        names.update(family.name + s for s in suffixes[family.type])
    for path in (REPO / "deploy" / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def test_the_checked_in_dashboard_is_the_generated_one() -> None:
    assert DASHBOARD.read_text() == render(), "run: python -m catdog.monitoring.dashboard"


def test_dashboard_shape_and_provisioning() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert (dashboard["uid"], dashboard["title"]) == ("catdog", "catdog")
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in (
        "Traffic",
        "Latency of /predict",
        "Error ratio",
        "Batch size",
        "Live accuracy by model version",
        "Drift: input mean shift",
        "Not-a-pet rate",
    ):
        assert wanted in titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dashboard["panels"]:
        assert panel["type"] == "timeseries"
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["targets"] and all(t["datasource"] == DATASOURCE for t in panel["targets"])
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE["uid"], DATASOURCE["type"])
    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "catdog.yml").read_text()
    )["providers"]
    assert provider["type"] == "file"


def test_every_query_names_series_the_service_exports() -> None:
    known = exported_series()
    for expr in queries():
        used = set(re.findall(r"\bcatdog[:_][a-z_:]+", expr))
        assert used, expr
        assert used <= known, f"{expr}: unknown {used - known}"


@pytest.fixture(scope="module")
def prometheus_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus with nothing to scrape: its query API parses PromQL."""
    assert Path(PROMETHEUS).exists(), NEEDS
    tmp = tmp_path_factory.mktemp("prometheus")
    (tmp / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/-/ready").raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "prometheus did not start"
                time.sleep(0.2)
        yield api
    finally:
        process.terminate()
        process.wait(15)


@pytest.mark.integration
def test_every_query_is_valid_promql(prometheus_api: str) -> None:
    for expr in queries():
        answer = httpx.get(f"{prometheus_api}/query", params={"query": expr}).json()
        assert answer["status"] == "success", (expr, answer)
    broken = httpx.get(f"{prometheus_api}/query", params={"query": "sum(rate(x[5m]"}).json()
    assert broken["status"] == "error"  # the check can fail
