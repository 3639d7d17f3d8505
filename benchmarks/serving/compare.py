"""The side-by-side run: seed-style baseline vs catdog, same photos, concurrency 8, one run.

Three servers, one after another, each started fresh and stopped before the next:
  baseline          the seed projects' service (eager PyTorch ResNet-18, blocking async endpoint)
  catdog-resnet18   the baseline's very network exported to ONNX, served by `catdog serve`
  catdog-reference  `catdog serve` with no --model: the shipped reference model
and bare ONNX Runtime in this process on the same photos for both ONNX models (the ceiling).
Goals checked: reference >= 5x baseline, same model >= 1.5x, service >= 85% of bare ORT,
p95 <= 100 ms, /ready <= 2 s, RSS <= 300 MB.

Run: `python -m benchmarks.serving.compare` (3 rounds, about 8 minutes) or `--quick` (1 round).
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from benchmarks.serving import bare_ort
from benchmarks.serving.baseline_service import build_model, transform
from benchmarks.serving.export_baseline import agreement, export
from benchmarks.serving.harness import LoadPlan, baseline_spec, catdog_spec, measure
from benchmarks.serving.photos import Photo, add_photo_arguments, photos_from_args
from benchmarks.serving.results import Goal, print_goals, print_table, result_path, write_json
from catdog.model_store import read_card, resolve_model
from catdog.terminal import console

BASELINE, SAME_MODEL, REFERENCE = "baseline", "catdog-resnet18", "catdog-reference"
# Held-out accuracy of a ResNet-18 trained from scratch on petimages-8k (one H100, the reference
# model issue's measurement): the bar the headline model must reach for the headline to count.
RESNET18_FROM_SCRATCH_PCT = 95.95


def median_of(runs: Sequence[dict[str, Any]], key: str) -> float:
    """Median over rounds of one figure of the load report."""
    return statistics.median(float(r["report"][key]) for r in runs)


def p95_of(runs: Sequence[dict[str, Any]]) -> float:
    """Median over rounds of the p95 latency."""
    return statistics.median(float(r["report"]["latency_ms"]["p95"]) for r in runs)


def best_bare(rounds: Sequence[Sequence[dict[str, Any]]]) -> float:
    """The fastest bare-ORT way to classify photos (decode included), whatever its batch;
    median over rounds."""
    return statistics.median(max(float(r["images_per_s"]) for r in rows) for rows in rounds)


def bare_round(
    model: Path, photos: Sequence[Photo], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """One round of a model's ceiling: bare ORT with decoding, at batch 1 and 8 (`best_bare`
    takes the faster), bounded by `--bare-seconds` and `--requests`."""
    return bare_ort.measure(
        model,
        photos,
        batches=(1, 8),
        modes=("decode",),
        max_seconds=args.bare_seconds,
        max_images=args.requests,
    )


def reference_accuracy_pct(card: dict[str, Any]) -> float:
    """Held-out accuracy (%) that the reference model's card records; NaN when it records none."""
    test = (card.get("metrics") or {}).get("test") or {}
    return 100.0 * float(test["accuracy"]) if "accuracy" in test else math.nan


def accuracy_goal(reference_card: dict[str, Any]) -> Goal:
    """The headline counts only with a model at least as accurate as a ResNet-18 would be."""
    return Goal(
        "headline model as accurate as ResNet-18 from scratch",
        reference_accuracy_pct(reference_card),
        ">=",
        RESNET18_FROM_SCRATCH_PCT,
        "%",
    )


def goals(
    servers: dict[str, list[dict[str, Any]]],
    bare: dict[str, list[list[dict[str, Any]]]],
    reference_card: dict[str, Any],
) -> list[Goal]:
    """The issue's performance goals that this run measures."""
    ips = {name: median_of(runs, "images_per_s") for name, runs in servers.items()}
    ref = servers[REFERENCE]
    return [
        accuracy_goal(reference_card),
        Goal(
            "headline: reference vs baseline, c=8", ips[REFERENCE] / ips[BASELINE], ">=", 5.0, "x"
        ),
        Goal(
            "same model (ResNet-18) vs baseline, c=8",
            ips[SAME_MODEL] / ips[BASELINE],
            ">=",
            1.5,
            "x",
        ),
        Goal(
            "overhead: reference vs bare ORT",
            ips[REFERENCE] / best_bare(bare[REFERENCE]),
            ">=",
            0.85,
            "ratio",
        ),
        Goal(
            "overhead: ResNet-18 vs bare ORT",
            ips[SAME_MODEL] / best_bare(bare[SAME_MODEL]),
            ">=",
            0.85,
            "ratio",
        ),
        Goal("p95 at c=8, reference", p95_of(ref), "<=", 100.0, "ms"),
        Goal("/ready after start, reference", max(r["ready_s"] for r in ref), "<=", 2.0, "s"),
        Goal(
            "RSS after the run, reference", max(r["rss_mb_after"] for r in ref), "<=", 300.0, "MiB"
        ),
    ]


