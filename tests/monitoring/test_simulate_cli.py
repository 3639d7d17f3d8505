"""`catdog simulate` refuses what it must not do, with a reason and catdog's exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.serving.serving_support import REPO, SAMPLES, catdog_cli

from catdog.errors import MonitorError
from catdog.monitoring.simulate import Target, held_back, load_labelled


def test_only_loopback_urls() -> None:
    with pytest.raises(MonitorError, match=r"127\.0\.0\.1 only"):
        Target.parse("http://10.0.0.7:8000")
    with pytest.raises(MonitorError, match="http://"):
        Target.parse("ftp://127.0.0.1/")
    assert Target.parse("http://127.0.0.1:8123/api/") == Target("127.0.0.1", 8123, "/api")


def test_feedback_needs_the_token(tmp_path: Path) -> None:
    done = catdog_cli(
        "simulate", "--url", "http://127.0.0.1:9", "--data", str(SAMPLES), "--feedback"
    )
    assert done.returncode == 11, done.stderr
    assert "CATDOG_API_TOKEN" in done.stderr


def test_photos_interleave_classes_and_a_manifest_picks_a_split(tmp_path: Path) -> None:
    photos = load_labelled(SAMPLES, limit=6)
    assert [p.label for p in photos] == ["cat", "dog"] * 3
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "source_path,sha256,split,status\n"
        "Cat/cat.1136.jpg,x,test,kept\nDog/dog.1081.jpg,y,train,kept\nDog/dog.1142.jpg,z,test,kept\n",
        encoding="utf-8",
    )
    chosen = load_labelled(SAMPLES, only=held_back(manifest, "test"))
    assert sorted(p.name for p in chosen) == ["cat.1136.jpg", "dog.1142.jpg"]
    with pytest.raises(MonitorError, match="no photos"):
        load_labelled(REPO / "docs")
