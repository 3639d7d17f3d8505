"""`torchrun` with two gloo processes on CPU trains one model, and only rank 0 records it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient
from photo_sets import write_prepared

from catdog.training.checkpoint import load_checkpoint

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
@pytest.mark.integration
def test_two_gloo_ranks_train_one_model(tmp_path: Path) -> None:
    data = write_prepared(tmp_path / "prepared", {"train": 9, "val": 3, "test": 3}, size=40)
    (tmp_path / "params.yaml").write_text(
        f"""
train:
  data: {data}
  arch: simple_cnn
  arch_options: {{width: 8}}
  epochs: 2
  batch_size: 4
  device: cpu
  ema_decay: 0.9
  max_minutes: 30          # not reached; every rank then follows rank 0's clock
  checkpoint: {tmp_path}/models/checkpoint.pt
  last_checkpoint: {tmp_path}/models/last.pt
  metrics_file: {tmp_path}/models/train_metrics.json
  history_file: {tmp_path}/models/train_history.csv
"""
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(tmp_path / "params.yaml"),
        str(tmp_path),
    ]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert [r["threads"] for r in ranks] == [max(1, (os.cpu_count() or 1) // 2)] * 2
    # Losses are all-reduced and val is scored on the same weights: one history for both.
    histories = [
        [{k: v for k, v in row.items() if k != "elapsed_s"} for row in r["history"]] for r in ranks
    ]
    assert histories[0] == histories[1]
    first = torch.load(tmp_path / "rank0.pt", weights_only=True)
    second = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for name in first:
        assert torch.equal(first[name], second[name]), name

    # Only rank 0 tracked and saved: one MLflow run, and it is rank 0's.
    assert ranks[0]["run_id"] is not None
    assert ranks[1]["run_id"] is None
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("catdog")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert [run.info.run_id for run in runs] == [ranks[0]["run_id"]]
    last = load_checkpoint(tmp_path / "models" / "last.pt")
    assert last.extra["hardware"]["processes"] == 2
    for name, value in last.model_state.items():
        assert torch.equal(value, first[name]), name
