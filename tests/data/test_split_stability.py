"""The split: stable when photos are added, never leaking a group, the same in any order."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from catdog.data.params import SPLITS, SplitParams
from catdog.data.split import SplitPlan, assign_splits, bucket

RULE = SplitParams()
Pairs = list[tuple[str, str]]


def sha(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


@st.composite
def growing_collection(draw: st.DrawFn) -> tuple[list[str], list[str], Pairs, Pairs]:
    """Photos of a first run, photos added later, near-duplicate pairs among the first ones, and
    the pairs that the added photos bring (with old ones and among themselves)."""
    seeds = draw(st.lists(st.binary(min_size=1, max_size=4), unique=True, min_size=1, max_size=40))
    keys = [sha(seed) for seed in seeds]
    split_at = draw(st.integers(min_value=0, max_value=len(keys)))
    old, new = keys[:split_at], keys[split_at:]
    old_pairs: Pairs = []
    if old:
        old_pairs = draw(
            st.lists(st.tuples(st.sampled_from(old), st.sampled_from(old)), max_size=25)
        )
    new_pairs: Pairs = []
    if new:
        new_pairs = draw(
            st.lists(st.tuples(st.sampled_from(keys), st.sampled_from(new)), max_size=25)
        )
    return old, new, old_pairs, new_pairs


def assert_no_leak(plan: SplitPlan, pairs: Pairs) -> None:
    for first, second in pairs:
        if first in plan.splits and second in plan.splits:
            assert plan.splits[first] == plan.splits[second]


@given(growing_collection())
@settings(max_examples=300)
def test_adding_photos_never_moves_an_existing_one(
    collection: tuple[list[str], list[str], Pairs, Pairs],
) -> None:
    old, new, old_pairs, new_pairs = collection
    before = assign_splits(old, old_pairs, RULE)
    after = assign_splits(old + new, old_pairs + new_pairs, RULE, previous=before.splits)
    assert {key: after.splits[key] for key in old} == before.splits
    assert after.moved == {}
    assert set(after.conflicts) <= set(new)
    assert set(after.splits) | set(after.conflicts) == set(old + new)
    assert after.pinned == len(old)
    assert_no_leak(before, old_pairs)
    assert_no_leak(after, old_pairs + new_pairs)


@given(growing_collection(), st.randoms(use_true_random=False))
def test_same_inputs_same_split_in_any_order(
    collection: tuple[list[str], list[str], Pairs, Pairs], rng: random.Random
) -> None:
    old, new, old_pairs, new_pairs = collection
    photos, pairs = old + new, old_pairs + new_pairs
    plan = assign_splits(photos, pairs, RULE)
    shuffled_photos, shuffled_pairs = photos[:], [(b, a) for a, b in pairs]
    rng.shuffle(shuffled_photos)
    rng.shuffle(shuffled_pairs)
    again = assign_splits(shuffled_photos, shuffled_pairs, RULE)
    assert (again.splits, again.conflicts) == (plan.splits, plan.conflicts)
    assert_no_leak(plan, pairs)


@given(growing_collection())
def test_without_history_only_groups_that_gain_members_can_move(
    collection: tuple[list[str], list[str], Pairs, Pairs],
) -> None:
    old, new, old_pairs, new_pairs = collection
    before = assign_splits(old, old_pairs, RULE)
    fresh = assign_splits(old + new, old_pairs + new_pairs, RULE)
    touched = {key for pair in new_pairs for key in pair}
    for key in old:
        if key not in touched and not any(key in pair for pair in old_pairs):
            assert fresh.splits[key] == before.splits[key] == bucket(key, RULE)


def test_a_new_photo_bridging_two_splits_is_refused() -> None:
    cat_a, cat_b, bridge = sha(b"a"), sha(b"b"), sha(b"bridge")
    previous = {cat_a: "train", cat_b: "test"}
    plan = assign_splits([cat_a, cat_b, bridge], [(cat_a, bridge), (bridge, cat_b)], RULE, previous)
    assert plan.splits == previous
    assert plan.conflicts == {bridge: ("train", "test")}


def test_a_changed_grouping_moves_photos_rather_than_leak() -> None:
    first, second, third = sha(b"1"), sha(b"2"), sha(b"3")
    previous = {first: "train", second: "train", third: "val"}
    plan = assign_splits([first, second, third], [(first, second), (second, third)], RULE, previous)
    assert set(plan.splits.values()) == {"train"}
    assert plan.moved == {third: "val"}


def test_fractions_follow_the_params() -> None:
    keys = [sha(str(number).encode()) for number in range(20_000)]
    for rule in (RULE, SplitParams(train=0.5, val=0.2, test=0.3, salt="other")):
        counts = Counter(bucket(key, rule) for key in keys)
        for split in SPLITS:
            assert abs(counts[split] / len(keys) - getattr(rule, split)) < 0.01


def test_the_salt_draws_another_split() -> None:
    keys = [sha(str(number).encode()) for number in range(1000)]
    other = SplitParams(salt="another draw")
    changed = sum(bucket(key, RULE) != bucket(key, other) for key in keys)
    assert 250 < changed < 450  # about 1 - (0.8² + 0.1² + 0.1²) = 34% of them
