"""The torch-free serving install: size on disk, no torch, and it really serves a photo.

Creates a fresh venv, installs only `catdog[serve]` under the project's constraints, then checks
what a user of that install relies on: torch absent, `import catdog.serving` and `create_app()`
work without it, and `catdog serve` from that venv (reference model) answers /ready and classifies
a real photo. Needs the package registry (pip); takes a minute or two.

The size goal counts what the install adds to an empty venv (pip and setuptools, about 24 MiB,
are in every venv) in MB of 10^6 bytes; the whole venv, as `du -sh` shows it, is reported beside.

Run: `python -m benchmarks.serving.install_size`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.serving.load_client import build_requests, closed_loop
from benchmarks.serving.photos import default_photo_dir, load_photos
from benchmarks.serving.results import (
    REPO_ROOT,
    Goal,
    print_goals,
    print_table,
    result_path,
    write_json,
)
from benchmarks.serving.servers import HOST, PORT_PLACEHOLDER, ServerSpec, running

SIZE_GOAL_MB = 250.0
PIP_TIMEOUT_S = 1200
# Runs inside the fresh venv: app creation must not pull torch in.
APP_CHECK = (
    "import sys; import catdog.serving.app as a; a.create_app(); "
    "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
)


def tree_bytes(root: Path) -> int:
    """Disk usage of a folder in bytes, as `du` counts it (allocated blocks, folders too)."""
    total = root.lstat().st_blocks * 512
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            total += (Path(folder) / name).lstat().st_blocks * 512
    return total


def _mib(size: int) -> float:
    return size / (1024 * 1024)


def _run(command: Sequence[str], timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)


def _serves_a_photo(venv: Path) -> dict[str, Any]:
    """`catdog serve` from the fresh venv: time to /ready, RSS, and real photos answered.

    It runs in the venv's folder, away from the repo, so that it serves the reference model the
    install ships and not a local `models/` export.
    """
    spec = ServerSpec(
        name="serve-only-install",
        command=[str(venv / "bin" / "catdog"), "serve"],
        ready_path="/ready",
        env={"CATDOG_HOST": HOST, "CATDOG_PORT": PORT_PLACEHOLDER, "CATDOG_LOG_LEVEL": "warning"},
        cwd=venv,
    )
    photos = load_photos(default_photo_dir(), 8)
    try:
        with running(spec, ready_timeout_s=60.0) as server:
            requests = build_requests(HOST, server.port, "/predict", photos)
            report = asyncio.run(
                closed_loop(
                    HOST,
                    server.port,
                    requests,
                    concurrency=1,
                    max_requests=len(photos),
                    max_seconds=60.0,
                )
            )
            return {
                "ready_s": server.ready_s,
                "rss_mb": server.rss_mb(),
                "status_counts": report.status_counts,
            }
    except RuntimeError as exc:
        return {"error": str(exc)[-2000:]}


def measure(python: str, keep: bool) -> dict[str, Any]:
    """Install into a fresh venv and inspect it."""
    venv = Path(tempfile.mkdtemp(prefix="catdog-serve-venv-"))
    try:
        created = _run([python, "-m", "venv", str(venv)])
        if created.returncode != 0:
            raise RuntimeError(f"cannot create a venv with {python}: {created.stderr}")
        empty = tree_bytes(venv)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "-c", str(REPO_ROOT / "constraints.txt")]
        installed = _run([*pip, f"{REPO_ROOT}[serve]"], timeout_s=PIP_TIMEOUT_S)
        if installed.returncode != 0:
            raise RuntimeError(f"pip install failed:\n{installed.stderr[-3000:]}")
        total = tree_bytes(venv)
        torch = _run([str(venv / "bin" / "pip"), "show", "torch"])
        app = _run([str(venv / "bin" / "python"), "-c", APP_CHECK])
        serving = _serves_a_photo(venv) if app.returncode == 0 else {}
        site = next((venv / "lib").glob("python*/site-packages"))
        largest = sorted(
            ((tree_bytes(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True
        )
        return {
            "python": python,
            "venv_mib": _mib(total),
            "empty_venv_mib": _mib(empty),
            "serve_extra_mib": _mib(total - empty),
            "serve_extra_mb": (total - empty) / 1e6,
            "torch_installed": torch.returncode == 0,
            "app_without_torch": app.returncode == 0 and app.stdout.strip() == "ok",
            "app_check_output": (app.stdout + app.stderr)[-2000:],
            "serving": serving,
            "largest_packages_mib": {name: _mib(size) for size, name in largest[:15]},
            "venv": str(venv) if keep else None,
        }
    finally:
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


def goals(result: dict[str, Any]) -> list[Goal]:
    """Size, no torch, and a working torch-free service."""
    answered = result["serving"].get("status_counts", {}).get("200", 0)
    return [
        Goal(
            "serve extra installed alone (venv - empty venv)",
            result["serve_extra_mb"],
            "<=",
            SIZE_GOAL_MB,
            "MB",
        ),
        Goal(
            "torch absent from the serve install",
            float(not result["torch_installed"]),
            ">=",
            1.0,
            "bool",
        ),
        Goal("create_app() without torch", float(result["app_without_torch"]), ">=", 1.0, "bool"),
        Goal("serve-only install answers real photos", float(answered), ">=", 8.0, "photos"),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Size and health of a fresh `pip install catdog[serve]`."
    )
    parser.add_argument(
        "--python",
        default=shutil.which("python3.11") or sys.executable,
        help="interpreter for the venv",
    )
    parser.add_argument("--keep", action="store_true", help="keep the venv and print its path")
    parser.add_argument("--quick", action="store_true", help="writes serve_install_quick.json")
    args = parser.parse_args(argv)
    result = measure(args.python, args.keep)
    result["goals"] = [g.to_dict() for g in goals(result)]
    print_table(
        "largest packages in the serve install",
        ["package", "MiB"],
        list(result["largest_packages_mib"].items()),
    )
    print_goals("serve install", [Goal.from_dict(g) for g in result["goals"]])
    write_json(result_path("install", quick=args.quick), result)


if __name__ == "__main__":
    main()
