"""Cheap statistics of an input photo: what drift is measured on.

One function for the training baseline and the live log, computed on a small thumbnail so that
a 12-megapixel upload and a 128-pixel training photo are measured alike. The service's runners
compute a photo's `Look` from the decode they make for the model anyway (`look`), so that the
prediction log never decodes a photo a second time.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from catdog.preprocess import Decoded, decode

THUMBNAIL_SIDE = 64
# The statistics drift is measured on, all in [0, 1] except the aspect ratio (width / height).
STATISTICS = ("brightness", "contrast", "colourfulness", "aspect_ratio")


@dataclass(frozen=True)
class PhotoStats:
    """A photo's identity and appearance, never its pixels."""

    sha256: str
    bytes: int
    width: int
    height: int
    brightness: float
    contrast: float
    colourfulness: float
    aspect_ratio: float

    def as_dict(self) -> dict[str, float | int | str]:
        """Column name -> value."""
        return asdict(self)


def appearance(img: Image.Image) -> tuple[float, float, float]:
    """Brightness (mean luma), contrast (luma standard deviation) and colourfulness (Hasler and
    Süsstrunk 2003), each divided by 255, on a thumbnail of at most THUMBNAIL_SIDE pixels."""
    small = img.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.BOX)
    rgb = np.asarray(small.convert("RGB"), dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    return float(luma.mean() / 255), float(luma.std() / 255), float(colourfulness / 255)


@dataclass(frozen=True)
class Look:
    """What a photo looks like: its upright size and appearance, without its bytes' identity."""

    width: int
    height: int
    brightness: float
    contrast: float
    colourfulness: float


def look(decoded: Decoded) -> Look:
    """A decoded photo's `Look` (any decode scale: the thumbnail evens them out)."""
    brightness, contrast, colourfulness = appearance(decoded.image)
    return Look(decoded.width, decoded.height, brightness, contrast, colourfulness)


def photo_stats(data: bytes, *, max_pixels: int, seen: Look | None = None) -> PhotoStats:
    """Statistics of an uploaded file: its `Look` as a runner saw it, or decoded here at
    reduced scale where the format allows."""
    if seen is None:
        seen = look(decode(data, max_pixels=max_pixels, draft_size=THUMBNAIL_SIDE))
    return PhotoStats(
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        width=seen.width,
        height=seen.height,
        brightness=seen.brightness,
        contrast=seen.contrast,
        colourfulness=seen.colourfulness,
        aspect_ratio=seen.width / seen.height,
    )
