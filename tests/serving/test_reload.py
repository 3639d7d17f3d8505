"""POST /admin/reload: bearer token, atomic swap, requests in flight finish on the old model,
a bad model is refused and the old one keeps serving, other workers follow."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from serving_support import RED, serving, serving_service, solid, write_tiny_model

from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_admin_is_disabled_without_a_configured_token(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model))) as client:
        response = await client.post("/admin/reload", json={"model": None}, headers=AUTH)
    assert response.status_code == 403
    assert response.json()["error"] == "admin_disabled"


async def test_admin_needs_the_right_bearer_token(tiny_model: Path) -> None:
    async with serving(
        Settings(model=str(tiny_model), api_token=TOKEN, model_root=tiny_model.parents[1])
    ) as client:
        missing = await client.post("/admin/reload", json={"model": str(tiny_model)})
        wrong = await client.post(
            "/admin/reload",
            json={"model": str(tiny_model)},
            headers={"Authorization": "Bearer guess"},
        )
    assert missing.status_code == 401
    assert missing.json()["error"] == "no_token"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 403
    assert wrong.json()["error"] == "bad_token"


async def test_a_non_ascii_token_is_refused_not_a_500(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model), api_token=TOKEN)) as client:
        response = await client.post(
            "/admin/reload",
            json={"model": None},
            headers={"Authorization": "Bearer chât-noir".encode()},
        )
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "bad_token"


async def test_a_non_ascii_token_that_is_right_is_accepted(tiny_model: Path) -> None:
    token = "chât-noir-ü"
    settings = Settings(model=str(tiny_model), api_token=token, model_root=tiny_model.parents[1])
    async with serving(settings) as client:
        response = await client.post(
            "/admin/reload",
            json={"model": str(tiny_model)},
            headers={"Authorization": f"Bearer {token}".encode()},
        )
    assert response.status_code == 200, response.text


async def test_reload_reads_only_registry_uris_and_paths_under_the_model_root(
    tiny_model: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    settings = Settings(model=str(tiny_model), api_token=TOKEN, model_root=root)
    async with serving(settings) as client:
        answers = {
            target: await client.post("/admin/reload", json={"model": target}, headers=AUTH)
            for target in (
                "/etc/passwd",
                "/nowhere/model.onnx",
                str(root / ".." / "tiny-1"),
                "model\x00.onnx",  # found by schemathesis: a 500 once
            )
        }
        still = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
    for target, response in answers.items():
        assert response.status_code == 422, (target, response.text)
        assert response.json()["error"] == "model_outside_root"
        # The same sentence whether the file exists or not: no oracle for the file system.
        assert "ONNX" not in response.json()["detail"] and "not found" not in response.text
    assert still.json()["model_version"] == "tiny-1"


# A runner that dies while it loads a model: a fault of the service, not of the model.
CRASH_ON_LOAD = """
import os
import signal

import onnxruntime

_Session = onnxruntime.InferenceSession


class CrashingSession(_Session):
    def __init__(self, path, *args, **kwargs):
        if "crash-on-load" in str(path):
            os.kill(os.getpid(), signal.SIGSEGV)
        super().__init__(path, *args, **kwargs)


