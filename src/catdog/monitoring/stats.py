"""Cheap statistics of an input photo: what drift is measured on.

Only the records live here, free of NumPy and Pillow: the service's event-loop process writes
them. The measuring is `catdog.monitoring.appearance`, which the runners and the training
baseline run on their own decodes.
"""

from __future__ import annotations

from dataclasses import dataclass

THUMBNAIL_SIDE = 64
# The statistics drift is measured on, all in [0, 1] except the aspect ratio (width / height).
STATISTICS = ("brightness", "contrast", "colourfulness", "aspect_ratio")


@dataclass(frozen=True)
class Look:
    """What a photo looks like: its upright size and appearance, without its bytes' identity."""

    width: int
    height: int
    brightness: float
    contrast: float
    colourfulness: float

    @property
    def aspect_ratio(self) -> float:
        """Width / height, as shown."""
        return self.width / self.height

    def columns(self) -> dict[str, float | int]:
        """The prediction log's columns: the size and every statistic of STATISTICS."""
        return {"width": self.width, "height": self.height} | {
            name: getattr(self, name) for name in STATISTICS
        }
