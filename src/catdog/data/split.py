"""Assigning photos to train, val and test: stable, leakage-free, the same on every machine.

A photo's split is a function of content hashes only: a group of near-duplicates goes where the
salted hash of its smallest sha256 falls in [0, 1) (below 0.8: train, and so on). File names,
input order and the machine play no part. Each class gets 80/10/10 in expectation (stratified by
construction: the hash knows nothing of the class), and adding photos cannot move an unrelated one.

One case needs memory: a new photo that joins an existing near-duplicate group may become its
smallest sha256. So the splits of the previous run (its manifest) are kept: a group that had a
split keeps it, and a new photo that would bridge groups already in different splits is refused
(`split_conflict`) rather than leaking one split into another.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from catdog.data.dedup import connected_components
from catdog.data.params import SPLITS, SplitParams


def bucket(key: str, rule: SplitParams) -> str:
    """The split that the salted hash of `key` falls into."""
    digest = hashlib.sha256(f"{rule.salt}:{key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < rule.train:
        return "train"
    if position < rule.train + rule.val:
        return "val"
    return "test"


@dataclass
class SplitPlan:
    """Where each kept photo (by sha256) goes, and which new photos had to be refused."""

    splits: dict[str, str] = field(default_factory=dict)
    # sha256 of a refused new photo -> the splits of the near-duplicates it would have joined.
    conflicts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Photos whose split comes from the previous run.
    pinned: int = 0
    # sha256 -> previous split, for photos that had to move (only when the grouping rule changed).
    moved: dict[str, str] = field(default_factory=dict)


def assign_splits(
    photos: Iterable[str],
    pairs: Iterable[tuple[str, str]],
    rule: SplitParams,
    previous: Mapping[str, str] | None = None,
) -> SplitPlan:
    """Split photos (sha256) joined by near-duplicate `pairs`, keeping `previous` splits."""
    previous = previous or {}
    pair_list = list(pairs)
    plan = SplitPlan()
    for group in connected_components(photos, pair_list):
        known = {previous[sha] for sha in group if sha in previous}
        if len(known) <= 1:
            split = known.pop() if known else bucket(group[0], rule)
            plan.splits.update(dict.fromkeys(group, split))
            continue
        # New photos that bridge groups of different splits: refuse them, keep the old ones.
        old = [sha for sha in group if sha in previous]
        for sha in group:
            if sha not in previous:
                plan.conflicts[sha] = tuple(sorted(known, key=SPLITS.index))
        for part in connected_components(old, pair_list):
            _keep_together(part, previous, plan)
    plan.pinned = sum(1 for sha in plan.splits if sha in previous)
    return plan


def _keep_together(group: list[str], previous: Mapping[str, str], plan: SplitPlan) -> None:
    """Old photos stay where they were; if a changed rule now groups photos of several splits,
    leakage-freedom wins: the group joins the split most of it is in (ties: train, val, test)."""
    counts = Counter(previous[sha] for sha in group)
    split = max(SPLITS, key=lambda name: (counts[name], -SPLITS.index(name)))
    for sha in group:
        plan.splits[sha] = split
        if previous[sha] != split:
            plan.moved[sha] = previous[sha]
