"""Where a model comes from: a path, a registry URI, or nothing (the shipped reference model).

`evaluate`, `predict` and `serve` all take "PATH_OR_URI or nothing" and call `resolve`, so the
three always agree on which model they mean, and can say which one it was (`ResolvedModel`).
No model named means the bundled reference model, always: there is no guessing from local files.
Registry URIs need MLflow, imported only then: the torch-free serving install runs local files
without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catdog.errors import ModelError

MODEL_FILE = "model.onnx"
CARD_FILE = "model.card.json"
# The model the project ships (package data): what runs when no model is named.
REFERENCE_DIR = Path(__file__).parent / "reference"
REFERENCE_FILE = "model.int8.onnx"
# Versions registered before exports became MLflow models point at a whole run, whose ONNX
# export lies in this folder.
LEGACY_EXPORT_DIR = "onnx"
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


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (an ONNX file may be hundreds of megabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ResolvedModel:
    """Which model a command runs: what was asked for, the local file, its version and hash."""

    spec: str
    path: Path
    version: str
    sha256: str

    def describe(self) -> dict[str, str]:
        """What a command's JSON says of it (and its stderr line, `model_line`)."""
        return {"spec": self.spec, "version": self.version, "sha256": self.sha256}


def model_line(described: Mapping[str, Any]) -> str:
    """The one stderr line in which every command that scores says which model it used."""
    return (
        f"model: {described['spec']} (version {described['version']}, sha256 {described['sha256']})"
    )


def default_model() -> Path:
    """The shipped reference model: the one rule when no model is named. Its int8 version: as
    accurate on the test split (99.52%, as float32), about twice the images/s of the float32
    file in a one-thread runner and lighter after a load run; `model.onnx` beside it is one
    `--model` away."""
    candidate = REFERENCE_DIR / REFERENCE_FILE
    if not candidate.is_file():
        raise ModelError(
            f"no model given and the reference model {candidate} is missing from this install "
            "(pass --model PATH_OR_URI)"
        )
    return candidate


def resolve(spec: str | Path | None, *, cache_dir: Path | None = None) -> ResolvedModel:
    """Turn a path, a directory, a `models:/` or `runs:/` URI, or None (the reference model)
    into a local ONNX file, and say which version that is."""
    if spec is None or str(spec) == "":
        path = default_model()
        return ResolvedModel(f"reference model {path}", path, _card_version(path), sha256_of(path))
    text = str(spec)
    if text.startswith(REGISTRY_SCHEMES):
        path, version = _download_from_registry(text, cache_dir)
        return ResolvedModel(text, path, version, sha256_of(path))
    path = Path(text)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"model not found: {text}")
    if path.suffix != ".onnx":
        raise ModelError(f"expected an ONNX file (.onnx), got {path.name}")
    return ResolvedModel(str(path), path, _card_version(path), sha256_of(path))


def resolve_model(spec: str | Path | None, *, cache_dir: Path | None = None) -> Path:
    """The local ONNX file of `resolve`."""
    return resolve(spec, cache_dir=cache_dir).path


def _card_version(path: Path) -> str:
    try:
        return str(read_card(path).get("version", "unknown"))
    except ModelError:
        return "unknown (no card)"


def _download_from_registry(uri: str, cache_dir: Path | None) -> tuple[Path, str]:
    """Fetch a registered version (`models:/catdog@champion`, `models:/catdog/3`) or a run's
    artifact (`runs:/ID/onnx`); the version number, or the run, says which one it was."""
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
            name, version = _model_version(uri)
            # The number, not the alias: an alias moved meanwhile cannot mix two versions.
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}", dst_path=str(dst)
            )
        else:
            version = uri.removeprefix("runs:/").split("/")[0]
            local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst))
    except MlflowException as exc:
        raise ModelError(f"cannot fetch {uri} from MLflow: {exc.message}") from exc
    found = Path(local)
    onnx_path = found if found.is_file() else found / MODEL_FILE
    if not onnx_path.is_file() and (found / LEGACY_EXPORT_DIR / MODEL_FILE).is_file():
        onnx_path = found / LEGACY_EXPORT_DIR / MODEL_FILE
    if not onnx_path.is_file():
        raise ModelError(
            f"{uri} holds no {MODEL_FILE}: register an ONNX export (`catdog export`)",
            reason="not_exported",
        )
    return onnx_path, version


def _model_version(uri: str) -> tuple[str, str]:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` to the name and version number."""
    from mlflow import MlflowClient  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    name, _, alias = uri.removeprefix("models:/").partition("@")
    if alias:
        try:
            return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            raise ModelError(f"{uri}: {exc.message}", reason="no_model_version") from exc
    name, _, number = name.partition("/")
    if not number:
        raise ModelError(f"{uri}: name a version or an alias (models:/NAME@ALIAS)")
    return name, number
