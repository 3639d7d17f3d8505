"""Photo statistics: the runners' look (from the decode they make for the model) measures a
photo as the baseline's thumbnail decode does, so drift compares like with like."""

from __future__ import annotations

from pathlib import Path

import pytest

from catdog.monitoring.appearance import look, look_of
from catdog.preprocess import decode

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "petimages"
MAX_PIXELS = 10**8


@pytest.mark.parametrize("decode_size", [64, 256, 293, 1000])
def test_a_runners_look_matches_the_thumbnail_decode(decode_size: int) -> None:
    photos = sorted(SAMPLES.glob("*/*.jpg"))[::5]
    assert len(photos) >= 30
    for path in photos:
        data = path.read_bytes()
        alone = look_of(data, max_pixels=MAX_PIXELS)
        served = look(decode(data, max_pixels=MAX_PIXELS, draft_size=decode_size))
        assert (served.width, served.height) == (alone.width, alone.height)
        assert served.aspect_ratio == pytest.approx(alone.aspect_ratio)
        for name in ("brightness", "contrast", "colourfulness"):
            # measured over 200 sample photos: at most 0.0063 apart
            assert getattr(served, name) == pytest.approx(getattr(alone, name), abs=0.01), name
