"""Bounded memory under slow and large uploads, against `catdog serve` over real sockets: bytes
in flight are reserved before a body is read, so 20 slow 50 MiB uploads cannot take the service
past its memory budget; a 1 byte/s client holds no runner and stalls nobody; a client that
leaves mid-upload or mid-response leaves no reserved bytes and no queue slot behind."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from serving_support import RED, Server, metric, run_server, runner_pids, solid

from benchmarks.serving.slow_upload import (
    MIB,
    multipart_body,
    request_head,
    send_slowly,
    status_of,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The budget for the whole service (event loop process and runners) under this load.
SERVICE_RSS_BUDGET = 300 * MIB


def rss(pids: list[int]) -> int:
    """Resident bytes of these processes together."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in fields:
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def service_pids(server: Server) -> list[int]:
    return [server.process.pid, *runner_pids(server.process.pid)]


def test_twenty_slow_50_mib_uploads_stay_within_the_memory_budget(
    tmp_path: Path, tiny_model: Path
) -> None:
    env = {"CATDOG_RUNNERS": "2", "CATDOG_REQUEST_TIMEOUT_S": "30"}
    with run_server(tmp_path, "--model", str(tiny_model), env=env) as server:
        assert httpx.post(f"{server.url}/predict", files={"file": ("r.jpg", solid(RED))})
        baseline = rss(service_pids(server))
        # 5 files (not photos) just under the 10 MiB limit: ~50 MiB
        parts = multipart_body([bytes(10 * MIB - 4096)] * 5)
        port = int(server.url.rsplit(":", 1)[1])
        statuses: list[int | None] = []
        clients = [
            threading.Thread(target=lambda: statuses.append(send_slowly(port, parts, 25 * MIB)))
            for _ in range(20)
        ]
        peak = baseline
        peaks = [0, 0, 0]
        for thread in clients:
            thread.start()
        while any(thread.is_alive() for thread in clients):
            each_now = [rss([pid]) for pid in service_pids(server)]
            peaks = [max(a, b) for a, b in zip(peaks, each_now, strict=False)]
            peak = max(peak, sum(each_now))
            time.sleep(0.05)
        time.sleep(2)  # the runners hand freed memory back after a large batch
        after = rss(service_pids(server))
        each = [rss([pid]) // MIB for pid in service_pids(server)]
        health = httpx.get(f"{server.url}/health")
        metrics = httpx.get(f"{server.url}/metrics").text
    assert len(statuses) == 20
    assert statuses.count(200) >= 1, statuses  # admitted ones are answered (each file refused)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 10, "what does not fit in the budget is refused at once"
    assert peak <= SERVICE_RSS_BUDGET, (
        f"peak {peak / MIB:.0f} MiB (baseline {baseline / MIB:.0f}; "
        f"each process's peak {[p // MIB for p in peaks]})"
    )
    assert after <= baseline + 20 * MIB, (
        f"{after / MIB:.0f} MiB after (main, runners: {each}), {baseline / MIB:.0f} before"
    )
    assert health.status_code == 200
    assert metric(metrics, "catdog_body_bytes_in_flight") == 0


def test_a_one_byte_per_second_client_holds_nothing_and_stalls_nobody(
    tmp_path: Path, tiny_model: Path
) -> None:
    env = {"CATDOG_BODY_TIMEOUT_S": "3", "CATDOG_QUEUE_SIZE": "2", "CATDOG_MAX_BATCH_FILES": "2"}
    with run_server(tmp_path, "--model", str(tiny_model), env=env) as server:
        host, port = server.url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        body = b"".join(multipart_body([solid(RED)], field="file"))
        slow.sendall(request_head("/predict", len(body)))
        dripping = threading.Event()

        def drip() -> None:
            for byte in body:
                if dripping.is_set():
                    return
                try:
                    slow.send(bytes([byte]))
                except OSError:
                    return
                time.sleep(1)

        dripper = threading.Thread(target=drip)
        dripper.start()
        started = time.monotonic()
        others = [
            httpx.post(f"{server.url}/predict", files={"file": ("r.jpg", solid(RED))})
            for _ in range(6)  # more than CATDOG_QUEUE_SIZE: the slow one holds no slot
        ]
        others_took = time.monotonic() - started
        slow_status = status_of(slow)
        dripping.set()
        dripper.join()
        slow.close()
        metrics = httpx.get(f"{server.url}/metrics").text
    assert [r.status_code for r in others] == [200] * 6
    assert others_took < 3, "nobody waited for the slow client"
    assert slow_status == 408
    assert metric(metrics, "catdog_body_bytes_in_flight") == 0
    assert metric(metrics, "catdog_images_in_flight") == 0


def test_clients_that_leave_mid_upload_or_mid_response_leave_nothing_behind(
    tmp_path: Path, tiny_model: Path
) -> None:
    env = {"CATDOG_QUEUE_SIZE": "2", "CATDOG_MAX_BATCH_FILES": "2", "CATDOG_MAX_WAIT_MS": "200"}
    with run_server(tmp_path, "--model", str(tiny_model), env=env) as server:
        host, port = server.url.removeprefix("http://").split(":")
        body = b"".join(multipart_body([solid(RED)], field="file"))
        for cut in (len(body) // 2, len(body)):  # mid-upload, then before reading the answer
            for _ in range(5):
                with socket.create_connection((host, int(port))) as sock:
                    sock.sendall(request_head("/predict", len(body)) + body[:cut])
        time.sleep(1.0)  # the abandoned ones finish (their answers go nowhere)
        answers = [
            httpx.post(f"{server.url}/predict", files={"file": ("r.jpg", solid(RED))})
            for _ in range(4)
        ]
        metrics = httpx.get(f"{server.url}/metrics").text
    assert [a.status_code for a in answers] == [200] * 4, "no queue slot is stuck"
    assert metric(metrics, "catdog_body_bytes_in_flight") == 0
    assert metric(metrics, "catdog_images_in_flight") == 0
    assert metric(metrics, "catdog_requests_total", method="POST", route="/predict", status="499")
    assert not metric(
        metrics, "catdog_requests_total", method="POST", route="unmatched", status="500"
    )
