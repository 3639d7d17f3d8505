"""The model card: what an exported model is, how it was made and how well it does, as JSON.

The card sits beside its ONNX file (`model_store.card_path`) and travels with it: into the
registry, into the service (which reads `preprocessing` back from it) and into the README. One
typed model here means every card carries the same fields, checked when it is built.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from catdog.model_store import card_path
from catdog.preprocess import Preprocessing

MODEL_NAME = "catdog"


class Normalisation(BaseModel):
    """Per-channel RGB mean and standard deviation, on the 0..1 scale (as torchvision)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class Quantization(BaseModel):
    """Whether an int8 export was tried, what it cost in accuracy and whether it was kept."""

    attempted: bool
    kept: bool = False
    method: str | None = None
    fp32_accuracy: float | None = None
    int8_accuracy: float | None = None
    accuracy_drop_points: float | None = None
    max_drop_points: float | None = None
    calibration_photos: int = 0
    evaluation_photos: int = 0
    reason: str


class ModelCard(BaseModel):
    """Every field a user, the registry or the service needs to know about one export."""

    model_config = ConfigDict(extra="forbid")

    name: str = MODEL_NAME
    version: str
    architecture: str
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    preprocessing: dict[str, Any]
    input_size: int
    normalisation: Normalisation
    class_order: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_hash: str | None
    git_commit: str | None
    gflops: float = Field(description="2 x multiply-accumulates of conv and linear layers")
    gmacs: float = Field(description="multiply-accumulates of conv and linear layers, x 1e9")
    parameters: int
    training_time_s: float | None
    hardware: Any
    epoch: int | None
    created_at: str
    mlflow_run_id: str | None
    registered_version: str | None
    onnx_file: str
    onnx_sha256: str
    onnx_bytes: int
    opset: int
    exporter: str
    quantized: bool
    quantization: Quantization
    parity_max_abs_diff: float
    parity_photos: int
    # Where pretrained weights came from and their licence; None for a model trained from scratch.
    weights: dict[str, str] | None = None
    # The temperature the cat/dog logits are divided by (fitted on val); ECE is in metrics.
    calibration: dict[str, float] | None = None
    # The not-a-pet answer: output name, recommended threshold, how it was chosen and measured.
    not_a_pet: dict[str, Any] | None = None


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (an ONNX file may be hundreds of megabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def card_version(registered_version: str | None, onnx_sha256: str) -> str:
    """The registry version when there is one; else a name derived from the file's content."""
    return registered_version if registered_version else f"sha-{onnx_sha256[:12]}"


def build_card(
    *,
    onnx_path: Path,
    version: str,
    architecture: str,
    arch_kwargs: dict[str, Any],
    preprocessing: Preprocessing,
    params: dict[str, Any],
    metrics: dict[str, Any],
    extra: dict[str, Any],
    epoch: int | None,
    gflops: float,
    parameters: int,
    opset: int,
    exporter: str,
    quantization: Quantization,
    quantized: bool,
    parity_max_abs_diff: float,
    parity_photos: int,
    registered_version: str | None,
    not_a_pet: dict[str, Any] | None = None,
) -> ModelCard:
    """Assemble the card of the ONNX file at `onnx_path`; `extra` is the checkpoint's provenance."""
    run_id = extra.get("mlflow_run_id")
    return ModelCard(
        version=version,
        architecture=architecture,
        arch_kwargs=arch_kwargs,
        preprocessing=preprocessing.to_dict(),
        input_size=preprocessing.size,
        normalisation=Normalisation(mean=preprocessing.mean, std=preprocessing.std),
        class_order=list(preprocessing.classes),
        params=params,
        metrics=metrics,
        data_hash=extra.get("data_hash"),
        git_commit=extra.get("git_commit"),
        gflops=round(gflops, 6),
        gmacs=round(gflops / 2, 6),
        parameters=parameters,
        training_time_s=extra.get("training_time_s"),
        hardware=extra.get("hardware"),
        epoch=epoch,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        mlflow_run_id=str(run_id) if run_id else None,
        registered_version=registered_version,
        onnx_file=onnx_path.name,
        onnx_sha256=sha256_of(onnx_path),
        onnx_bytes=onnx_path.stat().st_size,
        opset=opset,
        exporter=exporter,
        quantized=quantized,
        quantization=quantization,
        parity_max_abs_diff=parity_max_abs_diff,
        parity_photos=parity_photos,
        weights=(
            {"origin": extra["weights_origin"], "licence": extra["weights_licence"]}
            if extra.get("weights_origin")
            else None
        ),
        calibration=(
            {"temperature": float(arch_kwargs["temperature"])}
            if "temperature" in arch_kwargs
            else None
        ),
        not_a_pet=not_a_pet,
    )


def write_card(card: ModelCard, onnx_path: Path) -> Path:
    """Write the card beside its ONNX file, where `model_store.read_card` looks for it."""
    path = card_path(onnx_path)
    path.write_text(json.dumps(card.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
    return path
