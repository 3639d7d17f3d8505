"""The `prepare` stage under real DVC, in a fresh git repository: runs, then is a no-op."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def run(command: list[str], cwd: Path) -> str:
    """Run a command with the venv's tools first on PATH and no calls home; return its output."""
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DO_NOT_TRACK": "1",
    }
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_repro_runs_once_then_is_a_no_op(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    shutil.copytree(REPO / "samples" / "petimages", clone / "samples" / "petimages")
    shutil.copytree(
        REPO / "src" / "catdog",
        clone / "src" / "catdog",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("params.yaml", ".dvcignore", ".gitignore"):
        shutil.copyfile(REPO / name, clone / name)
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    (clone / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": stages["prepare"]}}))
    run(["git", "init", "-q"], clone)
    run(["dvc", "init", "-q"], clone)
    run(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], clone)

    first = run(["dvc", "repro", "prepare"], clone)
    assert "Running stage 'prepare'" in first
    assert (clone / "data" / "prepared" / "manifest.csv").exists()
    assert (clone / "dvc.lock").exists()
    second = run(["dvc", "repro", "prepare"], clone)
    assert "Running stage" not in second
    assert "didn't change" in second

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], clone).splitlines()[-1])
    report = shown[""]["data"]["data/prepared/report.json"]["data"]
    assert (report["files"], report["kept"], report["refusals"]) == (202, 200, {"no_label": 2})

    run(["dvc", "push"], clone)
    assert any(path.is_file() for path in (tmp_path / "remote").rglob("*"))


def test_the_default_remote_is_a_local_folder_outside_the_repo() -> None:
    default = run(["dvc", "remote", "default"], REPO).strip()
    url = run(["dvc", "remote", "list"], REPO)
    line = next(line for line in url.splitlines() if line.startswith(default))
    location = Path(line.split()[1]).resolve()
    assert not location.is_relative_to(REPO)
    assert location.parent == REPO.parent
