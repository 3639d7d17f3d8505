"""Finding copies: exact ones by content hash, near ones by perceptual hash, and their groups.

A re-encoded or slightly resized copy of a photo has a different sha256 but almost the same
64-bit perceptual hash; pairs within a small Hamming distance are joined, and the connected
components are the duplicate groups that must never be split across train, val and test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import numpy as np
from PIL import Image

# Photos are grouped by index or by sha256.
Node = TypeVar("Node", int, str)

# The 8 lowest frequencies of a 32-point DCT-II, as a matrix: 8 x 32 @ 32 x 32 @ 32 x 8.
_THUMB = 32
_DCT_LOW = np.cos(
    np.pi * np.arange(8)[:, None] * (2 * np.arange(_THUMB)[None, :] + 1) / (2 * _THUMB)
)

_MIDDLE = (31, 32)  # the two middle ranks of the 64 low frequencies

# Rows compared at once: 256 x 25,000 XORs of 8 bytes is about 50 MB, fast and bounded.
_BLOCK_ROWS = 256


def perceptual_hash(image: Image.Image) -> int:
    """64-bit pHash: which of the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail are above
    their median. The algorithm of `imagehash.phash`, with a box-filter thumbnail and NumPy for the
    DCT: a few times faster, and no SciPy to import in every worker process.
    """
    grey = image.convert("L")
    factor = grey.width // _THUMB
    if grey.size == (factor * _THUMB, factor * _THUMB):
        grey = grey.reduce(factor)  # box filter too (rounding within 1 level), a third faster
    else:
        grey = grey.resize((_THUMB, _THUMB), Image.Resampling.BOX)
    low = (_DCT_LOW @ np.asarray(grey, dtype=np.float64) @ _DCT_LOW.T).ravel()
    # The median of 64 values, without np.median's overhead (a tenth of a millisecond a photo).
    median = np.partition(low, _MIDDLE)[list(_MIDDLE)].mean()
    bits = np.packbits(low > median)
    return int.from_bytes(bits.tobytes(), "big")


def near_duplicate_pairs(hashes: Sequence[int], max_distance: int) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose 64-bit hashes differ in at most `max_distance` bits."""
    values = np.asarray(hashes, dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), _BLOCK_ROWS):
        rows = values[start : start + _BLOCK_ROWS]
        # Compare each row only with itself and later hashes: every pair once.
        near = np.bitwise_count(rows[:, None] ^ values[None, start:]) <= max_distance
        if np.count_nonzero(near) == len(rows):  # each row is near itself, and nothing else
            continue
        row_index, column_index = np.nonzero(near)
        for i, j in zip(row_index.tolist(), column_index.tolist(), strict=True):
            if j > i:
                pairs.append((start + i, start + j))
    return pairs


def connected_components(
    nodes: Iterable[Node], pairs: Iterable[tuple[Node, Node]]
) -> list[list[Node]]:
    """The groups that `pairs` join `nodes` into (union-find); pairs naming other nodes are ignored.

    Each group is sorted and groups are sorted by their first member, so the result depends only
    on the inputs, not on their order.
    """
    parent: dict[Node, Node] = {node: node for node in nodes}

    def root(node: Node) -> Node:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for first, second in pairs:
        if first in parent and second in parent:
            parent[root(first)] = root(second)
    groups: dict[Node, list[Node]] = {}
    for node in parent:
        groups.setdefault(root(node), []).append(node)
    return sorted((sorted(group) for group in groups.values()), key=lambda group: group[0])
