"""Micro-batching: concurrent requests share a model run; with no wait, a batch takes only its
runner's share; a full queue is an immediate 503; an image not answered in time is a 503
`timeout`; a batch never mixes two models."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from serving_support import BLUE, RED, runner_pids, serving, solid

from catdog.errors import ModelError
from catdog.prediction import ServedModel
from catdog.serving.batching import MicroBatcher
from catdog.serving.metrics import ServiceMetrics
from catdog.serving.runner import runner_processes
from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio


def metric(text: str, name: str) -> float:
    """One sample's value from Prometheus text."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


async def test_concurrent_requests_share_one_batch(tiny_model: Path) -> None:
    n = 6
    # A long wait and a batch of exactly n: the batch runs as soon as the n-th request arrives.
    settings = Settings(model=str(tiny_model), max_batch=n, max_wait_ms=5_000)
    photos = [solid(RED if i % 2 else BLUE) for i in range(n)]
    async with serving(settings) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(
                client.post("/predict", files={"file": (f"{i}.jpg", p)})
                for i, p in enumerate(photos)
            )
        )
        elapsed = time.perf_counter() - started
        metrics = (await client.get("/metrics")).text
    assert [r.status_code for r in responses] == [200] * n
    assert [r.json()["batch_size"] for r in responses] == [n] * n
    assert [r.json()["label"] for r in responses] == ["dog", "cat"] * (n // 2)
    assert elapsed < 4, "the full batch should not wait for max_wait_ms"
    assert metric(metrics, "catdog_batch_size_count") == 1
    assert metric(metrics, "catdog_batch_size_sum") == n


async def test_a_lone_request_waits_at_most_max_wait(tiny_model: Path) -> None:
    settings = Settings(model=str(tiny_model), max_batch=8, max_wait_ms=300)
    async with serving(settings) as client:
        started = time.perf_counter()
        response = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        elapsed = time.perf_counter() - started
    assert response.json()["batch_size"] == 1
    assert 0.3 <= elapsed < 2


async def test_full_queue_answers_503_at_once_with_retry_after(tiny_model: Path) -> None:
    settings = Settings(
        model=str(tiny_model),
        max_batch=8,
        max_wait_ms=1_000,
        queue_size=2,
        max_batch_files=2,
        retry_after_s=3,
    )
    async with serving(settings) as client:
        held = [
            asyncio.create_task(client.post("/predict", files={"file": ("a.jpg", solid(RED))}))
            for _ in range(2)
        ]
        await asyncio.sleep(0.2)  # both are admitted and waiting for company
        started = time.perf_counter()
        refused = await client.post("/predict", files={"file": ("b.jpg", solid(RED))})
        refused_batch = await client.post(
            "/predict/batch", files=[("files", ("c.jpg", solid(RED)))]
        )
        refused_after = time.perf_counter() - started
        answered = await asyncio.gather(*held)
        after = await client.post("/predict", files={"file": ("d.jpg", solid(RED))})
        metrics = (await client.get("/metrics")).text
    assert refused.status_code == 503
    assert refused.json()["error"] == "overloaded"
    assert refused.headers["retry-after"] == "3"
    assert refused_batch.status_code == 503
    assert refused_after < 0.5, "an overloaded service must refuse at once, not queue"
    assert [r.status_code for r in answered] == [200, 200]
    assert after.status_code == 200
    assert metric(metrics, 'catdog_refusals_total{reason="overloaded"}') == 2
    assert (
        metric(metrics, 'catdog_requests_total{method="POST",route="/predict",status="503"}') == 1
    )


async def test_an_image_not_answered_in_time_is_a_503_timeout(tiny_model: Path) -> None:
    settings = Settings(
        model=str(tiny_model), max_batch=8, max_wait_ms=2_000, request_timeout_s=0.2
    )
    async with serving(settings) as client:
        started = time.perf_counter()
        response = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert response.json()["error"] == "timeout"
    assert "retry-after" in response.headers
    assert elapsed < 1.5


@contextlib.asynccontextmanager
async def loaded(
    *models: ServedModel, max_wait_s: float, runners: int = 1
) -> AsyncIterator[MicroBatcher]:
    """A started batcher with `models` loaded; stopped afterwards."""
    batcher = MicroBatcher(
        max_batch=8,
        max_wait_s=max_wait_s,
        metrics=ServiceMetrics(),
        runners=runner_processes(runners),
    )
    batcher.start()
    try:
        for model in models:
            await batcher.load(model)
        yield batcher
    finally:
        await batcher.stop()


async def test_batcher_never_mixes_models(tiny_model: Path, tiny_model_v2: Path) -> None:
    one, two = ServedModel.read(tiny_model, "one"), ServedModel.read(tiny_model_v2, "two")
    async with loaded(one, two, max_wait_s=0.2) as batcher:
        results = await asyncio.gather(
            batcher.submit(one, solid(RED)),
            batcher.submit(two, solid(RED)),
            batcher.submit(one, solid(RED)),
        )
    assert [r.batch_size for r in results] == [2, 1, 2]
    # The second model calls red a dog: each image ran on its own model.
    assert [int(np.argmax(r.scores)) for r in results] == [0, 1, 0]


async def test_a_replaced_model_is_dropped_from_the_runners_after_its_last_job(
    tiny_model: Path,
) -> None:
    old, new = ServedModel.read(tiny_model, "old"), ServedModel.read(tiny_model, "new")
    async with loaded(old, new, max_wait_s=0.3) as batcher:
        in_flight = asyncio.create_task(batcher.submit(old, solid(RED)))
        await asyncio.sleep(0.05)  # queued, waiting 0.3 s for company
        batcher.retire(old)
        answered = await in_flight
        dropped = None
        deadline = time.monotonic() + 5
        while dropped is None and time.monotonic() < deadline:  # the drop follows the answer
            try:
                await batcher.submit(old, solid(RED))
            except ModelError as exc:
                dropped = exc
        still = await batcher.submit(new, solid(RED))
    assert int(np.argmax(answered.scores)) == 0, "the job admitted before finished"
    assert dropped is not None and "not loaded" in dropped.detail
    assert int(np.argmax(still.scores)) == 0


async def test_with_no_wait_a_batch_takes_only_its_runners_share(tiny_model: Path) -> None:
    model = ServedModel.read(tiny_model, "one")
    async with loaded(model, max_wait_s=0, runners=2) as batcher:
        results = await asyncio.gather(*(batcher.submit(model, solid(RED)) for _ in range(8)))
    # The 8 are queued before a runner thread gets the GIL back, so greedy batching runs them
    # as one batch of 8 (it did, 3 times out of 3) and leaves the second runner idle. A share is
    # at most ceil(8 / 2) whenever a runner gathers, so this holds whatever the timing.
    sizes = [r.batch_size for r in results]
    assert max(sizes) <= 4, sizes
    assert [int(np.argmax(r.scores)) for r in results] == [0] * 8


async def test_an_app_adopts_runners_started_before_it(tiny_model: Path) -> None:
    # `catdog serve` starts its runners before it imports FastAPI, so that their start-up runs
    # beside its own: the app must serve on those processes, not start others beside them.
    early = runner_processes(2)
    for runner in early:
        runner.start()
    started = runner_pids(os.getpid())
    async with serving(Settings(model=str(tiny_model), runners=2), runners=early) as client:
        response = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        during = runner_pids(os.getpid())
    assert len(started) == 2
    assert during == started
    assert response.status_code == 200
    assert response.json()["label"] == "cat"
    assert runner_pids(os.getpid()) == [], "the app's shutdown closes the runners it adopted"
