"""Goals and result files of the serving benchmarks: verdicts and JSON that tools can read."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.serving import compare
from benchmarks.serving.results import Goal, write_json
from catdog.model_store import read_card, resolve_model


def test_goal_verdicts_follow_their_direction() -> None:
    assert Goal("speed-up", 5.0, ">=", 5.0, "x").met
    assert not Goal("speed-up", 4.9, ">=", 5.0, "x").met
    assert Goal("p95", 99.0, "<=", 100.0, "ms").met
    assert not Goal("p95", 101.0, "<=", 100.0, "ms").met


def test_a_missing_figure_never_meets_a_goal() -> None:
    assert not Goal("503 p99", math.nan, "<=", 50.0, "ms").met
    assert not Goal("speed-up", math.nan, ">=", 5.0, "x").met


def test_goal_round_trips_through_json(tmp_path: Path) -> None:
    goal = Goal("503 p99", math.nan, "<=", 50.0, "ms")
    path = write_json(tmp_path / "serve_x.json", {"goals": [goal.to_dict()]})
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["goals"][0]["measured"] is None
    assert document["goals"][0]["met"] is False
    assert "cpu_count" in document["environment"]
    assert not Goal.from_dict(document["goals"][0]).met


def test_the_headline_needs_a_model_as_accurate_as_a_resnet18() -> None:
    card = read_card(resolve_model(None))
    shipped = compare.reference_accuracy_pct(card)
    assert shipped == 100.0 * card["metrics"]["test"]["accuracy"]
    goal = compare.accuracy_goal(card)
    assert goal.met == (shipped >= compare.RESNET18_FROM_SCRATCH_PCT)
    assert math.isnan(compare.reference_accuracy_pct({"metrics": {}}))
    assert not compare.accuracy_goal({}).met
