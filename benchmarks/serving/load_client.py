"""The load client: fixed concurrency (closed loop) or fixed arrival rate (open loop), bounded.

Closed loop answers "how many images/s at concurrency 8 and how fast": each of N workers posts a
photo, waits for the answer, posts the next. Open loop answers "what happens under overload":
requests arrive on a clock whether or not earlier ones were answered, as real users do, so a
server that falls behind cannot slow the arrivals down and hide it. Both stop at whichever comes
first, a request count or a wall time, and target 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.serving.http1 import Connection, build_upload
from benchmarks.serving.photos import Photo, add_photo_arguments, photos_from_args

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
REJECTED = 503


@dataclass(frozen=True)
class Outcome:
    """One request: its HTTP status (0 when no answer came) and how long the answer took."""

    status: int
    latency_s: float
    error: str = ""


@dataclass
class LoadReport:
    """The figures of one bounded run, ready for JSON."""

    mode: str
    concurrency: int | None
    offered_rate: float | None
    requests: int
    elapsed_s: float
    images_per_s: float
    latency_ms: dict[str, float]
    status_counts: dict[str, int]
    rejected_latency_ms: dict[str, float]
    errors: dict[str, int]
    client_cpu_s: float
    not_sent: int = 0
    max_send_lag_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between ranks, as numpy's default."""
    if not values:
        return math.nan
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0 and 100, not {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max/mean in milliseconds (NaN where there is nothing to summarise)."""
    ms = [x * 1000.0 for x in latencies_s]
    return {
        "count": float(len(ms)),
        "p50": percentile(ms, 50),
        "p95": percentile(ms, 95),
        "p99": percentile(ms, 99),
        "max": max(ms) if ms else math.nan,
        "mean": sum(ms) / len(ms) if ms else math.nan,
    }


def summarise(
    outcomes: Sequence[Outcome],
    elapsed_s: float,
    *,
    mode: str,
    concurrency: int | None = None,
    offered_rate: float | None = None,
    client_cpu_s: float = 0.0,
) -> LoadReport:
    """Turn raw outcomes into the report: images/s counts only answered photos (200)."""
    ok = [o.latency_s for o in outcomes if o.status == 200]
    rejected = [o.latency_s for o in outcomes if o.status == REJECTED]
    return LoadReport(
        mode=mode,
        concurrency=concurrency,
        offered_rate=offered_rate,
        requests=len(outcomes),
        elapsed_s=elapsed_s,
        images_per_s=len(ok) / elapsed_s if elapsed_s > 0 else 0.0,
        latency_ms=latency_summary(ok),
        status_counts={str(k): v for k, v in sorted(Counter(o.status for o in outcomes).items())},
        rejected_latency_ms=latency_summary(rejected),
        errors=dict(Counter(o.error for o in outcomes if o.error)),
        client_cpu_s=client_cpu_s,
    )


def check_loopback(host: str) -> None:
    """Load tests target this machine only."""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError(f"load tests target 127.0.0.1 only, not {host}")


def build_requests(
    host: str, port: int, path: str, photos: Sequence[Photo], field_name: str = "file"
) -> list[bytes]:
    """One ready-to-send upload per photo; the client cycles through them."""
    check_loopback(host)
    return [
        build_upload(host, port, path, field=field_name, filename=p.name, data=p.data)
        for p in photos
    ]


@contextlib.contextmanager
def without_gc_pauses() -> Iterator[None]:
    """The cyclic garbage collector off for one bounded run. Its full passes over a heap of
    100,000 outcomes paused this client for tens to hundreds of milliseconds under overload, and
    a paused client times its own pause as the server's latency and falls behind its send
    schedule. Reference counting still frees everything the run drops."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _timed(conn: Connection, raw: bytes, timeout_s: float) -> Outcome:
    start = time.perf_counter()
    try:
        response = await asyncio.wait_for(conn.request(raw), timeout_s)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        return Outcome(0, time.perf_counter() - start, type(exc).__name__)
    except TimeoutError:
        return Outcome(0, time.perf_counter() - start, "Timeout")
    return Outcome(response.status, time.perf_counter() - start)


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    timeout_s: float = 30.0,
) -> LoadReport:
    """`concurrency` workers, each sending its next photo as soon as the last one is answered."""
    check_loopback(host)
    counter = itertools.count()
    outcomes: list[Outcome] = []
    cpu0, start = time.process_time(), time.perf_counter()
    deadline = start + max_seconds

    async def worker() -> None:
        conn = Connection(host, port)
        try:
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= max_requests:
                    return
                outcomes.append(await _timed(conn, requests[i % len(requests)], timeout_s))
        finally:
            conn.close()

    with without_gc_pauses():
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return summarise(
        outcomes,
        elapsed,
        mode="closed",
        concurrency=concurrency,
        client_cpu_s=time.process_time() - cpu0,
    )


