"""Where figures go: a JSON file under benchmarks/results/ and a table on the terminal.

Every result carries the machine it was measured on and its load average, because on a shared
2-core machine a figure means little without knowing what else was running.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.serving.load_client import LoadReport
from catdog.terminal import console

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
PIPED_WIDTH = 160


def result_path(name: str, *, quick: bool) -> Path:
    """`serve_<name>.json`; quick runs write `serve_<name>_quick.json` so they never overwrite."""
    return RESULTS_DIR / f"serve_{name}{'_quick' if quick else ''}.json"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def environment() -> dict[str, Any]:
    """The machine, the versions and how busy the machine was as the result was written."""
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "versions": {
            p: _version(p) for p in ("catdog", "onnxruntime", "torch", "fastapi", "uvicorn")
        },
        "git_commit": _git_commit(),
    }


def _clean(value: Any) -> Any:
    """NaN is not JSON: write null instead. An absolute path is written relative to the
    repository (results are committed: no machine's own folders in them)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str) and value.startswith("/") and Path(value).exists():
        return os.path.relpath(value, REPO_ROOT)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write one result file (with the environment) and say where it went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"environment": environment(), **payload}
    path.write_text(
        json.dumps(_clean(document), indent=2, sort_keys=False) + "\n", encoding="utf-8"
    )
    console.print(f"wrote {path}")
    return path


def fmt(value: Any, digits: int = 1) -> str:
    """A figure for a table cell: numbers rounded, missing ones as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain multi-column table: one row per server or setting."""
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    # Piped to a file or a CI log, rich would squeeze the table into 80 columns.
    out = console if console.is_terminal else Console(stderr=True, width=PIPED_WIDTH)
    out.print(table)


def print_reports(title: str, reports: Mapping[str, LoadReport]) -> None:
    """One row per load run: throughput, latency percentiles, statuses."""
    rows = [
        [
            name,
            r.images_per_s,
            r.latency_ms["p50"],
            r.latency_ms["p95"],
            r.latency_ms["p99"],
            r.rejected_latency_ms["max"],
            " ".join(f"{k}:{v}" for k, v in r.status_counts.items()),
            r.requests,
        ]
        for name, r in reports.items()
    ]
    columns = [
        "run",
        "images/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "503 max ms",
        "statuses",
        "requests",
    ]
    print_table(title, columns, rows)


@dataclass(frozen=True)
class Goal:
    """One goal of the issue's performance section and whether this run met it."""

    name: str
    measured: float
    op: str
    target: float
    unit: str

    @property
    def met(self) -> bool:
        """Measured on the right side of the target (a missing figure never meets it)."""
        if math.isnan(self.measured):
            return False
        return self.measured >= self.target if self.op == ">=" else self.measured <= self.target

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the verdict."""
        return {**asdict(self), "met": self.met}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Goal:
        """Read back what `to_dict` wrote."""
        measured = data["measured"]
        return cls(
            name=str(data["name"]),
            measured=math.nan if measured is None else float(measured),
            op=str(data["op"]),
            target=float(data["target"]),
            unit=str(data["unit"]),
        )


def print_goals(title: str, goals: Sequence[Goal]) -> None:
    """Goal, target, measured, met."""
    rows = [
        [g.name, f"{g.op} {g.target:g} {g.unit}", fmt(g.measured, 2), "yes" if g.met else "NO"]
        for g in goals
    ]
    print_table(title, ["goal", "target", "measured", "met"], rows)
