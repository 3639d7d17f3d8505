"""The project's one traffic client: closed loop (fixed concurrency) or open loop (fixed arrival
rate), bounded in count and in time, to 127.0.0.1 only.

`catdog simulate` and the serving benchmarks both send through here. Closed loop answers "how
many images/s at concurrency 8, and how fast": each worker sends its next request when the last
one is answered. Open loop answers "what happens under overload": requests arrive on a clock
whether or not earlier ones were answered, and each latency is timed from its SCHEDULED arrival,
as wrk2 and oha do, so a server (or a client) that falls behind cannot hide its queue: a request
that could not even be sent on time has waited, and that wait is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from catdog.monitoring.http1 import Connection

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Outcome:
    """One request: its HTTP status (0 when no answer came), its latency, which request it was
    (index into the requests sent) and the answer's body."""

    status: int
    latency_s: float
    error: str = ""
    index: int = -1
    body: bytes = b""


@dataclass
class Run:
    """The raw result of one bounded run."""

    outcomes: list[Outcome]
    elapsed_s: float
    client_cpu_s: float
    not_sent: int = 0
    max_send_lag_s: float = 0.0


OnOutcome = Callable[[Outcome], None]


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


def check_loopback(host: str) -> None:
    """Traffic goes to this machine only."""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise ValueError(f"load tests target 127.0.0.1 only, not {host}")


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


async def _timed(
    conn: Connection, raw: bytes, timeout_s: float, index: int, start: float | None = None
) -> Outcome:
    """Send one request; its latency runs from `start` (the scheduled arrival) or from now."""
    started = time.perf_counter() if start is None else start
    try:
        response = await asyncio.wait_for(conn.request(raw), timeout_s)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        return Outcome(0, time.perf_counter() - started, type(exc).__name__, index)
    except TimeoutError:
        return Outcome(0, time.perf_counter() - started, "Timeout", index)
    return Outcome(response.status, time.perf_counter() - started, "", index, response.body)


async def closed_loop(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    timeout_s: float = 30.0,
    on_outcome: OnOutcome | None = None,
) -> Run:
    """`concurrency` workers, each sending its next request as soon as the last one is answered.
    Request i is `requests[i % len(requests)]`."""
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
                outcome = await _timed(conn, requests[i % len(requests)], timeout_s, i)
                outcomes.append(outcome)
                if on_outcome is not None:
                    on_outcome(outcome)
        finally:
            conn.close()

    with without_gc_pauses():
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(outcomes, time.perf_counter() - start, time.process_time() - cpu0)


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
    on_outcome: OnOutcome | None = None,
) -> Run:
    """Requests arrive at `rate` per second on a fixed clock, each on an idle or a new connection,
    each timed from its scheduled arrival.

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

    async def send(raw: bytes, index: int, scheduled: float) -> None:
        conn = idle.pop() if idle else Connection(host, port)
        outcome = await _timed(conn, raw, timeout_s, index, start=scheduled)
        outcomes.append(outcome)
        idle.append(conn)
        if on_outcome is not None:
            on_outcome(outcome)

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
            task = asyncio.create_task(send(requests[i % len(requests)], i, scheduled))
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
    return Run(outcomes, elapsed, time.process_time() - cpu0, not_sent, max_lag)