onnxruntime.InferenceSession = CrashingSession
"""


async def test_a_runner_that_dies_during_a_reload_is_a_503(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(CRASH_ON_LOAD, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(plant))
    crashing = write_tiny_model(tmp_path / "crash-on-load", version="tiny-crash")
    settings = Settings(model=str(tiny_model), api_token=TOKEN, model_root=tmp_path, runners=1)
    async with serving(settings) as client:
        reload = await client.post("/admin/reload", json={"model": str(crashing)}, headers=AUTH)
        still = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
    assert reload.status_code == 503, reload.text
    assert reload.json()["error"] == "runner_stopped"
    assert reload.headers["retry-after"] == "1"
    assert still.status_code == 200
    assert still.json()["model_version"] == "tiny-1", "the old model keeps serving"


async def test_reload_swaps_the_model(tiny_model: Path, tiny_model_v2: Path) -> None:
    async with serving(
        Settings(model=str(tiny_model), api_token=TOKEN, model_root=tiny_model.parents[1])
    ) as client:
        before = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        reload = await client.post(
            "/admin/reload", json={"model": str(tiny_model_v2.parent)}, headers=AUTH
        )
        after = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        card = (await client.get("/model")).json()
        metrics = (await client.get("/metrics")).text
    assert reload.status_code == 200, reload.text
    assert reload.json()["model_version"] == "tiny-2"
    assert reload.json()["previous_version"] == "tiny-1"
    assert (before.json()["model_version"], before.json()["label"]) == ("tiny-1", "cat")
    assert (after.json()["model_version"], after.json()["label"]) == ("tiny-2", "dog")
    assert card["version"] == "tiny-2"
    assert 'catdog_model_info{name="tiny",version="tiny-2"} 1.0' in metrics
    assert 'version="tiny-1"' not in metrics


async def test_a_bad_model_is_refused_and_the_old_one_keeps_serving(
    tiny_model: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not onnx")
    (broken / "model.card.json").write_text('{"version": "x", "preprocessing": {"size": 32}}')
    async with serving(
        Settings(model=str(tiny_model), api_token=TOKEN, model_root=tiny_model.parents[1])
    ) as client:
        missing = await client.post(
            "/admin/reload", json={"model": str(tmp_path / "nowhere.onnx")}, headers=AUTH
        )
        unloadable = await client.post("/admin/reload", json={"model": str(broken)}, headers=AUTH)
        still = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
    for response in (missing, unloadable):
        assert response.status_code == 422
        assert response.json()["error"] == "bad_model"
    assert still.json()["model_version"] == "tiny-1"


async def test_requests_in_flight_finish_on_the_model_they_started_on(
    tiny_model: Path, tiny_model_v2: Path
) -> None:
    settings = Settings(
        model=str(tiny_model),
        api_token=TOKEN,
        model_root=tiny_model.parents[1],
        max_batch=8,
        max_wait_ms=500,
    )
    async with serving(settings) as client:
        in_flight = asyncio.create_task(
            client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        )
        await asyncio.sleep(0.1)  # decoded for tiny-1 (32 px), now waiting in the batcher
        reload = await client.post(
            "/admin/reload", json={"model": str(tiny_model_v2)}, headers=AUTH
        )
        after = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
        first = await in_flight
    assert reload.status_code == 200
    assert first.status_code == 200
    assert first.json()["model_version"] == "tiny-1"
    assert after.json()["model_version"] == "tiny-2"


async def test_other_workers_follow_a_reload(
    tiny_model: Path, tiny_model_v2: Path, tmp_path: Path
) -> None:
    """Two apps sharing a generation file stand for two worker processes."""
    shared = tmp_path / "generation.json"
    settings = Settings(
        model=str(tiny_model), api_token=TOKEN, model_root=tiny_model.parents[1], reload_file=shared
    )
    async with serving(settings) as one, serving(settings) as two:
        reload = await one.post("/admin/reload", json={"model": str(tiny_model_v2)}, headers=AUTH)
        assert reload.status_code == 200
        assert "follow" in reload.json()["workers"]
        deadline = time.monotonic() + 5
        version = ""
        while version != "tiny-2" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            version = (await two.get("/model")).json()["version"]
        mine = (await one.get("/model")).json()["version"]
    assert version == "tiny-2", "the other worker did not follow the reload"
    assert mine == "tiny-2"


async def test_a_new_worker_starts_on_the_reloaded_model(
    tiny_model: Path, tiny_model_v2: Path, tmp_path: Path
) -> None:
    """A worker (re)started after a reload serves what the others serve, not CATDOG_MODEL."""
    shared = tmp_path / "generation.json"
    settings = Settings(
        model=str(tiny_model), api_token=TOKEN, model_root=tiny_model.parents[1], reload_file=shared
    )
    async with serving(settings) as one:
        await one.post("/admin/reload", json={"model": str(tiny_model_v2)}, headers=AUTH)
    async with serving(settings) as restarted:
        assert (await restarted.get("/model")).json()["version"] == "tiny-2"


async def test_reload_by_registry_alias(
    tiny_model: Path, tiny_model_v2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`models:/NAME@ALIAS` through a real MLflow registry (SQLite): the ONNX export and its
    card are the run's `onnx/` artifacts, as `catdog export` attaches them."""
    import mlflow  # noqa: PLC0415 - the torch-free serve install works without it
    from mlflow import MlflowClient  # noqa: PLC0415

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("serve", artifact_location=str(tmp_path / "art"))
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_artifacts(str(tiny_model_v2.parent), artifact_path="onnx")
        client = MlflowClient()
        client.create_registered_model("catdog-serving-test")
        version = client.create_model_version(
            "catdog-serving-test", source=run.info.artifact_uri, run_id=run.info.run_id
        )
        client.set_registered_model_alias("catdog-serving-test", "champion", version.version)
        settings = Settings(model=str(tiny_model), api_token=TOKEN, model_root=tmp_path)
        async with serving_service(settings) as (client_http, service):
            champion = {"model": "models:/catdog-serving-test@champion"}
            reload = await client_http.post("/admin/reload", json=champion, headers=AUTH)
            again = await client_http.post("/admin/reload", json=champion, headers=AUTH)
            unknown = await client_http.post(
                "/admin/reload", json={"model": "models:/catdog-serving-test@nobody"}, headers=AUTH
            )
            served = (await client_http.get("/model")).json()["version"]
            cache = service.models.cache
            for _ in range(100):  # the first download goes once its model left the runners
                if len(list(cache.iterdir())) == 1:
                    break
                await asyncio.sleep(0.05)
            downloads = list(cache.iterdir())
    finally:
        mlflow.set_tracking_uri(None)
    assert again.status_code == 200
    assert len(downloads) == 1, "one cache, holding only the model served"
    assert not cache.exists(), "the cache is removed when the service stops"
    assert reload.status_code == 200, reload.text
    assert reload.json()["model_version"] == "tiny-2"
    assert served == "tiny-2"
    assert unknown.status_code == 422
    assert unknown.json()["error"] == "bad_model"
