"""`catdog serve` as a real process: SIGTERM drains, reload under load drops nothing, several
workers follow a reload, no torch in the serving process, `catdog smoke` against it."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from serving_support import RED, Server, catdog_cli, run_server, runner_pids, solid, stat_fields

pytestmark = pytest.mark.integration

TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def post_photo(url: str, photo: bytes, timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{url}/predict", files={"file": ("photo.jpg", photo)}, timeout=timeout)


def test_sigterm_finishes_requests_in_flight_and_exits_0(tmp_path: Path, tiny_model: Path) -> None:
    env = {"CATDOG_MAX_WAIT_MS": "1500", "CATDOG_MAX_BATCH": "8"}
    with run_server(tmp_path, "--model", str(tiny_model), env=env) as server:
        answers: list[httpx.Response] = []
        request = threading.Thread(
            target=lambda: answers.append(post_photo(server.url, solid(RED)))
        )
        request.start()
        time.sleep(0.4)  # admitted, decoded, waiting 1.5 s for company in the batcher
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.url}/health", timeout=1)
        request.join(10)
        code = server.process.wait(15)
    assert [a.status_code for a in answers] == [200], server.output()
    assert answers[0].json()["label"] == "cat"
    assert code == 0, server.output()


def test_reload_under_load_fails_no_request(
    tmp_path: Path, tiny_model: Path, tiny_model_v2: Path
) -> None:
    env = {"CATDOG_API_TOKEN": TOKEN, "CATDOG_MAX_WAIT_MS": "5"}
    statuses: list[int] = []
    versions: set[str] = set()
    lock = threading.Lock()

    def client_loop() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(30):
                response = client.post("/predict", files={"file": ("r.jpg", solid(RED))})
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        versions.add(response.json()["model_version"])

    with run_server(tmp_path, "--model", str(tiny_model), env=env) as server:
        clients = [threading.Thread(target=client_loop) for _ in range(4)]
        for thread in clients:
            thread.start()
        reloads = []
        for target in (tiny_model_v2, tiny_model, tiny_model_v2, tiny_model, tiny_model_v2):
            time.sleep(0.05)
            reloads.append(
                httpx.post(
                    f"{server.url}/admin/reload",
                    json={"model": str(target)},
                    headers=AUTH,
                    timeout=30,
                ).status_code
            )
        for thread in clients:
            thread.join(60)
    assert reloads == [200] * 5
    assert len(statuses) == 120
    assert set(statuses) == {200}, f"failed during reloads: {sorted(set(statuses))}"
    assert versions == {"tiny-1", "tiny-2"}


def test_every_worker_follows_a_reload(
    tmp_path: Path, tiny_model: Path, tiny_model_v2: Path
) -> None:
    env = {"CATDOG_API_TOKEN": TOKEN}

    def loads_of_v2(server: Server) -> int:
        lines = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
        return sum(
            line.get("event") == "model_loaded" and line.get("model_version") == "tiny-2"
            for line in lines
        )

    with run_server(tmp_path, "--model", str(tiny_model), "--workers", "2", env=env) as server:
        reload = httpx.post(
            f"{server.url}/admin/reload", json={"model": str(tiny_model_v2)}, headers=AUTH
        )
        # The other worker polls the shared generation file every second.
        deadline = time.monotonic() + 6
        while loads_of_v2(server) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        # A fresh connection per request, so that both workers may answer.
        fresh = {"Connection": "close"}
        seen = {
            httpx.get(f"{server.url}/model", headers=fresh).json()["version"] for _ in range(10)
        }
        for _ in range(6):
            httpx.post(
                f"{server.url}/predict", files={"file": ("r.jpg", solid(RED))}, headers=fresh
            )
        scrapes = [httpx.get(f"{server.url}/metrics", headers=fresh).text for _ in range(4)]
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(15)
    assert reload.status_code == 200
    assert loads_of_v2(server) == 2, "each of the 2 workers must load the new model once"
    assert seen == {"tiny-2"}
    # Any worker's /metrics counts every worker's predictions, and shows each one's live model:
    # both on the new version, none still on another. (A worker still starting when the reload
    # lands comes up on the new model directly, so how many old series exist depends on timing.)
    for text in scrapes:
        assert 'catdog_predictions_total{label="dog"} 6.0' in text
        live = re.findall(r'catdog_model_info\{[^}]*version="([^"]+)"\} 1\.0', text)
        assert live == ["tiny-2", "tiny-2"], text
    assert code == 0, server.output()


def test_smoke_passes_against_a_live_server_whose_event_loop_loads_no_torch_nor_numpy(
    tmp_path: Path, reference_model: Path
) -> None:
    env = {"CATDOG_MODEL": str(reference_model), "CATDOG_RUNNERS": "2"}
    with run_server(tmp_path, env=env) as server:
        smoke = catdog_cli("smoke", "--url", server.url, "--wait", "5")
        loop_maps = Path(f"/proc/{server.process.pid}/maps").read_text()
        runners = runner_pids(server.process.pid)
        runner_maps = [Path(f"/proc/{pid}/maps").read_text() for pid in runners]
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "classifies a cat photo" in smoke.stderr
    assert len(runners) == 2
    assert all("onnxruntime" in maps for maps in runner_maps), "the runners hold the sessions"
    assert "onnxruntime" not in loop_maps, "the event loop's process holds no session"
    # Nor the decoders and arrays: after answering (and logging) photos it has not loaded
    # NumPy or Pillow, which would cost it 22 MiB (runners send plain floats and each look).
    assert "numpy" not in loop_maps and "/PIL/" not in loop_maps
    assert all("numpy" in maps and "/PIL/" in maps for maps in runner_maps)
    for maps in [loop_maps, *runner_maps]:
        assert "libtorch" not in maps, "no serving process may load torch"


def test_runners_yield_to_the_event_loop(tmp_path: Path, tiny_model: Path) -> None:
    env = {"CATDOG_ORT_THREADS": "2", "CATDOG_RUNNERS": "2"}
    with run_server(tmp_path, "--model", str(tiny_model), env=env) as server:
        for _ in range(3):
            assert post_photo(server.url, solid(RED)).status_code == 200
        loop_nice = int(stat_fields(Path(f"/proc/{server.process.pid}/stat"))[16])
        runner_nice = {
            int(task.name): int(stat_fields(task / "stat")[16])
            for pid in runner_pids(server.process.pid)
            for task in Path(f"/proc/{pid}/task").iterdir()
        }
    assert loop_nice == 0, "the event loop keeps the normal priority"
    # Two runners, each with its main thread and ONNX Runtime's pool thread, all lowered.
    assert len(runner_nice) >= 4, runner_nice
    assert all(value >= 10 for value in runner_nice.values()), runner_nice


# Long enough for a dozen kills at c=8; the 60 s run is `benchmarks/serving/runner_kills.py`.
KILL_RUN_S = 12.0


def test_runners_killed_at_random_under_load_lose_no_request(
    tmp_path: Path, tiny_model: Path
) -> None:
    env = {"CATDOG_RUNNERS": "2"}
    statuses: list[int] = []
    lock = threading.Lock()
    with run_server(tmp_path, "--model", str(tiny_model), env=env) as server:
        stop = time.monotonic() + KILL_RUN_S

        def client_loop() -> None:
            with httpx.Client(base_url=server.url, timeout=15) as client:
                while time.monotonic() < stop:
                    response = client.post("/predict", files={"file": ("r.jpg", solid(RED))})
                    with lock:
                        statuses.append(response.status_code)

        clients = [threading.Thread(target=client_loop) for _ in range(8)]
        for thread in clients:
            thread.start()
        rng = random.Random(18)
        kills = 0
        while time.monotonic() < stop - 1:
            time.sleep(rng.uniform(0.4, 1.2))
            alive = runner_pids(server.process.pid)
            if alive:
                os.kill(rng.choice(alive), signal.SIGKILL)
                kills += 1
        for thread in clients:
            thread.join(30)
        deadline = time.monotonic() + 10
        while len(runner_pids(server.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)  # the last kill's runner may still be starting
        after = runner_pids(server.process.pid)
        metrics = httpx.get(f"{server.url}/metrics").text
    failed = [status for status in statuses if status != 200]
    assert kills >= 6
    assert len(statuses) > 100, statuses
    assert failed == [], f"{len(failed)} of {len(statuses)} requests failed: {set(failed)}"
    assert len(after) == 2, "every killed runner was replaced"
    restarts = re.search(r'catdog_runner_restarts_total\{cause="exited"\} (\S+)', metrics)
    # A runner killed while it starts (~1 s on a busy host) is counted once, when one starts.
    assert restarts is not None and 1 <= float(restarts.group(1)) <= kills, metrics
    assert '"event": "batch_retried"' in server.output(), "the re-run batches are logged"


def test_smoke_fails_against_a_wrong_model_or_no_server(
    tmp_path: Path, tiny_model_v2: Path
) -> None:
    with run_server(tmp_path, "--model", str(tiny_model_v2)) as server:
        wrong = catdog_cli("smoke", "--url", server.url, "--wait", "5")
    nothing = catdog_cli("smoke", "--url", server.url, "--wait", "0")
    assert wrong.returncode == 9, wrong.stderr
    assert "FAIL classifies a cat photo" in wrong.stderr
    assert "ok   refuses a broken file" in wrong.stderr
    assert nothing.returncode == 9
    assert "smoke_failed" in nothing.stderr


def test_serve_refuses_a_missing_model_at_once(tmp_path: Path) -> None:
    result = catdog_cli("serve", "--model", str(tmp_path / "none.onnx"))
    assert result.returncode == 6
    assert "model not found" in result.stderr


def test_workers_converge_on_one_model_when_a_follower_first_fails_to_load(
    tmp_path: Path, tiny_model: Path, tiny_model_v2: Path
) -> None:
    env = {"CATDOG_API_TOKEN": TOKEN}
    hidden = tiny_model_v2.with_name("hidden.onnx")
    with run_server(tmp_path, "--model", str(tiny_model), "--workers", "2", env=env) as server:
        # Both workers up on tiny-1 before the reload.
        fresh = {"Connection": "close"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = httpx.get(f"{server.url}/metrics", headers=fresh).text
            if len(re.findall(r"catdog_model_info\{[^}]*\} 1\.0", text)) == 2:
                break
            time.sleep(0.1)
        reload = httpx.post(
            f"{server.url}/admin/reload", json={"model": str(tiny_model_v2)}, headers=AUTH
        )
        tiny_model_v2.rename(hidden)  # the other worker cannot read it at first
        time.sleep(2.5)
        hidden.rename(tiny_model_v2)
        deadline = time.monotonic() + 15
        while True:
            text = httpx.get(f"{server.url}/metrics", headers=fresh).text
            live = re.findall(r'catdog_model_info\{[^}]*version="([^"]+)"\} 1\.0', text)
            if live == ["tiny-2", "tiny-2"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        seen = {httpx.get(f"{server.url}/ready", headers=fresh).json()["model_version"]}
        seen |= {
            httpx.get(f"{server.url}/ready", headers=fresh).json()["model_version"]
            for _ in range(10)
        }
    assert reload.status_code == 200, reload.text
    assert '"event": "model_follow_failed"' in server.output(), "the follower failed first"
    assert live == ["tiny-2", "tiny-2"], text
    assert seen == {"tiny-2"}
