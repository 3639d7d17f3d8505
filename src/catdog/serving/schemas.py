"""The JSON the service answers with; also what /docs shows a client developer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    """Every refusal: a stable machine-readable reason and a sentence for a person."""

    error: str = Field(examples=["not_an_image"])
    detail: str = Field(examples=["not a recognised image format"])


class PredictionOut(BaseModel):
    """One photo's answer."""

    label: str = Field(examples=["cat"])
    confidence: float = Field(ge=0, le=1, examples=[0.97])
    probabilities: dict[str, float] = Field(examples=[{"cat": 0.97, "dog": 0.03}])
    is_pet: bool | None = Field(
        default=None,
        description="False when the photo shows neither a cat nor a dog (pet_score below "
        "CATDOG_PET_THRESHOLD); null for a model without a not-a-pet head.",
    )
    pet_score: float | None = Field(
        default=None, ge=0, le=1, description="How sure the model is that the photo shows a pet."
    )
    prediction_id: str = Field(description="Quote it to find this answer in the logs.")
    model_version: str
    latency_ms: float = Field(description="Time in the service, decoding included.")
    batch_size: int = Field(description="Images that shared this model run.")


class FilePrediction(PredictionOut):
    """A /predict/batch file that was classified."""

    filename: str | None


class FileError(ErrorOut):
    """A /predict/batch file that was refused, with the status it alone would have got."""

    filename: str | None
    status: int = Field(examples=[422])


class BatchOut(BaseModel):
    """One entry per uploaded file, in upload order."""

    results: list[FilePrediction | FileError]
    latency_ms: float


class ReloadIn(BaseModel):
    """What to serve next: a path, a directory, a models:/ or runs:/ URI; null = reference."""

    model: str | None = Field(examples=["models:/catdog@champion", "models/model.onnx"])


class ReloadOut(BaseModel):
    """The swap that happened."""

    model_version: str
    previous_version: str | None
    model: str | None
    workers: str = Field(description="Whether other worker processes follow, and how.")


class StatusOut(BaseModel):
    """Liveness and readiness answers."""

    status: str = Field(examples=["ok"])
    model_version: str | None = None
    store: str | None = Field(
        default=None,
        description="/health: the prediction store, `ok`, `starting` or `degraded` (rows are "
        "being dropped; predictions go on).",
    )


class FeedbackIn(BaseModel):
    """The true label of an answered photo, as a person confirmed it."""

    prediction_id: str = Field(min_length=1, max_length=64, examples=["0193a4c2e1f04b6c9d2e"])
    label: str = Field(min_length=1, max_length=64, examples=["dog"])


class FeedbackOut(BaseModel):
    """The feedback as stored (committed before this answer is sent)."""

    prediction_id: str
    label: str
    predicted: str
    correct: bool
    model_version: str
    replaced: bool = Field(description="True when an earlier answer for this id was replaced.")


ModelCard = dict[str, Any]
