"""The drift baseline: what the model saw in training, saved beside the exported model.

`catdog export` computes it on the training photos (`catdog.monitoring.baseline_export`: their
statistics, the model's predicted classes and confidences on them) and writes
`<model>.baseline.json`; `catdog monitor` compares live traffic with it, and the service shows its
means and spreads in /metrics for the alerts. Reading it needs no NumPy: the service does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from catdog.errors import MonitorError

BASELINE_SUFFIX = ".baseline.json"


class Summary(BaseModel):
    """One quantity on the training photos: its mean, spread and a sample of its values."""

    mean: float
    stddev: float
    values: list[float]


class Baseline(BaseModel):
    """The reference that live inputs and answers are compared with."""

    model_version: str
    photos: int
    source: str = Field(description="The photo folder it was computed on (relative).")
    statistics: dict[str, Summary]
    predicted_ratio: dict[str, float]
    confidence: Summary


def baseline_path(model_path: Path) -> Path:
    """models/model.onnx -> models/model.baseline.json."""
    return model_path.with_name(model_path.stem + BASELINE_SUFFIX)


def load_baseline(path: Path) -> Baseline:
    """Read a baseline file, or raise MonitorError saying what is wrong."""
    try:
        return Baseline.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MonitorError(f"cannot read the drift baseline {path}: {exc}") from exc


def load_baseline_beside(model_path: Path) -> Baseline | None:
    """The baseline beside a model, or None when there is none (or it is unreadable)."""
    path = baseline_path(model_path)
    try:
        return load_baseline(path) if path.exists() else None
    except MonitorError:
        return None


def write_baseline(baseline: Baseline, model_path: Path) -> Path:
    """Write the baseline beside its model; returns the path."""
    path = baseline_path(model_path)
    data: dict[str, Any] = baseline.model_dump()
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path
