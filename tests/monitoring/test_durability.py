"""Acknowledged feedback survives kill -9: a real `catdog serve`, killed during a burst of
feedback writes, restarted; every label it answered 200 for is in the store."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.serving.serving_support import BLUE, RED, run_server, solid, write_tiny_model

from catdog.monitoring.store import PredictionStore

TOKEN = "durable-token"
PHOTOS = 40


@pytest.mark.integration
@pytest.mark.slow
def test_acknowledged_feedback_survives_kill_9(tmp_path: Path, store_url: str) -> None:
    model = write_tiny_model(tmp_path / "model")
    env = {"CATDOG_API_TOKEN": TOKEN, "CATDOG_DATABASE_URL": store_url, "CATDOG_RUNNERS": "1"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    acknowledged: dict[str, str] = {}
    in_flight: dict[str, str] = {}  # sent when the kill came: may or may not be stored
    with run_server(tmp_path, "--model", str(model), env=env) as server:
        ids = []
        for i in range(PHOTOS):
            photo = solid(RED if i % 2 else BLUE)
            answer = httpx.post(f"{server.url}/predict", files={"file": ("p.jpg", photo)})
            ids.append(answer.json()["prediction_id"])

        def burst(offset: int) -> None:
            with httpx.Client(base_url=server.url, headers=auth, timeout=5) as client:
                for n, pid in enumerate(ids[offset::4] * 50):
                    label = ("cat", "dog")[n % 2]
                    in_flight[pid] = label
                    try:
                        reply = client.post(
                            "/feedback", json={"prediction_id": pid, "label": label}
                        )
                    except httpx.TransportError:
                        return  # killed
                    del in_flight[pid]
                    if reply.status_code == 200:
                        acknowledged[pid] = label  # per id, the last acknowledged label

        threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < PHOTOS // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        for thread in threads:
            thread.join(10)
    assert len(acknowledged) >= PHOTOS // 2
    with run_server(tmp_path, "--model", str(model), env=env) as restarted:
        assert httpx.get(f"{restarted.url}/health").json()["store"] in ("ok", "starting")
    store = PredictionStore(store_url)
    stored = {r.id: r.feedback_label for r in store.predictions()}
    store.close()
    assert len(stored) == PHOTOS
    lost = {
        pid: label
        for pid, label in acknowledged.items()
        if stored[pid] not in (label, in_flight.get(pid))
    }
    assert not lost, f"acknowledged but not stored: {lost}"
