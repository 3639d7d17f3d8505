"""Overload: offer twice the measured capacity for two minutes and watch the service cope.

First a closed-loop run at concurrency 8 measures capacity (images/s). Then requests arrive on a
fixed clock at `factor` x that rate (open loop) for `--seconds`, while the server's RSS is sampled
every second. Goals: no crash (alive and /ready after), the excess answered 503 within 50 ms
(p99), no request left without an answer, memory flat: RSS does not grow over the second half of
the overload (a full queue costs memory once; a leak keeps growing) and, after the load stops, is
still within the 300 MB RSS goal. Then a short closed-loop run shows the service back at speed,
and the large-upload case (benchmarks.serving.resilience): 20 slow 50 MiB uploads keep the
service's PSS within the same goal, and /health answers within 50 ms (p95) during a max batch.

Run: `python -m benchmarks.serving.overload` (about 3 minutes) or `--quick` (about 40 s).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.serving.harness import LoadPlan, catdog_spec, load
from benchmarks.serving.load_client import LoadReport, build_requests, open_loop
from benchmarks.serving.photos import add_photo_arguments, photos_from_args
from benchmarks.serving.resilience import large_uploads
from benchmarks.serving.results import Goal, print_goals, print_reports, result_path, write_json
from benchmarks.serving.servers import HOST, RunningServer, get_status, running

SETTLE_S = 5.0
REJECT_WITHIN_MS = 50.0
# RSS at the end of the overload over RSS half-way through: above this it is still growing.
FLAT_MEMORY_RATIO = 1.05
RSS_GOAL_MB = 300.0


async def _overload(
    server: RunningServer, requests: Sequence[bytes], rate: float, seconds: float
) -> tuple[LoadReport, list[tuple[float, float]]]:
    """The open-loop run, with the server's RSS sampled once a second alongside."""
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()

    async def sample_rss() -> None:
        while True:
            samples.append((time.perf_counter() - start, server.rss_mb()))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample_rss())
    try:
        report = await open_loop(
            HOST,
            server.port,
            requests,
            rate=rate,
            max_seconds=seconds,
            max_in_flight=512,
            timeout_s=30.0,
        )
    finally:
        sampler.cancel()
    return report, samples


def _second_half_growth(samples: Sequence[tuple[float, float]]) -> float:
    """RSS at the end of the overload over RSS half-way through it."""
    rss = [mb for _, mb in samples]
    return rss[-1] / rss[len(rss) // 2]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Capacity, overload, settle, recovery, on one server process."""
    photo_dir, photos = photos_from_args(args)
    spec = catdog_spec("catdog-reference", args.reference)
    capacity_plan = LoadPlan(seconds=args.capacity_seconds, requests=100_000)
    with running(spec) as server:
        capacity = load(server, photos, capacity_plan)
        rate = args.factor * capacity.images_per_s
        rss_before = server.rss_mb()
        requests = build_requests(HOST, server.port, spec.predict_path, photos, spec.upload_field)
        report, rss_samples = asyncio.run(_overload(server, requests, rate, args.seconds))
        time.sleep(SETTLE_S)
        rss_after = server.rss_mb()
        alive = server.alive()
        ready_after = get_status(server.port, spec.ready_path, timeout_s=5.0)
        recovery = load(
            server, photos, LoadPlan(seconds=args.capacity_seconds / 2, requests=100_000)
        )
        large = large_uploads(server)
    unanswered = report.status_counts.get("0", 0) + report.not_sent
    goals = [
        Goal(
            "overload: alive and ready afterwards",
            float(alive and ready_after == 200),
            ">=",
            1.0,
            "bool",
        ),
        Goal(
            "overload: 503 answered within (p99)",
            report.rejected_latency_ms["p99"],
            "<=",
            REJECT_WITHIN_MS,
            "ms",
        ),
        Goal("overload: requests without an answer", float(unanswered), "<=", 0.0, "requests"),
        Goal(
            "overload: RSS growth, 2nd half (end / mid)",
            _second_half_growth(rss_samples),
            "<=",
            FLAT_MEMORY_RATIO,
            "ratio",
        ),
        Goal("overload: RSS after the overload", rss_after, "<=", RSS_GOAL_MB, "MiB"),
        Goal(
            "large uploads: PSS peak, 20 x 50 MiB",
            large["pss_peak_mb"],
            "<=",
            RSS_GOAL_MB,
            "MiB",
        ),
        Goal(
            "large uploads: /health p95 during a max batch",
            large["health_during_max_batch_p95_ms"],
            "<=",
            REJECT_WITHIN_MS,
            "ms",
        ),
    ]
    return {
        "factor": args.factor,
        "seconds": args.seconds,
        "photos": len(photos),
        "photo_dir": str(photo_dir),
        "capacity": capacity.to_dict(),
        "offered_rate": rate,
        "overload": report.to_dict(),
        "recovery": recovery.to_dict(),
        "rss_mb": {
            "before": rss_before,
            "peak": max(r for _, r in rss_samples),
            "after": rss_after,
        },
        "rss_samples": rss_samples,
        "alive_after": alive,
        "ready_status_after": ready_after,
        "large_uploads": large,
        "goals": [g.to_dict() for g in goals],
    }


def print_result(result: dict[str, Any]) -> None:
    """Capacity, overload and recovery runs, then the goals."""
    reports = {
        "capacity (c=8)": LoadReport(**result["capacity"]),
        f"overload ({result['offered_rate']:.1f}/s offered)": LoadReport(**result["overload"]),
        "recovery (c=8)": LoadReport(**result["recovery"]),
    }
    print_reports("overload", reports)
    print_goals("overload goals", [Goal.from_dict(g) for g in result["goals"]])


def main(argv: Sequence[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Twice the capacity for two minutes: 503s, not a crash."
    )
    add_photo_arguments(parser)
    parser.add_argument("--reference", default=None, help="model to serve (default: reference)")
    parser.add_argument("--factor", type=float, default=2.0, help="offered rate / capacity")
    parser.add_argument("--seconds", type=float, default=120.0, help="overload duration")
    parser.add_argument("--capacity-seconds", type=float, default=20.0, help="capacity run length")
    parser.add_argument(
        "--quick", action="store_true", help="20 s of overload; writes serve_overload_quick.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.capacity_seconds = (
            min(args.seconds, 20.0),
            min(args.capacity_seconds, 8.0),
        )
    result = run(args)
    print_result(result)
    write_json(result_path("overload", quick=args.quick), result)


if __name__ == "__main__":
    main()
