"""POST /predict and /predict/batch on a tiny real ONNX model: shape of answers, order, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_support import BLUE, RED, serving, solid

from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio


async def test_predict_answers_label_probabilities_and_provenance(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model))) as client:
        response = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        blue = await client.post("/predict", files={"file": ("blue.jpg", solid(BLUE))})
    assert response.status_code == 200
    body = response.json()
    assert body["label"] == "cat"
    assert blue.json()["label"] == "dog"
    assert set(body["probabilities"]) == {"cat", "dog"}
    assert sum(body["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["model_version"] == "tiny-1"
    assert len(body["prediction_id"]) == 32
    assert body["prediction_id"] != blue.json()["prediction_id"]
    assert 0 < body["latency_ms"] < 10_000
    assert response.headers["x-request-id"]


async def test_batch_answers_in_order_with_each_files_own_error(tiny_model: Path) -> None:
    files = [
        ("files", ("1-red.jpg", solid(RED))),
        ("files", ("2-notes.txt", b"not a photo at all")),
        ("files", ("3-blue.jpg", solid(BLUE))),
        ("files", ("4-empty.jpg", b"")),
        ("files", ("5-red.png", solid(RED))),
    ]
    async with serving(Settings(model=str(tiny_model))) as client:
        response = await client.post("/predict/batch", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [name for _, (name, _) in files]
    assert [r.get("label") or r["error"] for r in results] == [
        "cat",
        "not_an_image",
        "dog",
        "empty_file",
        "cat",
    ]
    assert results[1]["status"] == 422
    assert results[0]["model_version"] == "tiny-1"


async def test_batch_refuses_more_files_than_configured(tiny_model: Path) -> None:
    files = [("files", (f"{i}.jpg", solid(RED))) for i in range(4)]
    async with serving(Settings(model=str(tiny_model), max_batch_files=3)) as client:
        response = await client.post("/predict/batch", files=files)
        ok = await client.post("/predict/batch", files=files[:3])
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_files"
    assert ok.status_code == 200


async def test_request_id_from_the_caller_is_kept_when_plain(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model))) as client:
        kept = await client.get("/health", headers={"X-Request-ID": "trace-42"})
        replaced = await client.get("/health", headers={"X-Request-ID": "bad id\twith tab"})
    assert kept.headers["x-request-id"] == "trace-42"
    assert replaced.headers["x-request-id"] != "bad id\twith tab"
