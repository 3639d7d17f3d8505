"""The files that run catdog elsewhere, checked offline: GitHub workflows and compose files
against their JSON schemas, Dockerfiles with hadolint, Grafana's provisioning by its shape."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from containers import ROOT

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
COMPOSE_FILES = [ROOT / "deploy" / "compose.yaml", ROOT / "deploy" / "compose.host.yaml"]
DOCKERFILES = sorted((ROOT / "deploy").rglob("Dockerfile"))
GRAFANA = ROOT / "deploy" / "grafana"


def check(*command: str | Path) -> None:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def test_there_are_the_three_workflows() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "train.yml", "deploy.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_the_schema_and_pins_every_action(workflow: Path) -> None:
    check(BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow)
    uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(\S+)", workflow.read_text(), flags=re.M)
    assert uses, "no action used"
    unpinned = [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", u)]
    assert unpinned == [], f"actions not pinned to a commit sha: {unpinned}"


@pytest.mark.parametrize("compose", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_schema(compose: Path) -> None:
    check(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", compose)


def test_compose_services_are_healthchecked_and_wait_for_healthy_dependencies() -> None:
    services = load(COMPOSE_FILES[0])["services"]
    assert {"catdog", "mlflow", "postgres", "prometheus", "grafana"} <= services.keys()
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, rule in service.get("depends_on", {}).items():
            assert rule == {"condition": "service_healthy"}, (name, dependency)
    assert "--backend-store-uri=postgresql+psycopg2://" in " ".join(services["mlflow"]["command"])
    host = load(COMPOSE_FILES[1])["services"]
    running = {name for name in host if "grafana" not in host[name].get("profiles", [])}
    assert all(host[name]["network_mode"] == "host" for name in running)
    assert "5432" not in yaml.safe_dump(host).replace("15432", "")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    check(BIN / "hadolint", dockerfile)


def test_grafana_provisioning_points_at_what_compose_mounts() -> None:
    """Grafana cannot run here (no package, no registry): its files are checked instead."""
    if not GRAFANA.is_dir():
        pytest.skip("deploy/grafana/ arrives with the monitoring work; nothing to validate yet")
    mounts = load(COMPOSE_FILES[0])["services"]["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    datasources = [
        source
        for path in (GRAFANA / "provisioning" / "datasources").glob("*.y*ml")
        for source in load(path).get("datasources", [])
    ]
    assert any(s["type"] == "prometheus" for s in datasources), datasources
    providers = [
        provider
        for path in (GRAFANA / "provisioning" / "dashboards").glob("*.y*ml")
        for provider in load(path).get("providers", [])
    ]
    mounted = {m.split(":")[1] for m in mounts}
    inside = [any(p["options"]["path"].startswith(m) for m in mounted) for p in providers]
    assert providers and all(inside), providers
    for dashboard in (GRAFANA / "dashboards").glob("*.json"):
        board = json.loads(dashboard.read_text())
        assert board["title"] and board["panels"], dashboard
