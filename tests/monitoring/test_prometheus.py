"""deploy/prometheus: the config is valid, the alert rules pass their promtool unit tests, and a
real Prometheus scrapes a live `catdog serve` and evaluates every rule on its series."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from tests.serving.serving_support import REPO, SAMPLES, free_port, run_server, write_tiny_model

from catdog.monitoring.baseline_export import export_baseline

DEPLOY = REPO / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
NEEDS = "Debian's prometheus package (promtool, prometheus): run `make prometheus`"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert Path(PROMTOOL).exists(), NEEDS
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False, cwd=DEPLOY
    )


def test_the_config_and_rules_are_valid() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    runbooks = (REPO / "docs" / "runbooks.md").read_text()
    alerts = [
        rule
        for path in sorted((DEPLOY / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    names = {rule["alert"] for rule in alerts}
    assert {
        "CatdogHighErrorRatio",
        "CatdogHighLatencyP95",
        "CatdogNoTraffic",
        "CatdogLiveAccuracyDrop",
        "CatdogInputDrift",
        "CatdogNotAPetSurge",
        "CatdogRunnerRestartStorm",
    } <= names
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert f"## {rule['alert']}" in runbooks and anchor == rule["alert"].lower()


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", *sorted(str(p) for p in (DEPLOY / "tests").glob("*.yml")))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_prometheus_scrapes_catdog_and_evaluates_the_rules(tmp_path: Path) -> None:
    assert Path(PROMETHEUS).exists(), NEEDS
    model = write_tiny_model(tmp_path / "model")
    export_baseline(model, SAMPLES)  # so the drift recording rules have a baseline to use
    with run_server(tmp_path, "--model", str(model), env={"CATDOG_RUNNERS": "1"}) as server:
        config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(DEPLOY / "rules" / "*.yml")]
        job = config["scrape_configs"][0]
        job["scrape_interval"] = "1s"
        job["static_configs"] = [{"targets": [server.url.removeprefix("http://")]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        api = f"http://127.0.0.1:{port}/api/v1"
        try:
            photos = sorted((SAMPLES / "Cat").glob("*.jpg"))[:6]
            shift = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for photo in photos:  # traffic across several scrapes, so rates exist
                    httpx.post(f"{server.url}/predict", files={"file": photo.read_bytes()})
                try:
                    shift = httpx.get(
                        f"{api}/query",
                        params={"query": 'catdog:input_mean_shift:stddevs{statistic="brightness"}'},
                    ).json()["data"]["result"]
                except httpx.TransportError:
                    shift = None
                if shift:
                    break
                time.sleep(0.5)
            assert shift, (tmp_path / "prometheus.log").read_text()[-3000:]
            assert float(shift[0]["value"][1]) >= 0
            targets = httpx.get(f"{api}/targets").json()["data"]["activeTargets"]
            assert [t["health"] for t in targets] == ["up"]
            rules = [
                rule
                for group in httpx.get(f"{api}/rules").json()["data"]["groups"]
                for rule in group["rules"]
            ]
            assert len(rules) == 12
            for rule in rules:
                assert rule["health"] == "ok", rule
                assert not rule.get("lastError"), rule
            ready = httpx.get(f"{api}/query", params={"query": "catdog_ready"}).json()
            assert ready["data"]["result"][0]["value"][1] == "1"
        finally:
            prometheus.terminate()
            prometheus.wait(15)
            log.close()
