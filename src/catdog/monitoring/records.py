"""What one answered photo leaves behind, and the ids that name it.

A prediction id starts with its issue time in milliseconds (like a UUIDv7), so feedback for a
prediction already pruned by retention can be told apart from an id that never existed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from catdog.monitoring.stats import Look

ID_LENGTH = 32
_TIME_HEX = 12


def new_prediction_id(now_s: float | None = None) -> str:
    """32 hex digits: 48 bits of Unix milliseconds, then 80 random bits (sorts by time)."""
    ms = int((time.time() if now_s is None else now_s) * 1000)
    return f"{ms:0{_TIME_HEX}x}{secrets.token_hex((ID_LENGTH - _TIME_HEX) // 2)}"


def issued_at(prediction_id: str) -> datetime | None:
    """When a catdog prediction id was issued (naive UTC), or None if it is not one."""
    if len(prediction_id) != ID_LENGTH:
        return None
    try:
        ms = int(prediction_id[:_TIME_HEX], 16)
        int(prediction_id[_TIME_HEX:], 16)
    except ValueError:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def utcnow() -> datetime:
    """Naive UTC: what the store keeps (SQLite has no time zones)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Answered:
    """An answer as the request path hands it to the log: cheap to build, photo by reference."""

    prediction_id: str
    created_at: datetime
    model_version: str
    label: str
    confidence: float
    probabilities: dict[str, float]
    pet_score: float | None
    photo: bytes
    look: Look | None = None  # the photo's look as the runner decoded it; None: no statistics
