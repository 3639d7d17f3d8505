"""The service's half of the loop, in process, on both store back-ends: every answered photo is
logged, /feedback records true labels, and a store that is down fails no prediction."""

from __future__ import annotations

import asyncio
import hashlib
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from tests.serving.serving_support import BLUE, RED, SAMPLES, serving, solid, write_tiny_model

from catdog.monitoring.appearance import look_of
from catdog.monitoring.records import new_prediction_id, utcnow
from catdog.monitoring.store import PredictionStore
from catdog.serving.settings import Settings

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    model = write_tiny_model(tmp_path / "model")
    return Settings(model=str(model), database_url=store_url, api_token=TOKEN, runners=1)


def sample_value(metrics: str, name: str, **labels: str) -> float | None:
    """One sample's value from Prometheus text, by name and labels."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        base, _, rest = key.partition("{")
        found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if base == name and found == wanted:
            return float(value)
    return None


async def wait_logged(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(500):
        text = (await client.get("/metrics")).text
        if (sample_value(text, "catdog_prediction_log_written_total") or 0) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the prediction log did not catch up")


async def test_every_answered_photo_is_logged_with_its_statistics(
    settings: Settings, store_url: str
) -> None:
    photo = (SAMPLES / "Dog" / "dog.1081.jpg").read_bytes()
    async with serving(settings) as client:
        answer = (await client.post("/predict", files={"file": ("d.jpg", photo)})).json()
        batch = await client.post(
            "/predict/batch",
            files=[("files", ("r.jpg", solid(RED))), ("files", ("x.jpg", b"not a photo"))],
        )
        await wait_logged(client, 2)
    assert batch.status_code == 200
    store = PredictionStore(store_url)
    rows = {r.id: r for r in store.predictions()}
    store.close()
    assert len(rows) == 2  # the refused file is not an answer
    row = rows[answer["prediction_id"]]
    assert row.sha256 == hashlib.sha256(photo).hexdigest()
    assert row.bytes == len(photo)
    assert (row.label, row.model_version) == (answer["label"], "tiny-1")
    assert row.probabilities == pytest.approx(answer["probabilities"])
    assert row.width and row.height and row.aspect_ratio == pytest.approx(row.width / row.height)
    for value in (row.brightness, row.contrast, row.colourfulness):
        assert value is not None and 0 < value < 1
    # The runner's look, measured as the baseline measures a photo (tests/monitoring/test_stats)
    alike = look_of(photo, max_pixels=10**8)
    assert (row.width, row.height) == (alike.width, alike.height)
    assert row.brightness == pytest.approx(alike.brightness, abs=0.01)
    assert not (settings.data_dir / "photos").exists()


async def test_photos_are_kept_only_when_asked(tmp_path: Path, settings: Settings) -> None:
    keep = tmp_path / "kept"
    photo = solid(BLUE)
    async with serving(settings.model_copy(update={"keep_photos": keep})) as client:
        await client.post("/predict", files={"file": ("b.jpg", photo)})
        await wait_logged(client, 1)
    digest = hashlib.sha256(photo).hexdigest()
    assert (keep / digest[:2] / digest).read_bytes() == photo


async def test_feedback_last_answer_wins_counted_once(settings: Settings) -> None:
    async with serving(settings) as client:
        answer = (await client.post("/predict", files={"file": ("r.jpg", solid(RED))})).json()
        assert answer["label"] == "cat"
        pid = answer["prediction_id"]
        # Sent at once: the log row may still be queued, and the route waits for it.
        first = await client.post(
            "/feedback", json={"prediction_id": pid, "label": "dog"}, headers=AUTH
        )
        second = await client.post(
            "/feedback", json={"prediction_id": pid, "label": "cat"}, headers=AUTH
        )
        metrics = (await client.get("/metrics")).text
    assert first.status_code == 200, first.text
    assert first.json() | {"replaced": False, "correct": False} == first.json()
    assert second.json()["replaced"] is True
    assert second.json()["correct"] is True
    wrong = sample_value(metrics, "catdog_feedback_total", model_version="tiny-1", outcome="wrong")
    right = sample_value(
        metrics, "catdog_feedback_total", model_version="tiny-1", outcome="correct"
    )
    assert (wrong, right) == (1.0, None)
    assert sample_value(metrics, "catdog_live_accuracy_ratio", model_version="tiny-1") == 1.0
    assert sample_value(metrics, "catdog_live_accuracy_labelled", model_version="tiny-1") == 1.0


async def test_feedback_refusals(settings: Settings, store_url: str) -> None:
    store = PredictionStore(store_url)
    store.migrate()
    # Answered 45 days ago: the writer's retention pass may delete it first, either way too old.
    stale = new_prediction_id(now_s=time.time() - 45 * 86400)
    store.add(
        [
            {
                "id": stale,
                "created_at": utcnow() - timedelta(days=45),
                "model_version": "tiny-1",
                "label": "cat",
                "confidence": 0.9,
                "probabilities": {"cat": 0.9, "dog": 0.1},
            }
        ]
    )
    store.close()
    async with serving(settings) as client:
        pid = (await client.post("/predict", files={"file": ("r.jpg", solid(RED))})).json()[
            "prediction_id"
        ]
        body = {"prediction_id": pid, "label": "dog"}
        no_token = await client.post("/feedback", json=body)
        bad_token = await client.post(
            "/feedback", json=body, headers={"Authorization": "Bearer nope"}
        )
        unknown = await client.post(
            "/feedback", json={**body, "prediction_id": new_prediction_id()}, headers=AUTH
        )
        too_old = await client.post(
            "/feedback", json={**body, "prediction_id": stale}, headers=AUTH
        )
        bad_label = await client.post("/feedback", json={**body, "label": "hamster"}, headers=AUTH)
        missing = await client.post("/feedback", json={"label": "dog"}, headers=AUTH)
        not_json = await client.post(
            "/feedback",
            content=b"{nope",
            headers={**AUTH, "Content-Type": "application/json"},
        )
    assert (no_token.status_code, no_token.json()["error"]) == (401, "no_token")
    assert bad_token.status_code == 403
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_prediction")
    assert (too_old.status_code, too_old.json()["error"]) == (404, "too_old")
    assert "retention" in too_old.json()["detail"]
    assert (bad_label.status_code, bad_label.json()["error"]) == (422, "bad_label")
    assert (missing.status_code, missing.json()["error"]) == (422, "missing_field")
    assert not_json.status_code == 422


async def test_a_store_that_is_down_fails_no_prediction(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "model")
    down = Settings(
        model=str(model),
        database_url="postgresql://postgres@127.0.0.1:1/nowhere",
        api_token=TOKEN,
        runners=1,
    )
    async with serving(down) as client:
        answers = [
            await client.post("/predict", files={"file": ("r.jpg", solid(RED))}) for _ in range(3)
        ]
        deadline = time.monotonic() + 20
        while True:
            metrics = (await client.get("/metrics")).text
            dropped = sample_value(
                metrics, "catdog_prediction_log_dropped_total", reason="store_down"
            )
            if dropped == 3 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        ready = await client.get("/ready")
        health = await client.get("/health")
        feedback = await client.post(
            "/feedback",
            json={"prediction_id": answers[0].json()["prediction_id"], "label": "cat"},
            headers=AUTH,
        )
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert dropped == 3
    assert sample_value(metrics, "catdog_prediction_store_up") == 0
    assert ready.status_code == 200
    assert health.status_code == 200
    assert health.json()["store"] == "degraded"
    assert (feedback.status_code, feedback.json()["error"]) == (503, "store_unavailable")