def eager_baseline(photos: Sequence[Photo], max_seconds: float, max_images: int) -> float:
    """The baseline's own ceiling: its decode, transforms and eager model in this process, one
    photo at a time, no HTTP. A baseline server far below it was disturbed, not measured."""
    model = build_model()
    cycle = itertools.cycle(photos)
    images, start = 0, time.perf_counter()
    with torch.no_grad():
        while images < max_images and time.perf_counter() - start < max_seconds:
            image = Image.open(io.BytesIO(next(cycle).data)).convert("RGB")
            model(transform(image).unsqueeze(0))
            images += 1
    return images / (time.perf_counter() - start)


def _card_summary(onnx_path: Path) -> dict[str, Any]:
    """What the reference model is: the headline holds only if it is as accurate as a ResNet-18."""
    card = read_card(onnx_path)
    keys = ("name", "version", "architecture", "gflops", "metrics", "quantized")
    return {key: card.get(key) for key in keys}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Export the baseline's network, measure the three servers and bare ORT, check the goals.

    Each ONNX model's bare-ORT figure is taken right after its server's run, and the order is
    reversed every other round, so that a change in what else runs on the machine hits a server
    and its ceiling alike.
    """
    photo_dir, photos = photos_from_args(args)
    plan = LoadPlan(concurrency=args.concurrency, seconds=args.seconds, requests=args.requests)
    reference = resolve_model(args.reference)
    card = _card_summary(reference)
    with tempfile.TemporaryDirectory(prefix="catdog-bench-") as tmp:
        resnet18 = resolve_model(args.resnet18) if args.resnet18 else export(Path(tmp) / "resnet18")
        same_model_gap = agreement(resnet18, photos[:16])
        onnx_models = {SAME_MODEL: resnet18, REFERENCE: reference}
        specs = [
            baseline_spec(),
            catdog_spec(SAME_MODEL, resnet18),
            catdog_spec(REFERENCE, args.reference),
        ]
        servers: dict[str, list[dict[str, Any]]] = {s.name: [] for s in specs}
        bare: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in onnx_models}
        eager: list[float] = []
        for round_no in range(args.rounds):
            for spec in specs if round_no % 2 == 0 else reversed(specs):
                servers[spec.name].append(measure(spec, photos, plan))
                if spec.name == BASELINE:
                    eager.append(eager_baseline(photos, args.bare_seconds, args.requests))
                if spec.name in onnx_models:
                    bare[spec.name].append(bare_round(onnx_models[spec.name], photos, args))
    return {
        "plan": vars(plan),
        "rounds": args.rounds,
        "photos": len(photos),
        "photo_dir": str(photo_dir),
        "reference_model": str(reference),
        "reference_card": card,
        "same_model_max_gap_p_dog": same_model_gap,
        "servers": servers,
        "bare_ort": bare,
        "eager_torch_images_per_s": eager,
        "goals": [g.to_dict() for g in goals(servers, bare, card)],
    }


def print_result(result: dict[str, Any]) -> None:
    """Servers, bare ORT and goals as three tables."""
    rows = []
    for name, runs in result["servers"].items():
        for r in runs:
            rep = r["report"]
            rows.append(
                [
                    name,
                    rep["images_per_s"],
                    rep["latency_ms"]["p50"],
                    rep["latency_ms"]["p95"],
                    rep["latency_ms"]["p99"],
                    r["ready_s"],
                    r["rss_mb_after"],
                    r.get("pss_mb_after", float("nan")),
                    " ".join(f"{k}:{v}" for k, v in rep["status_counts"].items()),
                ]
            )
    print_table(
        f"servers at concurrency {result['plan']['concurrency']}",
        [
            "server",
            "images/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "ready s",
            "RSS MiB",
            "PSS MiB",
            "statuses",
        ],
        rows,
    )
    bare_rows = [
        [name, round_no + 1, r["batch"], r["images_per_s"]]
        for name, rounds in result["bare_ort"].items()
        for round_no, rows in enumerate(rounds)
        for r in rows
    ]
    columns = ["model", "round", "batch", "images/s"]
    print_table("bare ONNX Runtime, decode included", columns, bare_rows)
    eager = ", ".join(f"{x:.1f}" for x in result["eager_torch_images_per_s"])
    console.print(f"baseline's eager PyTorch in-process, one photo at a time: {eager} images/s")
    gap = result["same_model_max_gap_p_dog"]
    console.print(f"baseline and catdog-resnet18 agree on P(dog) within {gap:.4f} on 16 photos")
    print_goals("goals", [Goal.from_dict(g) for g in result["goals"]])


def main(argv: Sequence[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        description="Baseline vs catdog serve at concurrency 8, side by side."
    )
    add_photo_arguments(parser)
    parser.add_argument(
        "--reference", default=None, help="reference model (default: what `catdog serve` picks)"
    )
    parser.add_argument(
        "--resnet18",
        type=Path,
        default=None,
        help="an export of the baseline's ResNet-18 (default: export now)",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per server run")
    parser.add_argument("--requests", type=int, default=5000, help="request limit per server")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measure every server this many times (median)"
    )
    parser.add_argument("--bare-seconds", type=float, default=10.0, help="time per bare-ORT figure")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one round, 10 s per server; writes serve_compare_quick.json",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.bare_seconds, args.requests, args.rounds = 10.0, 5.0, 1000, 1
    result = run(args)
    print_result(result)
    write_json(result_path("compare", quick=args.quick), result)


if __name__ == "__main__":
    main()
