"""Statuses, metrics and logs say what happened: a batch nobody answered for the service's
reasons is a 503 with Retry-After, a client that left is a 499 on its own route, tracebacks are
text in the JSON log, and the upload guard works behind any root_path."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from serving_support import RED, metric, serving_service, solid

from catdog.serving.app import create_app
from catdog.serving.log import configure_logging
from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio


async def test_a_batch_that_only_timed_out_is_a_503_with_retry_after(tiny_model: Path) -> None:
    # The one runner hangs (SIGSTOP) and its deadline is past the request's: every photo times
    # out, for the service's reasons only. A file over the size limit is refused before any
    # runner sees it: the photo's own refusal.
    settings = Settings(
        model=str(tiny_model),
        runners=1,
        request_timeout_s=0.5,
        runner_timeout_s=5,
        max_upload_mb=0.05,
    )
    async with serving_service(settings) as (client, service):
        runner = service.batcher.runners[0].pid
        assert runner is not None
        os.kill(runner, signal.SIGSTOP)
        try:
            timed_out = await client.post(
                "/predict/batch",
                files=[("files", ("a.jpg", solid(RED))), ("files", ("b.jpg", solid(RED)))],
            )
            mixed = await client.post(
                "/predict/batch",
                files=[("files", ("a.jpg", solid(RED))), ("files", ("big.jpg", bytes(60_000)))],
            )
        finally:
            os.kill(runner, signal.SIGCONT)
    assert timed_out.status_code == 503, timed_out.text
    assert timed_out.json()["error"] == "timeout"
    assert timed_out.headers["retry-after"] == "1"
    assert mixed.status_code == 200, "a photo's own refusal keeps the 200"
    first, second = mixed.json()["results"]
    assert (first["error"], first["status"]) == ("timeout", 503)
    assert (second["error"], second["status"]) == ("too_many_bytes", 413)
    assert mixed.headers["retry-after"] == "1", "part of it may succeed if sent again"


async def call_leaving_mid_upload(app: Any, path: str, root_path: str = "") -> list[dict[str, Any]]:
    """Send the start of a multipart body to `app`, then disconnect; what the app sent back."""
    body = b"--b\r\nContent-Disposition: form-data; name=file; filename=x.jpg\r\n\r\n" + solid(RED)
    messages = [
        {"type": "http.request", "body": body[:100], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # nothing more will come
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [
            (b"content-type", b"multipart/form-data; boundary=b"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1234),
        "server": ("catdog.test", 80),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("root_path", ["", "/api"])
async def test_a_client_that_leaves_mid_upload_is_a_499_on_its_route_and_frees_its_bytes(
    tiny_model: Path, root_path: str
) -> None:
    app = create_app(Settings(model=str(tiny_model)))
    async with app.router.lifespan_context(app):
        for path in ("/predict", "/predict/batch"):
            assert await call_leaving_mid_upload(app, path, root_path) == []
        text = app.state.service.metrics.exposition().decode()
    for route in ("/predict", "/predict/batch"):
        assert metric(text, "catdog_requests_total", route=route, method="POST", status="499")
    assert "unmatched" not in text
    assert 'status="500"' not in text
    assert metric(text, "catdog_body_bytes_in_flight") == 0
    assert metric(text, "catdog_images_in_flight") == 0


@pytest.mark.parametrize("root_path", ["", "/api"])
async def test_the_guard_refuses_early_under_any_root_path(
    tiny_model: Path, root_path: str
) -> None:
    settings = Settings(model=str(tiny_model), max_upload_mb=0.05, body_budget_mb=0.1)
    async with serving_service(settings, root_path=root_path) as (client, _):
        too_big = await client.post(
            "/predict", files={"file": ("big.jpg", b"\xff\xd8" + b"\x00" * 200_000)}
        )
        fine = await client.post("/predict", files={"file": ("r.jpg", solid(RED))})
        text = (await client.get("/metrics")).text
    assert fine.status_code == 200, fine.text
    assert too_big.status_code == 413
    # The guard's own sentence: refused from Content-Length, before the body was read.
    assert too_big.json()["detail"].startswith("the upload is over")
    assert metric(text, "catdog_requests_total", route="/predict", method="POST", status="413")


def test_tracebacks_are_text_in_the_json_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=exc)
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "ASGI" in x]
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: boom" in line["exception"]
    assert "traceback object" not in json.dumps(line)


async def test_every_log_line_of_a_request_carries_its_request_id(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving_service(Settings(model=str(tiny_model))) as (client, _):
        capsys.readouterr()
        response = await client.post(
            "/predict", files={"file": ("r.jpg", solid(RED))}, headers={"X-Request-ID": "req-42"}
        )
        logging.getLogger("catdog.test").info("outside any request")
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert response.headers["x-request-id"] == "req-42"
    mine = [line for line in lines if line.get("request_id") == "req-42"]
    assert [line["event"] for line in mine] == ["request"]
    outside = [line for line in lines if line["event"] == "outside any request"]
    assert outside and "request_id" not in outside[0], "the id is unbound after the request"


async def test_a_chunked_body_refused_mid_stream_gives_its_bytes_back(tiny_model: Path) -> None:
    settings = Settings(model=str(tiny_model), max_upload_mb=0.05, body_budget_mb=0.06)

    async def chunked() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n\r\n'
        for _ in range(10):
            yield bytes(10_000)

    async with serving_service(settings) as (client, _):
        refused = await client.post(
            "/predict",
            content=chunked(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        text = (await client.get("/metrics")).text
        fine = await client.post("/predict", files={"file": ("r.jpg", solid(RED))})
    assert refused.status_code == 413, refused.text
    assert metric(text, "catdog_body_bytes_in_flight") == 0, "no reserved byte is leaked"
    assert fine.status_code == 200
