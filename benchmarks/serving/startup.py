"""How soon `catdog serve` is ready: seconds from start to the first 200 on `/ready`, many starts.

An orchestrator sends traffic once the readiness probe passes (goal: ≤ 2 s). One start on two
shared cores is noisy, so the service is started `--starts` times and the median and the slowest
are reported. `--source DIR` (repeatable) compares source trees, for example a `git worktree` of
an earlier commit's `src`: the servers run with that tree first on PYTHONPATH, and the trees take
turns, so the host's drift hits each alike. The first tree is the one the goal is checked on.

Run: `python -m benchmarks.serving.startup [--starts 10] [--source src --source /tmp/old/src]`
(`--reference MODEL` serves another model than the shipped one.)
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Sequence
from pathlib import Path

from benchmarks.serving.harness import catdog_spec
from benchmarks.serving.results import Goal, print_goals, print_table, result_path, write_json
from benchmarks.serving.servers import running

READY_GOAL_S = 2.0


def start_once(source: Path | None, model: Path | None) -> float:
    """Start the service on `model` (None: the reference model) from `source`, return its
    `/ready` time, stop it."""
    env = {} if source is None else {"PYTHONPATH": os.pathsep.join([str(source), *_pythonpath()])}
    with running(catdog_spec("catdog-reference", model, env)) as server:
        return server.ready_s


def _pythonpath() -> list[str]:
    return [part for part in os.environ.get("PYTHONPATH", "").split(os.pathsep) if part]


def main(argv: Sequence[str] | None = None) -> None:
    """Start each source tree `--starts` times in turn; print and write the figures."""
    parser = argparse.ArgumentParser(description="Seconds from start to /ready, many starts.")
    parser.add_argument("--starts", type=int, default=10, help="starts per source tree")
    parser.add_argument(
        "--source",
        type=Path,
        action="append",
        default=[],
        help="a source tree to put first on PYTHONPATH (repeatable; default: this checkout)",
    )
    parser.add_argument("--reference", type=Path, default=None, help="model (default: shipped)")
    parser.add_argument("--quick", action="store_true", help="3 starts; writes *_quick.json")
    args = parser.parse_args(argv)
    starts = 3 if args.quick else args.starts
    sources: list[Path | None] = [path.resolve() for path in args.source] or [None]
    ready: dict[str, list[float]] = {str(source or "this checkout"): [] for source in sources}
    for _ in range(starts):
        for source, times in zip(sources, ready.values(), strict=True):
            times.append(start_once(source, args.reference))
    summary = {
        name: {"median": statistics.median(t), "fastest": min(t), "slowest": max(t)}
        for name, t in ready.items()
    }
    print_table(
        "/ready after start, ms",
        ["source", "median", "fastest", "slowest", "starts"],
        [(name, *(1000 * v for v in row.values()), starts) for name, row in summary.items()],
    )
    first = next(iter(ready.values()))
    goals = [Goal("/ready after start, median", statistics.median(first), "<=", READY_GOAL_S, "s")]
    print_goals("start-up goal", goals)
    write_json(
        result_path("startup", quick=args.quick),
        {
            "ready_s": ready,
            "summary": summary,
            "goals": [goal.to_dict() for goal in goals],
        },
    )


if __name__ == "__main__":
    main()
