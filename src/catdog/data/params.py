"""The `data:` section of params.yaml: every knob of the data stage, validated in one place."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SPLITS: tuple[str, ...] = ("train", "val", "test")


class SplitParams(BaseModel):
    """Split fractions and the salt of the split hash: change either and every photo is re-split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: float = Field(0.8, gt=0, le=1)
    val: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    salt: str = Field("catdog-4", min_length=1)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitParams:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must be 1, not {total:g}")
        return self

    def rule_id(self) -> str:
        """A short fingerprint of the rule, written beside each split: a rerun knows if it holds."""
        canonical = json.dumps(self.model_dump(), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class DataParams(BaseModel):
    """How raw photos become the prepared data set."""

    model_config = ConfigDict(extra="forbid")

    image_size: int = Field(128, ge=8, le=4096)
    # Area averaging: a quarter cheaper than bilinear in the costliest step, and at 224 px as
    # close to an ideal LANCZOS resize as the plain way's own output (README, data-stage figures).
    # The model's own resize, in training and serving, is set apart in its Preprocessing.
    resample: Literal["nearest", "box", "bilinear", "bicubic", "lanczos"] = "box"
    jpeg_quality: int = Field(95, ge=1, le=100)
    # A 12-megapixel phone photo passes; a decompression bomb does not.
    max_pixels: int = Field(40_000_000, gt=0)
    max_file_bytes: int = Field(50 * 1024 * 1024, gt=0)
    # Hamming distance between 64-bit perceptual hashes. Re-encoded or resized copies of the
    # petimages-8k photos land at 0-4; the closest distinct photos in that set at 8 and above.
    near_duplicate_distance: int = Field(6, ge=0, le=64)
    # Photos in groups filed under both labels are all refused; more than this fraction of the
    # input files fails the stage (mislabelled folders rather than a few stray copies).
    max_label_conflict_fraction: float = Field(0.01, ge=0, le=1)
    split: SplitParams = SplitParams()
    # Worker processes; 0 means one per CPU core.
    workers: int = Field(0, ge=0)

    def worker_count(self) -> int:
        """The number of processes to run: `workers`, or every core this process may use."""
        if self.workers:
            return self.workers
        return (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
