"""One bounded measurement of one server: start it, warm it up, load it, read its memory, stop it.

Also the two kinds of server under test: the seed-style baseline and `catdog serve`, both started
by this interpreter's venv so that they run the same libraries as the benchmark.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.serving.load_client import LoadReport, build_requests, closed_loop
from benchmarks.serving.photos import Photo
from benchmarks.serving.servers import (
    HOST,
    PORT_PLACEHOLDER,
    RunningServer,
    ServerSpec,
    python_command,
    running,
)

BASELINE_APP = "benchmarks.serving.baseline_service:app"


@dataclass(frozen=True)
class LoadPlan:
    """How hard and how long to load a server; every run is bounded by both limits."""

    concurrency: int = 8
    seconds: float = 30.0
    requests: int = 5000
    warmup_requests: int = 16
    timeout_s: float = 30.0


def baseline_spec() -> ServerSpec:
    """The seed-style service under uvicorn, one process, access log off (it only helps it)."""
    command = python_command(
        "-m",
        "uvicorn",
        BASELINE_APP,
        "--host",
        HOST,
        "--port",
        PORT_PLACEHOLDER,
        "--no-access-log",
        "--log-level",
        "warning",
    )
    return ServerSpec(name="baseline", command=command, ready_path="/health")


def catdog_spec(name: str, model: Path | None, env: Mapping[str, str] | None = None) -> ServerSpec:
    """`catdog serve` with `--model` (or none: the reference model) and CATDOG_* settings."""
    command = python_command("-m", "catdog.cli", "serve")
    if model is not None:
        command += ["--model", str(model)]
    settings = {"CATDOG_HOST": HOST, "CATDOG_PORT": PORT_PLACEHOLDER, "CATDOG_LOG_LEVEL": "warning"}
    return ServerSpec(
        name=name, command=command, ready_path="/ready", env={**settings, **(env or {})}
    )


def load(server: RunningServer, photos: Sequence[Photo], plan: LoadPlan) -> LoadReport:
    """Warm the server up (discarded), then one bounded closed-loop run at `plan.concurrency`."""
    requests = build_requests(
        HOST, server.port, server.spec.predict_path, photos, server.spec.upload_field
    )
    asyncio.run(
        closed_loop(
            HOST,
            server.port,
            requests,
            concurrency=plan.concurrency,
            max_requests=plan.warmup_requests,
            max_seconds=plan.timeout_s,
            timeout_s=plan.timeout_s,
        )
    )
    return asyncio.run(
        closed_loop(
            HOST,
            server.port,
            requests,
            concurrency=plan.concurrency,
            max_requests=plan.requests,
            max_seconds=plan.seconds,
            timeout_s=plan.timeout_s,
        )
    )


def measure(spec: ServerSpec, photos: Sequence[Photo], plan: LoadPlan) -> dict[str, Any]:
    """Start, load, record readiness time and RSS after the run, stop."""
    with running(spec) as server:
        rss_idle = server.rss_mb()
        report = load(server, photos, plan)
        return {
            "server": spec.name,
            "ready_s": server.ready_s,
            "rss_mb_idle": rss_idle,
            "rss_mb_after": server.rss_mb(),
            "pss_mb_after": server.pss_mb(),
            "alive_after": server.alive(),
            "report": report.to_dict(),
        }
