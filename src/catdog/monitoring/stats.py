"""Cheap statistics of an input photo: what drift is measured on.

Only the records live here, free of NumPy and Pillow: the service's event-loop process writes
them. The measuring is `catdog.monitoring.appearance`, which the runners and the training
baseline run on their own decodes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

THUMBNAIL_SIDE = 64
# The statistics drift is measured on, all in [0, 1] except the aspect ratio (width / height).
STATISTICS = ("brightness", "contrast", "colourfulness", "aspect_ratio")


@dataclass(frozen=True)
class PhotoStats:
    """A photo's size and appearance, never its pixels."""

    width: int
    height: int
    brightness: float
    contrast: float
    colourfulness: float
    aspect_ratio: float

    def as_dict(self) -> dict[str, float | int | str]:
        """Column name -> value."""
        return asdict(self)


@dataclass(frozen=True)
class Look:
    """What a photo looks like: its upright size and appearance, without its bytes' identity."""

    width: int
    height: int
    brightness: float
    contrast: float
    colourfulness: float


def photo_stats(seen: Look) -> PhotoStats:
    """The statistics the prediction log keeps of a photo, from its `Look` as it was decoded."""
    return PhotoStats(
        width=seen.width,
        height=seen.height,
        brightness=seen.brightness,
        contrast=seen.contrast,
        colourfulness=seen.colourfulness,
        aspect_ratio=seen.width / seen.height,
    )