async def open_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    rate: float,
    max_seconds: float,
    max_requests: int | None = None,
    max_in_flight: int = 512,
    timeout_s: float = 30.0,
) -> LoadReport:
    """Requests arrive at `rate` per second on a fixed clock, each on an idle or a new connection.

    Arrivals that would exceed `max_in_flight` open requests are counted as `not_sent` instead of
    growing without bound: the client stays bounded even against a server that never answers.
    """
    check_loopback(host)
    total = max_requests if max_requests is not None else math.ceil(rate * max_seconds)
    idle: list[Connection] = []
    outcomes: list[Outcome] = []
    tasks: set[asyncio.Task[None]] = set()
    not_sent, max_lag = 0, 0.0
    cpu0, start = time.process_time(), time.perf_counter()

    async def send(raw: bytes) -> None:
        conn = idle.pop() if idle else Connection(host, port)
        outcomes.append(await _timed(conn, raw, timeout_s))
        idle.append(conn)

    with without_gc_pauses():
        for i in range(total):
            scheduled = start + i / rate
            if scheduled - start >= max_seconds:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            max_lag = max(max_lag, time.perf_counter() - scheduled)
            if len(tasks) >= max_in_flight:
                not_sent += 1
                continue
            task = asyncio.create_task(send(requests[i % len(requests)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s + 1.0)
    elapsed = time.perf_counter() - start
    for task in list(tasks):
        task.cancel()
        outcomes.append(Outcome(0, elapsed, "Unfinished"))
    for conn in idle:
        conn.close()
    report = summarise(
        outcomes,
        elapsed,
        mode="open",
        offered_rate=rate,
        client_cpu_s=time.process_time() - cpu0,
    )
    report.not_sent = not_sent
    report.max_send_lag_ms = max_lag * 1000.0
    return report


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load a running classification server on 127.0.0.1 with real photos.",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000/predict", help="POST endpoint")
    parser.add_argument("--field", default="file", help="multipart field of the photo")
    add_photo_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=8, help="closed loop: workers")
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests/s instead")
    parser.add_argument("--requests", type=int, default=2000, help="stop after this many")
    parser.add_argument("--seconds", type=float, default=20.0, help="stop after this long")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: load one server and print (and optionally save) the report."""
    from benchmarks.serving.results import print_reports, write_json  # noqa: PLC0415

    args = _parse_args(argv)
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    _, photos = photos_from_args(args)
    requests = build_requests(host, port, url.path or "/", photos, args.field)
    if args.rate:
        run = open_loop(
            host,
            port,
            requests,
            rate=args.rate,
            max_seconds=args.seconds,
            max_requests=args.requests,
            timeout_s=args.timeout,
        )
    else:
        run = closed_loop(
            host,
            port,
            requests,
            concurrency=args.concurrency,
            max_requests=args.requests,
            max_seconds=args.seconds,
            timeout_s=args.timeout,
        )
    report = asyncio.run(run)
    print_reports(f"load on {args.url}", {args.url: report})
    if args.json:
        write_json(args.json, {"url": args.url, "photos": len(photos), "report": report.to_dict()})


if __name__ == "__main__":
    main()
