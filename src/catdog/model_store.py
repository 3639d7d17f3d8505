"""Where a model comes from: a path, a registry URI, or nothing (the shipped reference model).

`evaluate`, `predict` and `serve` all take "PATH_OR_URI or nothing" and call `resolve_model`, so
the three always agree on which model they mean. Registry URIs need MLflow, imported only then:
the torch-free serving install runs local files without it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from catdog.errors import ModelError

MODEL_FILE = "model.onnx"
CARD_FILE = "model.card.json"
# The model the project ships (package data) and the newest local export of the pipeline.
REFERENCE_DIR = Path(__file__).parent / "reference"
LOCAL_EXPORT_DIR = Path("models")
# Registered versions carry their ONNX export as run artifacts under this folder.
ONNX_ARTIFACT_DIR = "onnx"
REGISTRY_SCHEMES = ("models:/", "runs:/")


def card_path(onnx_path: Path) -> Path:
    """The card of an ONNX file, beside it: `model.onnx` -> `model.card.json`, and likewise
    `model.int8.onnx` -> `model.int8.card.json`, so two exports can share a folder."""
    return onnx_path.with_name(onnx_path.name.removesuffix(".onnx") + ".card.json")


def read_card(onnx_path: Path) -> dict[str, Any]:
    """The model card beside `onnx_path`; a model without one cannot be served or evaluated.

    Any other ONNX file without a card of its own falls back to the folder's `model.card.json`.
    """
    path = card_path(onnx_path)
    if not path.is_file() and onnx_path.with_name(CARD_FILE).is_file():
        path = onnx_path.with_name(CARD_FILE)
    try:
        card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"no model card beside {onnx_path} (expected {path})") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"model card {path} is not valid JSON: {exc}") from exc
    return card


def default_model() -> Path:
    """The shipped reference model, else the newest local export, else a clear error."""
    for folder in (REFERENCE_DIR, LOCAL_EXPORT_DIR):
        candidate = folder / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(
        "no model given and none found: no shipped reference model and no local export in "
        f"{LOCAL_EXPORT_DIR}/ (run `catdog export`, or pass --model PATH_OR_URI)"
    )


def resolve_model(spec: str | Path | None, *, cache_dir: Path | None = None) -> Path:
    """Turn a path, a directory, a `models:/` or `runs:/` URI, or None into a local ONNX path."""
    if spec is None or str(spec) == "":
        return default_model()
    text = str(spec)
    if text.startswith(REGISTRY_SCHEMES):
        return _download_from_registry(text, cache_dir)
    path = Path(text)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"model not found: {text}")
    if path.suffix != ".onnx":
        raise ModelError(f"expected an ONNX file (.onnx), got {path.name}")
    return path


def _download_from_registry(uri: str, cache_dir: Path | None) -> Path:
    """Fetch the ONNX export of a registered version (`models:/catdog@champion`) or a run."""
    try:
        import mlflow  # noqa: PLC0415 - optional: only registry URIs need it
        from mlflow.exceptions import MlflowException  # noqa: PLC0415
    except ImportError as exc:
        raise ModelError(
            f"{uri} is a registry URI and needs MLflow: pip install 'catdog[train]'"
        ) from exc
    dst = cache_dir or Path(tempfile.mkdtemp(prefix="catdog-model-"))
    # MLflow draws a progress bar per download even off a terminal; catdog has its own output.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        if uri.startswith("models:/"):
            run_id = _run_of_model_version(uri)
            if not mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path=ONNX_ARTIFACT_DIR):
                raise ModelError(
                    f"{uri} has no {ONNX_ARTIFACT_DIR}/{MODEL_FILE}: export it first "
                    "(`catdog export` attaches it to the training run)",
                    reason="not_exported",
                )
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=ONNX_ARTIFACT_DIR, dst_path=str(dst)
            )
        else:
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    except MlflowException as exc:
        raise ModelError(f"cannot fetch {uri} from MLflow: {exc.message}") from exc
    found = Path(local)
    onnx_path = found if found.is_file() else found / MODEL_FILE
    if not onnx_path.is_file():
        raise ModelError(f"{uri} has no {ONNX_ARTIFACT_DIR}/{MODEL_FILE}: export it first")
    return onnx_path


def _run_of_model_version(uri: str) -> str:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` to the id of the run that made it."""
    from mlflow import MlflowClient  # noqa: PLC0415

    name, _, ref = uri.removeprefix("models:/").partition("@")
    client = MlflowClient()
    if ref:
        version = client.get_model_version_by_alias(name, ref)
    else:
        name, _, number = name.partition("/")
        if not number:
            raise ModelError(f"{uri}: name a version or an alias (models:/NAME@ALIAS)")
        version = client.get_model_version(name, number)
    if not version.run_id:
        raise ModelError(f"{uri} has no run to take its ONNX export from")
    return str(version.run_id)
