"""The data-stage benchmark runs both ways on the same photos and writes its figures (no timing
is asserted: figures come from the benchmark itself, on a quiet machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from petfiles import SAMPLE

from benchmarks.prepare_benchmark import file_create_us, find_photos, main, settle


def test_limit_spreads_over_both_classes() -> None:
    photos = find_photos(SAMPLE, 10)
    assert len(photos) == 10
    assert {photo.parent.name for photo in photos} == {"Cat", "Dog"}


def test_small_run_writes_both_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output, scratch = tmp_path / "prepare.json", tmp_path / "scratch"
    options = ["--output", str(output), "--scratch", str(scratch), "--settle", "0"]
    assert main(["--raw", str(SAMPLE), "--limit", "8", "--workers", "2", *options]) == 0
    results = json.loads(output.read_text())
    assert (results["photos"], results["size"], results["workers"]) == (8, 224, 2)
    assert results["catdog"]["kept"] == 8 and results["catdog"]["refused"] == 0
    for way in ("plain", "catdog"):
        assert results[way]["photos_per_s"] > 0
    assert results["speedup"] == pytest.approx(
        results["catdog"]["photos_per_s"] / results["plain"]["photos_per_s"], abs=0.01
    )
    assert "speedup" in capsys.readouterr().out
    assert list(scratch.iterdir()) == []  # nothing left behind


def test_missing_data_set_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--raw", str(tmp_path / "missing")])


def test_the_probe_keeps_its_files_and_settling_is_bounded(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    assert file_create_us(probe, count=5) > 0
    assert file_create_us(probe, count=5) > 0
    # Deleting probe files would make the next creations dearer: they stay until the end.
    assert len(list(probe.iterdir())) == 10
    cost, waited = settle(probe, limit_s=0.0, cheap_us=0.0)  # never cheap enough: no wait
    assert cost > 0 and waited < 1.0
