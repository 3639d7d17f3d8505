"""The pipeline under real DVC, in fresh git repositories: complete, restorable, and a demo run
that leaves the work tree as it found it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
# The modules each stage's command imports first; what they import in turn is found by Python.
STAGE_ENTRY_MODULES = {
    "download": ["catdog.data.cli", "catdog.data.download"],
    "prepare": ["catdog.data.cli", "catdog.data.prepare", "catdog.data.report"],
    "train": ["catdog.training.cli", "catdog.training.loop"],
    "evaluate": ["catdog.training.commands", "catdog.training.evaluate"],
    "export": [
        "catdog.training.commands",
        "catdog.training.export",
        "catdog.monitoring.baseline_export",  # imported when the export writes it
    ],
    "promote": ["catdog.training.commands", "catdog.training.registry"],
}
# The demo's training, made tiny: the pipeline is under test here, not the model.
TINY = {
    "arch": "simple_cnn",
    "arch_options": {"width": 8},
    "pretrained": False,
    "image_size": 32,
    "epochs": 1,
    "batch_size": 32,
    "device": "cpu",
    "augment": {"crop_size": 32},
}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run a command with the venv's tools first on PATH and no calls home; return its output."""
    environment = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DO_NOT_TRACK": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    done = subprocess.run(
        command,
        cwd=cwd,
        env=environment | (env or {}),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _project(root: Path, stages: list[str] | None = None) -> Path:
    """A git repository holding the sources, the sample, params (tiny training) and pipeline."""
    shutil.copytree(REPO / "samples" / "petimages", root / "samples" / "petimages")
    shutil.copytree(
        REPO / "src" / "catdog",
        root / "src" / "catdog",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in (".dvcignore", ".gitignore"):
        shutil.copyfile(REPO / name, root / name)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"] |= TINY
    params["export"] |= {"parity_photos": 4, "quantize": False}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    if stages is not None:
        pipeline = {"stages": {name: pipeline["stages"][name] for name in stages}}
    (root / "dvc.yaml").write_text(yaml.safe_dump(pipeline))
    run([*GIT, "init", "-q"], root)
    run(["dvc", "init", "-q"], root)
    run(["dvc", "remote", "add", "-d", "local", str(root.parent / "remote")], root)
    run([*GIT, "add", "-A"], root)
    run([*GIT, "commit", "-qm", "pipeline"], root)
    return root


@pytest.mark.parametrize("stage", sorted(STAGE_ENTRY_MODULES))
def test_each_stage_declares_every_module_it_runs(stage: str) -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {STAGE_ENTRY_MODULES[stage]!r}: importlib.import_module(name)\n"
        "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
        "if n.split('.')[0] == 'catdog' and m.__file__))\n"
    )
    files = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    deps = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]["deps"]
    declared = [REPO / dep for dep in deps]
    for file in files:
        path = Path(file).resolve()
        assert any(path == dep or path.is_relative_to(dep) for dep in declared), (
            f"stage {stage} runs {path.relative_to(REPO)} but does not declare it"
        )


@pytest.mark.integration
@pytest.mark.slow
def test_the_data_stages_run_once_then_are_a_no_op(tmp_path: Path) -> None:
    clone = _project(tmp_path / "clone", ["download", "prepare"])
    first = run(["dvc", "repro"], clone)
    assert "Running stage 'download'" in first and "Running stage 'prepare'" in first
    assert (clone / "data" / "prepared" / "manifest.csv").exists()
    second = run(["dvc", "repro"], clone)
    assert "Running stage" not in second

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], clone).splitlines()[-1])
    report = shown[""]["data"]["data/prepared/report.json"]["data"]
    assert (report["files"], report["kept"], report["refusals"]) == (202, 200, {"no_label": 2})


@pytest.mark.integration
@pytest.mark.slow
def test_a_clone_restores_everything_with_dvc_pull_and_a_demo_run_leaves_it_clean(
    tmp_path: Path,
) -> None:
    origin = _project(tmp_path / "origin")
    registry = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    ran = run(["dvc", "repro"], origin, registry)
    for stage in STAGE_ENTRY_MODULES:
        assert f"Running stage '{stage}'" in ran
    # Every file the stages wrote is one DVC keeps (an output or a metric): a file left out
    # would neither reach a clone nor be seen to go stale. The registry lives outside.
    stages = yaml.safe_load((origin / "dvc.yaml").read_text())["stages"].values()
    declared = [
        origin / name
        for stage in stages
        for key in ("outs", "metrics")
        for entry in stage.get(key, [])
        for name in (entry if isinstance(entry, dict) else [entry])  # `path: {options}`
    ]
    written = run([*GIT, "ls-files", "--others", "--ignored", "--exclude-standard"], origin)
    assert {"models/model.onnx", "data/prepared/manifest.csv"} <= set(written.split())
    for name in written.split():
        path = origin / name
        if name.startswith((".dvc/", "mlartifacts/", "mlruns/")):
            continue
        assert any(path == d or path.is_relative_to(d) for d in declared), f"{name} undeclared"
    run([*GIT, "add", "dvc.lock"], origin)
    run([*GIT, "commit", "-qm", "results"], origin)
    run(["dvc", "push"], origin)
    committed_lock = (origin / "dvc.lock").read_text()

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    # The demo's way: a DVC experiment in a temporary copy runs every stage (this clone has no
    # cache yet), registers its model, and changes nothing in the work tree.
    demo = run(["dvc", "exp", "run", "--temp"], clone, registry)
    assert "Running stage 'train'" in demo and "Running stage 'export'" in demo
    assert run(["git", "status", "--porcelain"], clone) == ""
    assert (clone / "dvc.lock").read_text() == committed_lock
    assert "refs/exps/" in run(["git", "for-each-ref"], clone)
    registered = run(
        [sys.executable, "-c", "import mlflow; print(len(mlflow.search_model_versions()))"],
        clone,
        registry,
    )
    assert registered.split()[-1] == "2"  # origin's version and the demo's

    # Everything the pipeline wrote comes back from the remote: nothing left to run.
    run(["dvc", "pull"], clone)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone)
    again = run(["dvc", "repro"], clone)
    assert "Running stage" not in again
    assert run(["git", "status", "--porcelain"], clone) == ""
    for output in ("data/prepared/report.json", "models/last.pt", "models/int8"):
        assert (clone / output).exists()
    record = json.loads((clone / "models" / "registration.json").read_text())
    assert (record["registered"], record["version"]) == (True, "1")


def test_the_default_remote_is_a_local_folder_outside_the_repo() -> None:
    default = run(["dvc", "remote", "default"], REPO).strip()
    url = run(["dvc", "remote", "list"], REPO)
    line = next(line for line in url.splitlines() if line.startswith(default))
    location = Path(line.split()[1]).resolve()
    assert not location.is_relative_to(REPO)
    assert location.parent == REPO.parent
