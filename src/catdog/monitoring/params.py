"""The `monitor:` section of params.yaml: what `catdog monitor report` and `check` judge by."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class MonitorParams(BaseModel):
    """Thresholds of the retraining trigger and where the inputs live."""

    model_config = ConfigDict(extra="forbid")

    database_url: str | None = Field(
        None, description="The store to read; null = $CATDOG_DATABASE_URL, else the SQLite file."
    )
    baseline: Path = Path("models/model.baseline.json")
    window_days: float = Field(7.0, gt=0, description="Default window: the last N days.")
    min_accuracy: float = Field(0.8, ge=0, le=1)
    min_labelled: int = Field(
        30, ge=1, description="Labelled predictions needed to judge accuracy."
    )
    min_predictions: int = Field(
        50, ge=1, description="Distinct photos (by sha256) needed to judge drift."
    )
    drift_p_value: float = Field(
        0.01, gt=0, lt=1, description="A KS test below this p-value is drift..."
    )
    drift_psi: float = Field(0.25, gt=0, description="...when the PSI is also above this.")
    max_drifted: int = Field(
        1, ge=1, description="Drifted quantities (of inputs, class ratio, confidence) that fail."
    )
    psi_bins: int = Field(10, ge=2)
