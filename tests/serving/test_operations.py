"""Health, readiness, the model card, metrics, the OpenAPI docs, the page and the log lines."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path

import httpx
import pytest
from serving_support import RED, serving, solid

from catdog.serving.app import create_app
from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio

METRIC_NAMES = (
    "catdog_requests_total",
    "catdog_request_latency_seconds_bucket",
    "catdog_batch_size_bucket",
    "catdog_inference_seconds_bucket",
    "catdog_queue_depth",
    "catdog_images_in_flight",
    "catdog_predictions_total",
    "catdog_prediction_confidence_bucket",
    "catdog_refusals_total",
    "catdog_model_info",
    "catdog_model_reloads_total",
    "catdog_ready",
)


async def test_ready_is_503_until_the_model_is_warm_and_health_is_200_at_once(
    tiny_model: Path,
) -> None:
    app = create_app(Settings(model=str(tiny_model)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://catdog.test") as client:
        health = await client.get("/health")
        not_ready = await client.get("/ready")
        predict = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        async with app.router.lifespan_context(app):
            for _ in range(500):
                ready = await client.get("/ready")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.01)
    assert health.status_code == 200
    assert not_ready.status_code == 503
    assert not_ready.json()["error"] == "not_ready"
    assert "retry-after" in not_ready.headers
    assert predict.status_code == 503
    assert ready.status_code == 200
    assert ready.json()["model_version"] == "tiny-1"


async def test_a_model_that_fails_to_load_keeps_ready_at_503_with_the_reason(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not onnx")
    (tmp_path / "model.card.json").write_text('{"version": "x", "preprocessing": {"size": 32}}')
    app = create_app(Settings(model=str(broken)))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://catdog.test") as client,
    ):
        for _ in range(500):
            if app.state.service.models.load_error is not None:
                break
            await asyncio.sleep(0.01)
        ready = await client.get("/ready")
        health = await client.get("/health")
    assert ready.status_code == 503
    assert "failed to load" in ready.json()["detail"]
    assert health.status_code == 200


async def test_model_card_metrics_docs_and_page(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model))) as client:
        await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        await client.post("/predict", files={"file": ("notes.txt", b"hello")})
        card = await client.get("/model")
        metrics = await client.get("/metrics")
        docs = await client.get("/docs")
        openapi = (await client.get("/openapi.json")).json()
        page = await client.get("/")
    assert card.json()["version"] == "tiny-1"
    assert card.json()["preprocessing"]["size"] == 32
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in METRIC_NAMES:
        assert name in metrics.text, name
    assert 'catdog_predictions_total{label="cat"} 1.0' in metrics.text
    assert 'catdog_refusals_total{reason="not_an_image"} 1.0' in metrics.text
    assert 'catdog_requests_total{method="POST",route="/predict",status="422"} 1.0' in metrics.text
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert {"/predict", "/predict/batch", "/health", "/ready", "/model", "/metrics"} <= set(
        openapi["paths"]
    )
    assert "/admin/reload" in openapi["paths"]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text
    assert "http://" not in page.text and "https://" not in page.text, "the page must work offline"


async def test_one_json_log_line_per_request_without_image_bytes(
    tiny_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = solid(RED)
    async with serving(Settings(model=str(tiny_model))) as client:
        capsys.readouterr()
        ok = await client.post("/predict", files={"file": ("red.jpg", photo)})
        refused = await client.post("/predict", files={"file": ("notes.txt", b"hello")})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) == 2
    first, second = requests
    assert first["request_id"] == ok.headers["x-request-id"]
    assert first["prediction_id"] == ok.json()["prediction_id"]
    assert (first["route"], first["status"], first["label"]) == ("/predict", 200, "cat")
    assert first["model_version"] == "tiny-1"
    assert first["confidence"] == pytest.approx(ok.json()["confidence"])
    assert first["latency_ms"] > 0
    assert (second["status"], second["error"]) == (422, "not_an_image")
    assert second["request_id"] == refused.headers["x-request-id"]
    text = json.dumps(lines)
    assert "hello" not in text
    assert photo[:64].hex() not in text


async def test_startup_objects_are_kept_out_of_full_garbage_collections(tiny_model: Path) -> None:
    # A full collection scanning every library object paused the loop for tens of ms under
    # overload; the service freezes what exists once the model is loaded.
    gc.unfreeze()
    async with serving(Settings(model=str(tiny_model))) as client:
        assert (await client.post("/predict", files={"file": ("red.jpg", solid(RED))})).is_success
        for _ in range(200):
            if gc.get_freeze_count() > 0:
                break
            await asyncio.sleep(0.01)
        frozen = gc.get_freeze_count()
    gc.unfreeze()
    assert frozen > 10_000
