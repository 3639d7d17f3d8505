"""Resilience figures of `catdog serve` (the shipped model, real photos, 127.0.0.1 only).

- `kills`: c=8 closed-loop clients for `--seconds` (60) while a random runner is SIGKILLed every
  0.5-1.5 s: requests answered, failed (goal: 0), kills, restarts.
- `uploads`: 20 clients each send a 50 MiB /predict/batch body at 25 MiB/s: the service's PSS
  (event loop process and runners) at its peak and after (goal: <= 300 MB, back at baseline);
  then /health latency while one maximum-size batch is sent (goal: p95 <= 50 ms), and a 1 byte/s
  client beside normal requests (it holds nothing: they are answered as fast as without it).

Run: `python -m benchmarks.serving.resilience kills|uploads [--seconds 60]`; writes
benchmarks/results/serve_resilience_<what>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import threading
import time
from collections.abc import Sequence
from typing import Any

import httpx

from benchmarks.serving.harness import catdog_spec
from benchmarks.serving.load_client import LoadReport, build_requests, closed_loop
from benchmarks.serving.photos import default_photo_dir, load_photos
from benchmarks.serving.results import result_path, write_json
from benchmarks.serving.servers import HOST, RunningServer, _process_tree, running
from benchmarks.serving.slow_upload import MIB, multipart_body, send_slowly

# Bounds the kill run in count as well as in time (it stops at --seconds long before).
MAX_KILL_RUN_REQUESTS = 100_000

os.environ.setdefault("DO_NOT_TRACK", "1")


def runner_pids(server: RunningServer) -> list[int]:
    return [pid for pid in _process_tree(server.pid) if pid != server.pid]


def kills(seconds: float) -> dict[str, Any]:
    """Random runner kills under c=8 load (`catdog simulate`'s sender, closed loop): how many
    requests failed."""
    photos = load_photos(default_photo_dir(), 64)
    with running(catdog_spec("catdog-kills", None)) as server:
        requests = build_requests(HOST, server.port, "/predict", photos)
        reports: list[LoadReport] = []
        load = threading.Thread(
            target=lambda: reports.append(
                asyncio.run(
                    closed_loop(
                        HOST,
                        server.port,
                        requests,
                        concurrency=8,
                        max_requests=MAX_KILL_RUN_REQUESTS,
                        max_seconds=seconds,
                    )
                )
            )
        )
        load.start()
        stop = time.monotonic() + seconds
        rng = random.Random(18)
        killed = 0
        while time.monotonic() < stop - 1 and load.is_alive():
            time.sleep(rng.uniform(0.5, 1.5))
            alive = runner_pids(server)
            if alive:
                os.kill(rng.choice(alive), signal.SIGKILL)
                killed += 1
        load.join(seconds + 60)
        metrics = httpx.get(f"http://{HOST}:{server.port}/metrics").text
    (report,) = reports
    restarts = re.search(r'catdog_runner_restarts_total\{cause="exited"\} (\S+)', metrics)
    failed = {code: n for code, n in report.status_counts.items() if code != "200"}
    return {
        "seconds": seconds,
        "concurrency": 8,
        "requests": report.requests,
        "failed": sum(failed.values()),
        "failed_statuses": sorted(failed),
        "errors": report.errors,
        "kills": killed,
        "restarts": float(restarts.group(1)) if restarts else 0.0,
        "p50_ms": round(report.latency_ms["p50"], 1),
        "p99_ms": round(report.latency_ms["p99"], 1),
        "max_ms": round(report.latency_ms["max"], 1),
    }


def uploads() -> dict[str, Any]:
    """`large_uploads` on a service of its own."""
    with running(catdog_spec("catdog-uploads", None)) as server:
        return large_uploads(server)


def large_uploads(server: RunningServer) -> dict[str, Any]:
    """Memory under 20 slow 50 MiB uploads; /health during a maximum-size batch."""
    rng = random.Random(18)
    noise = bytes(rng.getrandbits(8) for _ in range(MIB))  # incompressible, not a photo
    ten = noise * 10
    baseline = server.pss_mb()
    parts = multipart_body([ten[: 10 * MIB - 4096]] * 5)
    statuses: list[int | None] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(send_slowly(server.port, parts, 25 * MIB)))
        for _ in range(20)
    ]
    peak = baseline
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, server.pss_mb())
        time.sleep(0.05)
    time.sleep(2)
    after = server.pss_mb()
    # One maximum-size batch (as many 10 MiB files as CATDOG_BODY_BUDGET_MB admits), with
    # /health polled beside it.
    big = multipart_body([ten[: 10 * MIB - 4096]] * 9)
    health: list[float] = []
    sender = threading.Thread(target=lambda: send_slowly(server.port, big, 200 * MIB))
    sender.start()
    with httpx.Client(base_url=f"http://{HOST}:{server.port}", timeout=10) as http:
        while sender.is_alive():
            started = time.perf_counter()
            http.get("/health")
            health.append(time.perf_counter() - started)
            time.sleep(0.01)
    sender.join()
    health.sort()
    return {
        "clients": 20,
        "body_mib": 50,
        "statuses": {str(code): statuses.count(code) for code in sorted(set(statuses), key=str)},
        "pss_baseline_mb": round(baseline, 1),
        "pss_peak_mb": round(peak, 1),
        "pss_after_mb": round(after, 1),
        "health_during_max_batch_p50_ms": round(1000 * statistics.median(health), 1),
        "health_during_max_batch_p95_ms": round(1000 * health[int(len(health) * 0.95)], 1),
        "health_samples": len(health),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Runner kills and large uploads.")
    parser.add_argument("what", choices=["kills", "uploads"])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the kill run")
    args = parser.parse_args(argv)
    result = kills(args.seconds) if args.what == "kills" else uploads()
    for key, value in result.items():
        print(f"{key:>36}: {value}")
    write_json(result_path(f"resilience_{args.what}", quick=False), result)


if __name__ == "__main__":
    main()
