"""Register an ONNX model (default: the reference model catdog ships) in an MLflow registry and
point an alias at it, so that a fresh stack has a `models:/catdog@champion` to serve.

    MLFLOW_TRACKING_URI=http://127.0.0.1:5000 python deploy/mlflow/register_reference.py

The export goes where `catdog export` puts it (the run's `onnx/` artifacts), so the service
resolves the alias exactly as it does for a trained version. An alias that exists is left alone
unless --force. Prints the version the alias points at.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

REFERENCE = Path(__file__).resolve().parents[2] / "src" / "catdog" / "reference"


def register(model_dir: Path, name: str, alias: str, *, force: bool) -> str:
    """Log model.onnx and model.card.json under onnx/ of a new run, register it, set `alias`."""
    client = MlflowClient()
    if not force:
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            pass  # no such alias yet
    mlflow.set_experiment("catdog-registry-seed")
    with (
        mlflow.start_run(run_name="register an export") as run,
        tempfile.TemporaryDirectory() as tmp,
    ):
        staged = Path(tmp) / "onnx"
        staged.mkdir()
        for file in ("model.onnx", "model.card.json"):
            (staged / file).write_bytes((model_dir / file).read_bytes())
        mlflow.log_artifacts(str(staged), artifact_path="onnx")
        source = f"{run.info.artifact_uri}/onnx"
    with contextlib.suppress(MlflowException):  # it exists
        client.create_registered_model(name)
    version = client.create_model_version(name, source, run_id=run.info.run_id)
    client.set_registered_model_alias(name, alias, version.version)
    return str(version.version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REFERENCE, help="model.onnx + card.")
    parser.add_argument("--name", default="catdog")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--force", action="store_true", help="Register even if the alias exists.")
    args = parser.parse_args()
    version = register(args.model_dir, args.name, args.alias, force=args.force)
    print(f"models:/{args.name}@{args.alias} -> version {version}")


if __name__ == "__main__":
    main()
