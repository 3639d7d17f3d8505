"""Near-duplicates: re-encoded or resized copies of real photos are caught, distinct ones not."""

from __future__ import annotations

import io
from itertools import combinations
from pathlib import Path

import imagehash
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from petfiles import hamming, stage_phash
from PIL import Image

from catdog.data.dedup import connected_components, near_duplicate_pairs, perceptual_hash
from catdog.data.params import DataParams

THRESHOLD = DataParams().near_duplicate_distance


def fingerprint(data: bytes) -> int:
    """What the data stage computes for a file with the default parameters."""
    return stage_phash(data, DataParams())


def reencoded(data: bytes, change: str) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    buffer = io.BytesIO()
    if change == "quality 40":
        image.save(buffer, format="JPEG", quality=40)
    elif change == "png":
        image.save(buffer, format="PNG")
    elif change == "80% smaller":
        image.resize((width * 4 // 5, height * 4 // 5), Image.Resampling.BICUBIC).save(
            buffer, format="JPEG", quality=85
        )
    elif change == "half size":
        image.reduce(2).save(buffer, format="JPEG", quality=90)
    elif change == "1.5x larger":
        image.resize((width * 3 // 2, height * 3 // 2)).save(buffer, format="JPEG", quality=85)
    elif change == "1 pixel cropped":
        image.crop((1, 0, width, height - 1)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def test_same_algorithm_as_imagehash() -> None:
    # On a 32x32 grey image the thumbnail step is the identity: the DCT, median and bit order
    # must then give exactly imagehash's pHash.
    rng = np.random.default_rng(1)
    for _ in range(20):
        image = Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8))
        assert perceptual_hash(image) == int(str(imagehash.phash(image)), 16)


@pytest.mark.parametrize(
    "change", ["quality 40", "png", "80% smaller", "half size", "1.5x larger", "1 pixel cropped"]
)
def test_reencoded_real_photos_are_near_duplicates(sample_photos: list[Path], change: str) -> None:
    for photo in sample_photos[::20]:
        original = photo.read_bytes()
        copy = reencoded(original, change)
        assert copy != original
        assert hamming(fingerprint(original), fingerprint(copy)) <= THRESHOLD, photo.name


def test_distinct_real_photos_are_not_merged(sample_photos: list[Path]) -> None:
    hashes = [fingerprint(photo.read_bytes()) for photo in sample_photos]
    assert near_duplicate_pairs(hashes, THRESHOLD) == []


@given(
    st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=40),
    st.integers(min_value=0, max_value=64),
)
def test_pairs_match_brute_force(hashes: list[int], max_distance: int) -> None:
    # Clustered values too, so that small distances occur.
    values = hashes + [value ^ (1 << (value % 64)) for value in hashes[:10]]
    expected = [
        (i, j)
        for i, j in combinations(range(len(values)), 2)
        if hamming(values[i], values[j]) <= max_distance
    ]
    assert sorted(near_duplicate_pairs(values, max_distance)) == expected


def test_pairs_across_blocks() -> None:
    values = [7] * 300 + [2**64 - 1 - 7] + [7 ^ 0b11]
    pairs = set(near_duplicate_pairs(values, 2))
    assert (0, 301) in pairs and (299, 301) in pairs
    assert not any(300 in pair for pair in pairs)
    assert len(pairs) == 301 * 300 // 2


def test_components_are_transitive_and_ordered() -> None:
    nodes = ["e", "d", "c", "b", "a", "z"]
    pairs = [("a", "c"), ("c", "e"), ("d", "b"), ("a", "unknown")]
    assert connected_components(nodes, pairs) == [["a", "c", "e"], ["b", "d"], ["z"]]
