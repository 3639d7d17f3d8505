"""The serving benchmark's own code: percentile maths, the HTTP client against a real server."""

from __future__ import annotations

import asyncio
import gc
import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import JSONResponse
from hypothesis import given
from hypothesis import strategies as st
from tests.threaded_server import serving

from benchmarks.serving.load_client import (
    Outcome,
    build_requests,
    closed_loop,
    open_loop,
    percentile,
    summarise,
)
from benchmarks.serving.photos import BUNDLED_SAMPLE, Photo, load_photos


@given(
    st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=200),
    st.floats(0, 100),
)
def test_percentile_matches_numpy(values: list[float], q: float) -> None:
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), abs=1e-6)


def test_percentile_edges() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    with pytest.raises(ValueError, match="within 0 and 100"):
        percentile([1.0], 101)


def test_summarise_counts_only_answered_photos_as_images() -> None:
    outcomes = [
        Outcome(200, 0.010),
        Outcome(200, 0.030),
        Outcome(503, 0.002),
        Outcome(0, 1.0, "Timeout"),
    ]
    report = summarise(outcomes, 2.0, mode="closed", concurrency=4)
    assert report.images_per_s == 1.0
    assert report.status_counts == {"0": 1, "200": 2, "503": 1}
    assert report.latency_ms["p50"] == pytest.approx(20.0)
    assert report.rejected_latency_ms["max"] == pytest.approx(2.0)
    assert report.errors == {"Timeout": 1}


def test_requests_only_to_loopback() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        build_requests("10.0.0.1", 80, "/predict", [Photo("a.jpg", b"x")])


def test_load_photos_alternates_classes_and_skips_broken(tmp_path: Path) -> None:
    for folder in ("Cat", "Dog"):
        (tmp_path / folder).mkdir()
        for src in sorted((BUNDLED_SAMPLE / folder).glob("*.jpg"))[:3]:
            (tmp_path / folder / src.name).write_bytes(src.read_bytes())
    (tmp_path / "Cat" / "a-broken.jpg").write_bytes(b"not a jpeg at all")
    photos = load_photos(tmp_path, limit=10)
    kinds = [p.name.split(".")[0] for p in photos]
    assert len(photos) == 6
    assert "a-broken.jpg" not in {p.name for p in photos}
    assert kinds.count("cat") == 3
    assert all(a != b for a, b in itertools.pairwise(kinds))
    assert len(load_photos(tmp_path, limit=2)) == 2


def _echo_app() -> FastAPI:
    """Answers 200 with the upload's size, or 503 for uploads whose name starts with 'busy'."""
    app = FastAPI()

    @app.post("/predict")
    async def predict(file: UploadFile = File(...)) -> JSONResponse:
        data = await file.read()
        if (file.filename or "").startswith("busy"):
            return JSONResponse({"error": "overloaded"}, status_code=503)
        return JSONResponse({"bytes": len(data), "name": file.filename})

    return app


@pytest.fixture
def echo_server() -> Iterator[int]:
    """_echo_app on a real server."""
    with serving(_echo_app()) as port:
        yield port


@pytest.mark.integration
def test_closed_loop_uploads_whole_photos(echo_server: int) -> None:
    photos = load_photos(BUNDLED_SAMPLE, limit=4)
    requests = build_requests("127.0.0.1", echo_server, "/predict", photos)
    report = asyncio.run(
        closed_loop(
            "127.0.0.1", echo_server, requests, concurrency=2, max_requests=12, max_seconds=20
        )
    )
    assert report.status_counts == {"200": 12}
    assert report.requests == 12
    assert report.latency_ms["count"] == 12


@pytest.mark.integration
def test_open_loop_counts_rejections(echo_server: int) -> None:
    photos = [Photo("busy.jpg", b"\xff\xd8x"), Photo("ok.jpg", b"\xff\xd8y")]
    requests = build_requests("127.0.0.1", echo_server, "/predict", photos)
    report = asyncio.run(
        open_loop("127.0.0.1", echo_server, requests, rate=50, max_seconds=0.4, timeout_s=5)
    )
    assert report.status_counts == {"200": 10, "503": 10}
    assert report.rejected_latency_ms["count"] == 10
    assert report.not_sent == 0


@pytest.mark.integration
def test_the_collector_is_off_while_loading_and_back_on_after(echo_server: int) -> None:
    """A full collection pausing the client would be timed as the server's latency."""
    requests = build_requests("127.0.0.1", echo_server, "/predict", load_photos(BUNDLED_SAMPLE, 2))
    seen: list[bool] = []

    async def load_while_watching() -> None:
        async def watch() -> None:
            while True:
                seen.append(gc.isenabled())
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        await closed_loop(
            "127.0.0.1", echo_server, requests, concurrency=2, max_requests=40, max_seconds=20
        )
        await open_loop("127.0.0.1", echo_server, requests, rate=100, max_seconds=0.3)
        watcher.cancel()

    assert gc.isenabled()
    asyncio.run(load_while_watching())
    assert seen
    assert not any(seen)
    assert gc.isenabled()
