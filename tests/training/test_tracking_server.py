"""MLFLOW_TRACKING_URI points training and export at a real `mlflow server` on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg2  # type: ignore[import-untyped]
import pytest
from mlflow import MlflowClient
from photo_sets import write_prepared

from catdog.model_store import resolve, sha256_of
from catdog.training.export import ExportParams, export_checkpoint
from catdog.training.loop import train
from catdog.training.params import TrainParams

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
# psycopg2 is the driver installed (dev extra); name it, or SQLAlchemy looks for psycopg 3.
BACKEND = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _admin(sql: str) -> None:
    connection = psycopg2.connect(f"{POSTGRES}/test")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database and an `mlflow server` on it; both gone afterwards."""
    database = f"catdog_train_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {database}")
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"{BACKEND}/{database}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers are stopped with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(tmp_path / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        _stop(server)
        log.close()
        _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


@pytest.mark.slow
@pytest.mark.integration
def test_training_logs_and_export_registers_on_a_tracking_server(
    tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    data = write_prepared(tmp_path / "prepared", {"train": 6, "val": 2, "test": 2}, size=40)
    params = TrainParams(
        data=data,
        arch="simple_cnn",
        arch_options={"width": 8},
        epochs=1,
        batch_size=6,
        device="cpu",
        checkpoint=tmp_path / "models" / "checkpoint.pt",
        last_checkpoint=tmp_path / "models" / "last.pt",
        metrics_file=tmp_path / "models" / "train_metrics.json",
        history_file=tmp_path / "models" / "train_history.csv",
    )
    result = train(params)

    client = MlflowClient(tracking_uri=mlflow_server)
    assert result.run_id is not None
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert "test_accuracy" in run.data.metrics
    assert {a.path for a in client.list_artifacts(result.run_id, "plots")} >= {"plots/curves.png"}

    export = export_checkpoint(
        params.checkpoint, tmp_path / "models", data, ExportParams(quantize=False, parity_photos=4)
    )
    assert export.registered is not None
    version = client.get_model_version("catdog", export.registered.version)
    assert version.run_id == result.run_id
    assert version.tags["training_run_found"] == "true"
    assert {a.path for a in client.list_artifacts(result.run_id, "checkpoint")} == {
        "checkpoint/checkpoint.pt"
    }
    served = resolve(f"models:/catdog/{version.version}", cache_dir=tmp_path / "dl")
    assert served.sha256 == sha256_of(tmp_path / "models" / "model.onnx")
    # Nothing went to the embedded store: the server has it all.
    assert not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "mlartifacts").exists()
    assert any((tmp_path / "server-artifacts").rglob("curves.png"))
    assert any((tmp_path / "server-artifacts").rglob("model.card.json"))
