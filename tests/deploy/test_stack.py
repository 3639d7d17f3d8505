"""The compose stack brought up for real (deploy/compose.yaml through compose.host.yaml): a model
registered in its MLflow is served as models:/catdog@champion, Prometheus scrapes the service,
and everything comes down again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from containers import ROOT, Engine, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STACK_SH = ROOT / "deploy" / "compose.host" / "stack.sh"


@pytest.fixture(scope="module")
def stack(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The stack on free ports under a project name of its own, its champion a copy of the
    reference model whose card names a version of this run; always brought down."""
    model_dir = tmp_path_factory.mktemp("model")
    reference = ROOT / "src" / "catdog" / "reference"
    card = json.loads((reference / "model.card.json").read_text())
    card["version"] = f"stack-test-{uuid.uuid4().hex[:8]}"
    (model_dir / "model.card.json").write_text(json.dumps(card))
    shutil.copy(reference / "model.onnx", model_dir / "model.onnx")
    env = {
        **engine.env,
        "STACK_PROJECT": f"catdogtest{uuid.uuid4().hex[:8]}",
        "STACK_PG_PORT": str(free_port()),
        "STACK_MLFLOW_PORT": str(free_port()),
        "STACK_API_PORT": str(free_port()),
        "STACK_PROMETHEUS_PORT": str(free_port()),
        "STACK_PROMETHEUS_CONFIG": str(tmp_path_factory.mktemp("stack") / "prometheus.yml"),
        "STACK_MODEL_DIR": str(model_dir),
        "STACK_VERSION": card["version"],
        "PYTHON": sys.executable,
        "CATDOG_KEEP_ENGINE": "1",  # the session's engine fixture stops it
    }
    try:
        up = subprocess.run(
            [STACK_SH, "up"], env=env, capture_output=True, text=True, timeout=1800, check=False
        )
        if up.returncode != 0:
            logs = subprocess.run(
                ["docker-compose", "-p", env["STACK_PROJECT"], "-f", "deploy/compose.yaml",
                 "-f", "deploy/compose.host.yaml", "logs", "--tail", "30"],
                env=env, cwd=ROOT, capture_output=True, text=True, check=False,
            )  # fmt: skip
            pytest.fail(f"stack.sh up failed:\n{up.stdout}\n{up.stderr[-3000:]}\n{logs.stdout}")
        yield env
    finally:
        subprocess.run([STACK_SH, "down"], env=env, capture_output=True, timeout=300, check=False)


def test_the_stack_serves_the_registered_champion(stack: dict[str, str]) -> None:
    from mlflow import MlflowClient  # noqa: PLC0415

    mlflow_url = f"http://127.0.0.1:{stack['STACK_MLFLOW_PORT']}"
    version = MlflowClient(tracking_uri=mlflow_url).get_model_version_by_alias("catdog", "champion")
    assert version.run_id
    api = f"http://127.0.0.1:{stack['STACK_API_PORT']}"
    smoke = subprocess.run(
        [sys.executable, "-m", "catdog", "smoke", "--url", api],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    served = httpx.get(f"{api}/ready", timeout=5).json()["model_version"]
    assert served == stack["STACK_VERSION"]  # the registry's copy, not the image's own model


def test_prometheus_scrapes_the_service(stack: dict[str, str]) -> None:
    prometheus = f"http://127.0.0.1:{stack['STACK_PROMETHEUS_PORT']}"
    deadline = time.monotonic() + 60
    targets: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()["data"][
            "activeTargets"
        ]
        if any(t["health"] == "up" for t in targets):
            break
        time.sleep(1)
    assert [t["health"] for t in targets] == ["up"], targets


def test_prometheus_config_and_rules_pass_promtool(stack: dict[str, str], engine: Engine) -> None:
    """promtool of the stack's own Prometheus build checks the config and every rule file."""
    folder = ROOT / "deploy" / "prometheus"
    done = engine.run(
        "run", "--rm", "--network=host", "--entrypoint", "promtool",
        f"--volume={folder}:/etc/prometheus:ro", "catdog-prometheus:host",
        "check", "config", "/etc/prometheus/prometheus.yml", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_the_kubernetes_prometheus_rule_passes_promtool(
    stack: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    """The PrometheusRule's groups, as a plain rule file, through the same promtool."""
    rule = yaml.safe_load((ROOT / "deploy/k8s/base/prometheusrule.yaml").read_text())
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    tmp_path.chmod(0o755)
    (tmp_path / "rules.yml").chmod(0o644)
    done = engine.run(
        "run", "--rm", "--network=host", "--entrypoint", "promtool",
        f"--volume={tmp_path}:/rules:ro", "catdog-prometheus:host",
        "check", "rules", "/rules/rules.yml", check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 2 rules found" in done.stdout + done.stderr


def test_the_stack_comes_down(stack: dict[str, str], engine: Engine) -> None:
    """Last in this module: `stack.sh down` removes every container of the project."""
    done = subprocess.run(
        [STACK_SH, "down"], env=stack, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    label = f"label=com.docker.compose.project={stack['STACK_PROJECT']}"
    assert engine.run("ps", "-aq", "--filter", label).stdout.strip() == ""
    assert engine.run("volume", "ls", "-q", "--filter", label).stdout.strip() == ""
