"""The serving benchmarks' load client: `catdog simulate`'s sender with benchmark reports.

The sending (closed loop, open loop timed from each scheduled arrival, bounded, 127.0.0.1 only)
lives in catdog.monitoring.traffic, the project's one traffic client; this module turns its raw
outcomes into the benchmarks' LoadReport and keeps their command line.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.serving.photos import Photo, add_photo_arguments, photos_from_args
from catdog.monitoring import traffic
from catdog.monitoring.http1 import build_upload
from catdog.monitoring.traffic import (
    Outcome,
    check_loopback,
    latency_summary,
    percentile,
    without_gc_pauses,
)

__all__ = [
    "LoadReport",
    "Outcome",
    "build_requests",
    "closed_loop",
    "latency_summary",
    "open_loop",
    "percentile",
    "summarise",
    "without_gc_pauses",
]

REJECTED = 503


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


def build_requests(
    host: str, port: int, path: str, photos: Sequence[Photo], field_name: str = "file"
) -> list[bytes]:
    """One ready-to-send upload per photo; the client cycles through them."""
    check_loopback(host)
    return [
        build_upload(host, port, path, field=field_name, filename=p.name, data=p.data)
        for p in photos
    ]


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
    run = await traffic.closed_loop(
        host,
        port,
        requests,
        concurrency=concurrency,
        max_requests=max_requests,
        max_seconds=max_seconds,
        timeout_s=timeout_s,
    )
    return summarise(
        run.outcomes,
        run.elapsed_s,
        mode="closed",
        concurrency=concurrency,
        client_cpu_s=run.client_cpu_s,
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
    """Requests arrive at `rate` per second on a fixed clock; latencies run from each scheduled
    arrival. Arrivals beyond `max_in_flight` open requests are counted as `not_sent`."""
    run = await traffic.open_loop(
        host,
        port,
        requests,
        rate=rate,
        max_seconds=max_seconds,
        max_requests=max_requests,
        max_in_flight=max_in_flight,
        timeout_s=timeout_s,
    )
    report = summarise(
        run.outcomes, run.elapsed_s, mode="open", offered_rate=rate, client_cpu_s=run.client_cpu_s
    )
    report.not_sent = run.not_sent
    report.max_send_lag_ms = run.max_send_lag_s * 1000.0
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
