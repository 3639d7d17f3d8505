"""The whole serving comparison in one go: compare, overload, batching, install size.

Each part writes its own `benchmarks/results/serve_<part>.json`; this script then gathers every
goal into `serve_summary.json` and prints one table of goals, met or not. `--quick` runs every
part short (about 3 minutes, for development: figures are only indicative), the full run takes
about 15 minutes on 2 cores. Run it on a quiet machine: other work on the cores skews every figure.

Run: `python -m benchmarks.serving.run_all [--quick] [--skip install_size]`
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence

from benchmarks.serving import batching, compare, install_size, overload
from benchmarks.serving.photos import add_photo_arguments
from benchmarks.serving.results import Goal, print_goals, result_path, write_json
from catdog.terminal import console

PARTS: dict[str, Callable[[Sequence[str] | None], None]] = {
    "compare": compare.main,
    "overload": overload.main,
    "batching": batching.main,
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
    add_photo_arguments(parser)
    parser.add_argument("--reference", default=None, help="model for the reference runs")
    args = parser.parse_args(argv)
    shared = ["--limit-photos", str(args.limit_photos), *(["--quick"] if args.quick else [])]
    if args.photos:
        shared += ["--photos", str(args.photos)]
    model = ["--reference", args.reference] if args.reference else []
    parts = [name for name in PARTS if name not in args.skip]
    for name in parts:
        console.rule(f"[bold]{name}")
        # The install check serves the model the install ships, whatever --reference says.
        quick = ["--quick"] if args.quick else []
        PARTS[name](quick if name == "install" else shared + model)
    goals: list[Goal] = []
    for name in parts:
        data = json.loads(result_path(name, quick=args.quick).read_text(encoding="utf-8"))
        goals += [Goal.from_dict(g) for g in data.get("goals", [])]
    console.rule("[bold]summary")
    print_goals("serving goals", goals)
    write_json(
        result_path("summary", quick=args.quick),
        {"parts": parts, "goals": [g.to_dict() for g in goals]},
    )


if __name__ == "__main__":
    main()
