"""The service's container image, built and run for real (deploy/docker/Dockerfile)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from containers import ROOT, Engine, free_port, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PHOTOS = sorted((ROOT / "samples" / "petimages").glob("*/*.jpg"))[:8]
REFERENCE = ROOT / "src" / "catdog" / "reference"
GRACE_S = 10
# httpx's words for a connection closed before any byte of the response came back.
IDLE_CLOSE = "Server disconnected without sending a response"


def start(engine: Engine, image: str, *args: str, env: dict[str, str] | None = None) -> str:
    """`docker run -d --network=host` with a free port; the container's name."""
    name = f"catdog-test-{uuid.uuid4().hex[:8]}"
    flags = [f"--env={k}={v}" for k, v in (env or {}).items()]
    engine.run("run", "-d", "--name", name, "--network=host", *flags, *args, image)
    return name


def mounted_models(tmp_path: Path) -> Path:
    """A folder to mount at /models: a model and its card (the reference model's copy)."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("model.onnx", "model.card.json"):
        shutil.copy(REFERENCE / name, models / name)
        (models / name).chmod(0o644)
    models.chmod(0o755)
    return models


def remove(engine: Engine, name: str) -> None:
    engine.run("rm", "-f", name, check=False)


def test_serves_a_mounted_model_read_only_as_non_root_and_reports_healthy(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """`catdog smoke` passes against the container, on a read-only root filesystem; it runs as
    a non-root user; the image's HEALTHCHECK (run every second here) turns healthy."""
    models = mounted_models(tmp_path)
    port = free_port()
    name = start(
        engine,
        image,
        f"--volume={models}:/models:ro",
        "--read-only",  # as in the Kubernetes manifests: only /tmp is writable
        "--tmpfs=/tmp",
        "--health-interval=1s",
        env={"CATDOG_PORT": str(port), "CATDOG_MODEL": "/models/model.onnx"},
    )
    try:
        smoke = subprocess.run(
            [sys.executable, "-m", "catdog", "smoke", "--url", f"http://127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert smoke.returncode == 0, smoke.stdout + smoke.stderr + engine.run("logs", name).stderr
        uid = engine.run("exec", name, "id", "-u").stdout.strip()
        assert uid != "0"
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline and status != "healthy":
            status = engine.run("inspect", "--format", "{{.State.Health.Status}}", name).stdout
            status = status.strip()
            time.sleep(0.5)
        assert status == "healthy"
    finally:
        remove(engine, name)


def test_docker_stop_under_load_fails_no_request(engine: Engine, image: str) -> None:
    """Four clients post photos without pause; `docker stop` drains: every request the server
    read got a 200, and the process exits 0 within the grace period (not SIGKILLed)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name = start(engine, image, env={"CATDOG_PORT": str(port)})
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    stopping = threading.Event()

    def post(http: httpx.Client, photo: Path) -> str:
        """One upload's outcome. A keep-alive connection the server closed while idle, just as
        the request went out, is retried once, as HTTP/1.1 clients do (RFC 9112, 9.3.1): the
        server never read that request. A disconnect after it did is a failure."""
        for attempt in range(2):
            try:
                response = http.post("/predict", files={"file": (photo.name, photo.read_bytes())})
                return str(response.status_code)
            except httpx.ConnectError:
                return "refused"  # the listener is closed: the request was never sent
            except httpx.RemoteProtocolError as exc:
                if attempt or not str(exc).startswith(IDLE_CLOSE):
                    return type(exc).__name__
                with lock:
                    outcomes["idle connection closed, retried"] += 1
            except httpx.HTTPError as exc:
                return type(exc).__name__
        raise AssertionError("unreachable")

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(400):  # bounded: at most 1,600 requests in all
                outcome = post(http, PHOTOS[(offset + i) % len(PHOTOS)])
                with lock:
                    outcomes[outcome] += 1
                if outcome == "refused" and stopping.is_set():
                    return

    try:
        wait_ready(url)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        while outcomes["200"] < 40 and any(t.is_alive() for t in threads):
            time.sleep(0.05)
        stopping.set()
        began = time.monotonic()
        engine.run("stop", "--time", str(GRACE_S), name, timeout=GRACE_S + 30)
        took = time.monotonic() - began
        for thread in threads:
            thread.join(timeout=60)
        state = engine.run("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        fine = {"200", "refused", "idle connection closed, retried"}
        failed = {k: v for k, v in outcomes.items() if k not in fine}
        assert failed == {}, f"requests failed during the drain: {dict(outcomes)}"
        assert outcomes["200"] >= 40
        assert state == "0", engine.run("logs", "--tail", "20", name).stderr
        assert took < GRACE_S
    finally:
        remove(engine, name)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CATDOG_PORT": "eighty"}, "CATDOG_PORT"),
        ({"CATDOG_MAX_BATCH": "0"}, "CATDOG_MAX_BATCH"),
        ({"CATDOG_LOG_LEVEL": "loud"}, "CATDOG_LOG_LEVEL"),
        ({"CATDOG_MODEL": "/models/missing.onnx"}, "/models/missing.onnx"),
        ({"CATDOG_API_TOKEN_FILE": "/run/secrets/missing"}, "CATDOG_API_TOKEN_FILE"),
    ],
    ids=["port", "max-batch", "log-level", "missing-model", "unreadable-token-file"],
)
def test_bad_configuration_exits_non_zero_with_a_one_line_reason(
    engine: Engine, image: str, env: dict[str, str], expected: str
) -> None:
    name = f"catdog-test-{uuid.uuid4().hex[:8]}"
    flags = [f"--env={k}={v}" for k, v in {"CATDOG_PORT": str(free_port()), **env}.items()]
    try:
        done = engine.run(
            "run", "--name", name, "--network=host", *flags, image, check=False, timeout=120
        )
        assert done.returncode not in (0, 125), done.stderr  # 125: docker itself failed
        logs = engine.run("logs", name)
        lines = [line for line in (logs.stdout + logs.stderr).splitlines() if line.strip()]
        assert len(lines) == 1, lines
        assert expected in lines[0]
        assert "Traceback" not in lines[0]
    finally:
        remove(engine, name)
