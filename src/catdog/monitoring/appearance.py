"""A photo's appearance, measured on its pixels: what `catdog.monitoring.stats` records.

One function for the training baseline and the live log, computed on a small thumbnail so that
a 12-megapixel upload and a 128-pixel training photo are measured alike. The service's runners
compute a photo's `Look` from the decode they make for the model anyway (`look`), so the event
loop's process never decodes a photo, nor imports NumPy and Pillow to do it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from catdog.errors import DEFAULT_MAX_PIXELS
from catdog.monitoring.stats import THUMBNAIL_SIDE, Look
from catdog.preprocess import Decoded, decode


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


def look(decoded: Decoded) -> Look:
    """A decoded photo's `Look` (any decode scale: the thumbnail evens them out)."""
    brightness, contrast, colourfulness = appearance(decoded.image)
    return Look(decoded.width, decoded.height, brightness, contrast, colourfulness)


def look_of(source: bytes | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Look:
    """A photo file's `Look`, decoded at reduced scale where the format allows: how the drift
    baseline measures the training photos."""
    return look(decode(source, max_pixels=max_pixels, draft_size=THUMBNAIL_SIDE))
