"""The whole serving comparison in one go: compare, overload, batching, start-up, install size.

Each part writes its own `benchmarks/results/serve_<part>.json`; this script then gathers every
goal into `serve_summary.json` and prints one table of goals, met or not. `--quick` runs every
part short (about 3 minutes, for development: figures are only indicative), the full run takes
about 15 minutes on 2 cores. Run it on a quiet machine: other work on the cores skews every figure.

Run: `python -m benchmarks.serving.run_all [--quick] [--skip install_size]`
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.serving import batching, compare, install_size, overload, startup
from benchmarks.serving.export_baseline import export
from benchmarks.serving.photos import add_photo_arguments
from benchmarks.serving.results import Goal, print_goals, result_path, write_json
from catdog.terminal import console, summary_table

PARTS: dict[str, Callable[[Sequence[str] | None], None]] = {
    "compare": compare.main,
    "overload": overload.main,
    "batching": batching.main,
    "startup": startup.main,
    "install": install_size.main,
}


def main(argv: Sequence[str] | None = None) -> None:
    """Run the parts in turn with shared flags, then summarise their goals."""
    parser = argparse.ArgumentParser(description="Every serving benchmark, one after another.")
    parser.add_argument("--quick", action="store_true", help="short bounded runs (development)")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=sorted(PARTS),
        help="leave a part out (repeatable)",
    )
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="measure nothing: rebuild serve_summary.json from the part results already written",
    )
    add_photo_arguments(parser)
    parser.add_argument("--reference", default=None, help="model for the reference runs")
    args = parser.parse_args(argv)
    shared = ["--limit-photos", str(args.limit_photos), *(["--quick"] if args.quick else [])]
    if args.photos:
        shared += ["--photos", str(args.photos)]
    model = ["--reference", args.reference] if args.reference else []
    parts = [name for name in PARTS if name not in args.skip]
    resnet18: list[str] = []
    with tempfile.TemporaryDirectory(prefix="catdog-bench-") as tmp:
        parts_to_run = [] if args.summary_only else parts
        if {"compare", "batching"} & set(parts_to_run):
            # One export of the baseline's ResNet-18 serves both parts that need it.
            resnet18 = ["--resnet18", str(export(Path(tmp) / "resnet18"))]
        for name in parts_to_run:
            console.rule(f"[bold]{name}")
            flags = {
                "compare": shared + model + resnet18,
                "overload": shared + model,
                "batching": shared + model + resnet18,
                "startup": model + (["--quick"] if args.quick else []),
                # The install check serves the model the install ships, whatever --reference says.
                "install": ["--quick"] if args.quick else [],
            }
            PARTS[name](flags[name])
    results = {
        name: json.loads(result_path(name, quick=args.quick).read_text(encoding="utf-8"))
        for name in parts
    }
    goals = [Goal.from_dict(g) for data in results.values() for g in data.get("goals", [])]
    figures = readme_figures(results)
    console.rule("[bold]summary")
    summary_table("figures", [(name, f"{value:,.1f}") for name, value in figures])
    print_goals("serving goals", goals)
    write_json(
        result_path("summary", quick=args.quick),
        {"parts": parts, "figures": dict(figures), "goals": [g.to_dict() for g in goals]},
    )


def readme_figures(results: dict[str, dict[str, Any]]) -> list[tuple[str, float]]:
    """The figures the README quotes, from whichever parts ran (medians over rounds)."""
    rows: list[tuple[str, float]] = []
    if "compare" in results:
        for name, runs in results["compare"]["servers"].items():
            rows += [
                (f"{name}: images/s at c=8", compare.median_of(runs, "images_per_s")),
                (f"{name}: p95 ms at c=8", compare.p95_of(runs)),
                (f"{name}: /ready s after start", max(r["ready_s"] for r in runs)),
                (f"{name}: RSS MiB after the run", max(r["rss_mb_after"] for r in runs)),
            ]
        eager = results["compare"].get("eager_torch_images_per_s") or [math.nan]
        rows.append(("baseline's eager PyTorch in-process: images/s", statistics.median(eager)))
        for name, rounds in results["compare"]["bare_ort"].items():
            rows.append((f"bare ORT {name}: images/s, decode included", compare.best_bare(rounds)))
    if "overload" in results:
        over = results["overload"]
        rows += [
            ("overload: capacity images/s at c=8", over["capacity"]["images_per_s"]),
            ("overload: offered requests/s", over["offered_rate"]),
            ("overload: answered 200 per s", over["overload"]["images_per_s"]),
            ("overload: 503 p50 ms", over["overload"]["rejected_latency_ms"]["p50"]),
            ("overload: 503 p99 ms", over["overload"]["rejected_latency_ms"]["p99"]),
            ("overload: 200 p95 ms", over["overload"]["latency_ms"]["p95"]),
            ("overload: RSS MiB before", over["rss_mb"]["before"]),
            ("overload: RSS MiB peak", over["rss_mb"]["peak"]),
            ("overload: RSS MiB after", over["rss_mb"]["after"]),
        ]
    if "startup" in results:
        summary = next(iter(results["startup"]["summary"].values()))
        rows += [
            ("start-up: /ready s, median of starts", summary["median"]),
            ("start-up: /ready s, slowest start", summary["slowest"]),
        ]
    if "install" in results:
        rows += [
            ("install: serve extra MB", results["install"]["serve_extra_mb"]),
            ("install: whole venv MiB (du)", results["install"]["venv_mib"]),
        ]
    return rows


if __name__ == "__main__":
    main()
