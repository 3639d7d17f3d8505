"""Supervised runners: a runner killed (SIGKILL) or hung (SIGSTOP), idle or mid-batch, is
replaced at once and its batch runs again, so no request is lost; a photo that kills a runner
twice is a poison pill, refused with 422 `crashes_decoder` and never tried a third time; a hung
runner never holds up a shutdown. Real runner processes, real signals, a real crashing decoder
(a Pillow plugin planted in the runners through PYTHONPATH)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from serving_support import (
    BLUE,
    CRASHING_PHOTO,
    RED,
    metric,
    plant_crashing_decoder,
    serving_service,
    solid,
)

from catdog.serving.service import InferenceService
from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio

# Long enough for a restart (~0.3 s, more on a loaded host), short enough for a test.
WAIT_S = 15.0


async def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not callable(condition) or not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def wait_for_restarts(client: httpx.AsyncClient, cause: str, count: int) -> str:
    """The /metrics text once `count` restarts of `cause` are counted (a restart is counted
    when the new runner has loaded its models)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        text = (await client.get("/metrics")).text
        if metric(text, "catdog_runner_restarts_total", cause=cause) >= count:
            return text
        assert time.monotonic() < deadline, f"timed out waiting for {count} {cause} restarts"
        await asyncio.sleep(0.05)


def pids(service: InferenceService) -> list[int | None]:
    return [runner.pid for runner in service.batcher.runners]


async def test_a_runner_killed_while_idle_is_replaced_before_a_request_finds_it(
    tiny_model: Path,
) -> None:
    async with serving_service(Settings(model=str(tiny_model), runners=1)) as (client, service):
        (before,) = pids(service)
        assert before is not None
        os.kill(before, signal.SIGKILL)
        await wait_for_restarts(client, "exited", 1)
        response = await client.post("/predict", files={"file": ("r.jpg", solid(RED))})
        ready = await client.get("/ready")
        text = (await client.get("/metrics")).text
    assert response.status_code == 200, response.text
    assert ready.status_code == 200
    assert metric(text, "catdog_runner_restarts_total", cause="exited") == 1
    assert metric(text, "catdog_runners_up") == 1


async def test_a_batch_whose_runner_dies_runs_again_and_is_answered(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first request's batch kills its runner (the planted decoder); the good photos that
    # shared it run again, alone, and are answered; the crashing one is refused at its
    # second crash.
    monkeypatch.setenv("PYTHONPATH", plant_crashing_decoder(tmp_path / "plant"))
    settings = Settings(model=str(tiny_model), runners=2, max_wait_ms=300, max_batch=8)
    async with serving_service(settings) as (client, service):
        files = [
            ("files", ("red.jpg", solid(RED))),
            ("files", ("crash.jpg", CRASHING_PHOTO)),
            ("files", ("blue.jpg", solid(BLUE))),
        ]
        batch = await client.post("/predict/batch", files=files)
        text = (await client.get("/metrics")).text
        await wait_for(lambda: service.batcher.runners_up == 2, "both runners back")
        after = await client.post("/predict", files={"file": ("r.jpg", solid(RED))})
    assert batch.status_code == 200, batch.text
    red, crash, blue = batch.json()["results"]
    assert (red["label"], blue["label"]) == ("cat", "dog")
    assert (crash["error"], crash["status"]) == ("crashes_decoder", 422)
    assert hashlib.sha256(CRASHING_PHOTO).hexdigest() in crash["detail"]
    assert metric(text, "catdog_runner_restarts_total", cause="exited") == 2, "never a third try"
    assert after.status_code == 200


async def test_a_poison_photo_gets_422_while_other_requests_are_served(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PYTHONPATH", plant_crashing_decoder(tmp_path / "plant"))
    async with serving_service(Settings(model=str(tiny_model), runners=2)) as (client, _):
        poison, *others = await asyncio.gather(
            client.post("/predict", files={"file": ("crash.jpg", CRASHING_PHOTO)}),
            *(client.post("/predict", files={"file": ("r.jpg", solid(RED))}) for _ in range(12)),
        )
        text = (await client.get("/metrics")).text
    assert poison.status_code == 422, poison.text
    assert poison.json()["error"] == "crashes_decoder"
    assert [r.status_code for r in others] == [200] * 12
    assert metric(text, "catdog_runner_restarts_total", cause="exited") == 2
    digest = hashlib.sha256(CRASHING_PHOTO).hexdigest()
    out = capsys.readouterr().out.splitlines()
    poison_lines = [line for line in out if '"event": "poison_photo"' in line]
    assert len(poison_lines) == 1 and digest in poison_lines[0]
    assert poison.headers["x-request-id"] in poison_lines[0], "the log line names its request"


async def test_a_hung_runner_is_killed_and_its_batch_runs_again(tiny_model: Path) -> None:
    settings = Settings(model=str(tiny_model), runners=1, request_timeout_s=8, runner_timeout_s=1)
    async with serving_service(settings) as (client, service):
        (before,) = pids(service)
        assert before is not None
        os.kill(before, signal.SIGSTOP)
        started = time.monotonic()
        response = await client.post("/predict", files={"file": ("r.jpg", solid(RED))})
        took = time.monotonic() - started
        text = (await client.get("/metrics")).text
        ready = await client.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json()["label"] == "cat"
    assert took < settings.request_timeout_s
    assert pids(service)[0] != before
    assert metric(text, "catdog_runner_restarts_total", cause="hung") == 1
    assert ready.status_code == 200


async def test_a_runner_hung_while_idle_is_found_without_a_request(tiny_model: Path) -> None:
    async with serving_service(Settings(model=str(tiny_model), runners=1)) as (client, service):
        (before,) = pids(service)
        assert before is not None
        os.kill(before, signal.SIGSTOP)
        text = await wait_for_restarts(client, "hung", 1)
        response = await client.post("/predict", files={"file": ("r.jpg", solid(RED))})
    assert metric(text, "catdog_runner_restarts_total", cause="hung") == 1
    assert response.status_code == 200


async def test_shutdown_does_not_wait_on_a_hung_runner(tiny_model: Path) -> None:
    settings = Settings(model=str(tiny_model), runners=2)
    context = serving_service(settings)
    _, service = await context.__aenter__()
    hung = service.batcher.runners[0].pid
    assert hung is not None
    os.kill(hung, signal.SIGSTOP)
    started = time.monotonic()
    await context.__aexit__(None, None, None)
    assert time.monotonic() - started < 5.0
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left stopped
        os.kill(hung, 0)


async def test_ready_is_503_while_no_runner_is_up(tiny_model: Path) -> None:
    async with serving_service(Settings(model=str(tiny_model), runners=1)) as (client, service):
        before = await client.get("/ready")
        runner = service.batcher.runners[0]
        runner.close()  # down, and nobody restarts it: what every runner failing to start is
        down = await client.get("/ready")
        health = await client.get("/health")
    assert before.status_code == 200
    assert down.status_code == 503
    assert down.json()["error"] == "runners_down"
    assert down.headers["retry-after"] == "1"
    assert health.status_code == 200, "liveness is the process answering, not its runners"
