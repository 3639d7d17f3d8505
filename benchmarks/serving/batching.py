"""Where batching pays: bare ORT at batch 1/4/8/16, and the service at CATDOG_MAX_BATCH 1, 4, 8.

On 2 cores ResNet-18 ran as fast at batch 1 as at batch 16 in bare ONNX Runtime, so the figures
that choose the service's defaults must come from this machine, for both a large and the small
reference model: `run` mode times the session alone, `decode` mode includes decoding the photos,
and the service runs show what micro-batching gives end to end at concurrency 8.

Run: `python -m benchmarks.serving.batching` (about 4 minutes) or `--quick`.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.serving import bare_ort
from benchmarks.serving.export_baseline import export
from benchmarks.serving.harness import LoadPlan, catdog_spec, measure
from benchmarks.serving.photos import add_photo_arguments, photos_from_args
from benchmarks.serving.results import print_table, result_path, write_json
from catdog.model_store import resolve_model

BATCHES = (1, 4, 8, 16)
SERVICE_MAX_BATCH = (1, 4, 8)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Bare ORT per batch size, then the service per CATDOG_MAX_BATCH, for both models."""
    photo_dir, photos = photos_from_args(args)
    plan = LoadPlan(concurrency=args.concurrency, seconds=args.seconds, requests=args.requests)
    reference = resolve_model(args.reference)
    with tempfile.TemporaryDirectory(prefix="catdog-bench-") as tmp:
        models = {
            "resnet18": resolve_model(args.resnet18)
            if args.resnet18
            else export(Path(tmp) / "resnet18"),
            "reference": reference,
        }
        bare = {
            name: bare_ort.measure(
                path,
                photos,
                batches=BATCHES,
                modes=("run", "decode"),
                max_seconds=args.bare_seconds,
                max_images=args.requests,
            )
            for name, path in models.items()
        }
        service = [
            {
                "model": name,
                "max_batch": max_batch,
                **measure(
                    catdog_spec(
                        f"{name}-max_batch{max_batch}", path, {"CATDOG_MAX_BATCH": str(max_batch)}
                    ),
                    photos,
                    plan,
                ),
            }
            for name, path in models.items()
            for max_batch in SERVICE_MAX_BATCH
        ]
    return {
        "photos": len(photos),
        "photo_dir": str(photo_dir),
        "reference_model": str(reference),
        "plan": vars(plan),
        "bare_ort": bare,
        "service": service,
    }


def print_result(result: dict[str, Any]) -> None:
    """Bare ORT by batch size; service by max batch."""
    rows = [
        [name, r["mode"], r["batch"], r["images_per_s"]]
        for name, rs in result["bare_ort"].items()
        for r in rs
    ]
    print_table("bare ONNX Runtime by batch size", ["model", "mode", "batch", "images/s"], rows)
    service_rows = [
        [
            s["model"],
            s["max_batch"],
            s["report"]["images_per_s"],
            s["report"]["latency_ms"]["p50"],
            s["report"]["latency_ms"]["p95"],
        ]
        for s in result["service"]
    ]
    print_table(
        f"catdog serve at concurrency {result['plan']['concurrency']}",
        ["model", "CATDOG_MAX_BATCH", "images/s", "p50 ms", "p95 ms"],
        service_rows,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Batch size figures to choose the service's defaults."
    )
    add_photo_arguments(parser)
    parser.add_argument("--reference", default=None, help="small model (default: reference)")
    parser.add_argument(
        "--resnet18",
        type=Path,
        default=None,
        help="baseline ResNet-18 export (default: export now)",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per service run")
    parser.add_argument("--requests", type=int, default=5000, help="request/image limit per run")
    parser.add_argument("--bare-seconds", type=float, default=8.0, help="time per bare-ORT figure")
    parser.add_argument(
        "--quick", action="store_true", help="short runs; writes serve_batching_quick.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.bare_seconds, args.requests = min(args.seconds, 8.0), 3.0, 1000
    result = run(args)
    print_result(result)
    write_json(result_path("batching", quick=args.quick), result)


if __name__ == "__main__":
    main()
