"""MLflow tracking of a training run: params, per-epoch metrics, tags and pictures.

The model itself is logged and registered by `catdog export` (registry.register_export): what is
registered is the ONNX file that is served, not the PyTorch weights. The embedded default is a
SQLite store (`sqlite:///mlflow.db`) with artifacts in `mlartifacts/` beside the database file
(`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows them); MLFLOW_TRACKING_URI points the
same code at a tracking server instead. Only rank 0 of a distributed run tracks; the others get
`NoTracking`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from catdog.errors import TrainingError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
ARTIFACT_FOLDER = "mlartifacts"


class Tracker(Protocol):
    """What the training loop reports to; MLflow, or nothing."""

    run_id: str | None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def log_folder(self, folder: Path, artifact_path: str) -> None: ...

    def end(self, *, failed: bool = False) -> None: ...


class NoTracking:
    """Tracking turned off (or a rank other than 0): every report is dropped on purpose."""

    run_id: str | None = None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        return

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        return

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        return

    def end(self, *, failed: bool = False) -> None:
        return


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def git_commit() -> str | None:
    """The checked-out commit, or None outside a git work tree."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested params as MLflow's flat string params: {"augment": {"hflip": 1}} -> augment.hflip."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = str(value)
    return flat


def experiment_id(name: str, uri: str) -> str:
    """The experiment's id, creating it. A SQLite store keeps its artifacts in `mlartifacts/`
    beside the database file, wherever the command runs (a DVC experiment runs elsewhere)."""
    from mlflow import MlflowClient  # noqa: PLC0415 - MLflow is slow to import

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        location = (database.resolve().parent / ARTIFACT_FOLDER).as_uri()
    return str(client.create_experiment(name, artifact_location=location))


class MlflowTracking:
    """One MLflow run, started on creation."""

    def __init__(
        self,
        *,
        experiment: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str | None],
    ) -> None:
        import mlflow  # noqa: PLC0415 - MLflow is slow to import
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        self._mlflow = mlflow
        uri = tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:
            run = mlflow.start_run(
                experiment_id=experiment_id(experiment, uri),
                tags={k: v for k, v in tags.items() if v is not None},
            )
            mlflow.log_params(flatten(params))
        except (MlflowException, OSError) as exc:
            raise TrainingError(
                f"cannot start an MLflow run at {uri}: {exc} (is the tracking server up? "
                "unset MLFLOW_TRACKING_URI for the local store, or set train.tracking: false)",
                reason="tracking_unavailable",
            ) from exc
        self.run_id: str | None = run.info.run_id

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics(dict(metrics), step=epoch)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics(dict(metrics))

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self._mlflow.log_artifacts(str(folder), artifact_path=artifact_path)

    def end(self, *, failed: bool = False) -> None:
        self._mlflow.end_run(status="FAILED" if failed else "FINISHED")
