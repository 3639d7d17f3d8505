"""The traffic client times open-loop requests from their scheduled arrival (as wrk2 and oha do):
a client that falls behind its schedule counts the wait instead of hiding it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from tests.threaded_server import serving

from catdog.monitoring import traffic
from catdog.monitoring.http1 import build_json_post


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A real uvicorn server in a thread on a free port of 127.0.0.1 that echoes JSON."""
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    with serving(app) as port:
        yield port


def requests(port: int, count: int) -> list[bytes]:
    return [build_json_post("127.0.0.1", port, "/echo", {"i": i}) for i in range(count)]


@pytest.mark.integration
def test_open_loop_latency_runs_from_the_scheduled_arrival(echo_server: int) -> None:
    async def run() -> traffic.Run:
        # Stall the client's event loop for 0.3 s just after the first send: requests 1-4 were
        # due at 0.05-0.20 s and leave late. Their wait is part of their latency.
        asyncio.get_running_loop().call_soon(time.sleep, 0.3)
        return await traffic.open_loop(
            "127.0.0.1", echo_server, requests(echo_server, 5), rate=20, max_seconds=0.25
        )

    result = asyncio.run(run())
    by_index = {o.index: o for o in result.outcomes}
    assert sorted(by_index) == [0, 1, 2, 3, 4]
    assert all(o.status == 200 for o in result.outcomes)
    assert by_index[1].latency_s >= 0.25 - 0.005  # due at 0.05, sent after 0.30
    assert by_index[4].latency_s >= 0.10 - 0.005  # due at 0.20
    assert result.max_send_lag_s >= 0.25 - 0.005


@pytest.mark.integration
def test_closed_loop_keeps_bodies_and_request_indices(echo_server: int) -> None:
    seen: list[int] = []
    result = asyncio.run(
        traffic.closed_loop(
            "127.0.0.1",
            echo_server,
            requests(echo_server, 3),
            concurrency=2,
            max_requests=7,
            max_seconds=20,
            on_outcome=lambda o: seen.append(o.index),
        )
    )
    assert sorted(seen) == list(range(7))
    for outcome in result.outcomes:
        assert outcome.body == f'{{"i":{outcome.index % 3}}}'.encode()


def test_only_loopback_targets() -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        asyncio.run(
            traffic.closed_loop("10.1.2.3", 80, [b""], concurrency=1, max_requests=1, max_seconds=1)
        )
