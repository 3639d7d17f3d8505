"""MLflow tracking of a training run: params, per-epoch metrics, tags, pictures, the model.

The embedded default is a SQLite store (`sqlite:///mlflow.db`) with artifacts in `./mlartifacts`,
both in the working directory (`mlflow ui --backend-store-uri sqlite:///mlflow.db
--default-artifact-root ./mlartifacts` shows them); MLFLOW_TRACKING_URI points the same code
at a tracking server instead. Only rank 0 of a distributed run tracks; the others get
`NoTracking`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

import catdog
from catdog.errors import TrainingError

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACT_ROOT = Path("mlartifacts")
MODEL_ARTIFACT = "model"


class Tracker(Protocol):
    """What the training loop reports to; MLflow, or nothing."""

    run_id: str | None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def log_folder(self, folder: Path, artifact_path: str) -> None: ...

    def log_model(self, model: nn.Module, example: np.ndarray) -> str | None: ...

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

    def log_model(self, model: nn.Module, example: np.ndarray) -> str | None:
        return None

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


class MlflowTracking:
    """One MLflow run, started on creation; registers the model under `registered_model`."""

    def __init__(
        self,
        *,
        experiment: str,
        params: Mapping[str, Any],
        tags: Mapping[str, str | None],
        registered_model: str | None,
    ) -> None:
        import mlflow  # noqa: PLC0415 - MLflow is slow to import
        from mlflow.exceptions import MlflowException  # noqa: PLC0415

        self._mlflow = mlflow
        self.registered_model = registered_model
        uri = tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:
            experiment_id = self._experiment_id(experiment, uri)
            run = mlflow.start_run(
                experiment_id=experiment_id,
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

    def _experiment_id(self, name: str, uri: str) -> str:
        """The experiment's id, creating it; a local store keeps artifacts in ./mlartifacts."""
        client = self._mlflow.MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = None
        if uri == DEFAULT_TRACKING_URI:
            location = DEFAULT_ARTIFACT_ROOT.resolve().as_uri()
        return str(client.create_experiment(name, artifact_location=location))

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics(dict(metrics), step=epoch)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        self._mlflow.log_metrics(dict(metrics))

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self._mlflow.log_artifacts(str(folder), artifact_path=artifact_path)

    def log_model(self, model: nn.Module, example: np.ndarray) -> str | None:
        """Log a model that outputs probabilities (cat, dog) and reloads for any batch size.

        The pickle format, not MLflow's default `pt2`: an exported program fixes the batch size
        to the input example's. Requirements are given, not inferred (inference imports the
        model in a subprocess and takes minutes on a small CPU).
        """
        from mlflow.models import infer_signature  # noqa: PLC0415

        probabilities = nn.Sequential(model, nn.Softmax(dim=1)).eval().cpu()
        with torch.no_grad():
            output = probabilities(torch.from_numpy(example)).numpy()
        info = self._mlflow.pytorch.log_model(
            probabilities,
            name=MODEL_ARTIFACT,
            serialization_format="pickle",
            signature=infer_signature(example, output),
            input_example=example,
            registered_model_name=self.registered_model,
            pip_requirements=[
                f"torch=={torch.__version__.split('+')[0]}",
                f"catdog=={catdog.__version__}",
            ],
        )
        version = info.registered_model_version
        return str(version) if version is not None else None

    def end(self, *, failed: bool = False) -> None:
        self._mlflow.end_run(status="FAILED" if failed else "FINISHED")
