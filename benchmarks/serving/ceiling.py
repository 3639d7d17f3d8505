"""The headline at the reference model's cost ceiling, before the reference model exists.

The headline (catdog >= 5x the seed-style baseline at concurrency 8) counts only with a reference
model as accurate as a ResNet-18, and that model needs a GPU to train. What it will cost is known:
at most 0.5 GFLOPs a photo at 128 px. So this script builds stand-ins of exactly that cost with
the project's own pipeline (the bundled sample prepared at 128 px, one epoch of `Trainer`, then
`export_checkpoint`: a real ONNX file and card), and serves each side by side with the baseline,
interleaved round by round, with bare ONNX Runtime as each one's ceiling. Serving speed does not
depend on what the weights learned, so the figure says whether the serving side is ready for the
reference model; it is a projection, never the headline itself (the stand-ins' cards record their
poor accuracy).

Run: `python -m benchmarks.serving.ceiling` (3 rounds, about 7 minutes) or `--quick` (1 round).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.serving.compare import bare_round, best_bare, median_of, p95_of
from benchmarks.serving.harness import LoadPlan, baseline_spec, catdog_spec, measure
from benchmarks.serving.photos import add_photo_arguments, photos_from_args
from benchmarks.serving.results import Goal, print_goals, print_table, result_path, write_json
from catdog.data.params import DataParams
from catdog.data.prepare import prepare_dataset
from catdog.model_store import card_path, read_card
from catdog.training.cli import load_train_params
from catdog.training.export import ExportParams, export_checkpoint
from catdog.training.loop import Trainer

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "petimages"
BASELINE = "baseline"
MAX_GFLOPS = 0.5
MAX_MODEL_MB = 10.0
# The two families the project trains, each sized to just under the cost ceiling: (architecture,
# its options, photo side). mobilenet_se is held to 2.0 M parameters (8 MB) by the size limit
# (width 2 at 128 px would cost the same FLOPs with 4.9 M), so it reaches the ceiling at 192 px.
STAND_INS: dict[str, tuple[str, dict[str, Any], int]] = {
    "simple_cnn-w32@128": ("simple_cnn", {"width": 32}, 128),
    "mobilenet_se-w1.25@192": ("mobilenet_se", {"width": 1.25}, 192),
}


def build_stand_in(name: str, work: Path) -> Path:
    """Train one epoch on the sample at the stand-in's size and export it; the ONNX file's path."""
    arch, options, size = STAND_INS[name]
    prepared = work / f"prepared-{size}"
    if not (prepared / "report.json").is_file():
        prepare_dataset(SAMPLE, prepared, DataParams(image_size=size))
    params = load_train_params(Path("params.yaml"), {}).model_copy(
        update={
            "data": prepared,
            "arch": arch,
            "arch_options": options,
            "image_size": size,
            "epochs": 1,
            "tracking": False,
            "checkpoint": work / name / "checkpoint.pt",
            "last_checkpoint": work / name / "last.pt",
            "metrics_file": work / name / "train_metrics.json",
            "history_file": work / name / "train_history.csv",
        }
    )
    Trainer(params).run()
    exported = export_checkpoint(
        work / name / "checkpoint.pt",
        work / name / "export",
        prepared,
        ExportParams(quantize=False),
        register=False,
    )
    return exported.onnx_path


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Build the stand-ins, then measure the baseline and each stand-in in every round."""
    _, photos = photos_from_args(args)
    plan = LoadPlan(concurrency=args.concurrency, seconds=args.seconds, requests=args.requests)
    models = {name: build_stand_in(name, work) for name in STAND_INS}
    specs = [baseline_spec(), *(catdog_spec(name, path) for name, path in models.items())]
    servers: dict[str, list[dict[str, Any]]] = {spec.name: [] for spec in specs}
    bare: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in models}
    for round_no in range(args.rounds):
        for spec in specs if round_no % 2 == 0 else reversed(specs):
            servers[spec.name].append(measure(spec, photos, plan))
            if spec.name in models:
                bare[spec.name].append(bare_round(models[spec.name], photos, args))
    cards = {name: _card_summary(path) for name, path in models.items()}
    return {
        "plan": vars(plan),
        "rounds": args.rounds,
        "photos": len(photos),
        "stand_ins": cards,
        "servers": servers,
        "bare_ort": bare,
        "goals": [g.to_dict() for g in goals(servers, bare, cards)],
    }


def _card_summary(onnx_path: Path) -> dict[str, Any]:
    card = read_card(onnx_path)
    test = (card.get("metrics") or {}).get("test") or {}
    return {
        "architecture": card.get("architecture"),
        "arch_kwargs": card.get("arch_kwargs"),
        "input_size": card.get("input_size"),
        "gflops": card.get("gflops"),
        "model_mb": round(
            (onnx_path.stat().st_size + card_path(onnx_path).stat().st_size) / 1e6, 2
        ),
        "parameters": card.get("parameters"),
        "test_accuracy_on_sample": test.get("accuracy"),
    }


def goals(
    servers: dict[str, list[dict[str, Any]]],
    bare: dict[str, list[list[dict[str, Any]]]],
    cards: dict[str, dict[str, Any]],
) -> list[Goal]:
    """Per stand-in: at the cost ceiling, the headline ratio, overhead and p95 it would reach."""
    baseline = median_of(servers[BASELINE], "images_per_s")
    out: list[Goal] = []
    for name in cards:
        ips = median_of(servers[name], "images_per_s")
        out += [
            Goal(f"{name}: cost", float(cards[name]["gflops"]), "<=", MAX_GFLOPS, "GFLOPs"),
            Goal(f"{name}: model + card", float(cards[name]["model_mb"]), "<=", MAX_MODEL_MB, "MB"),
            Goal(f"{name}: projected headline vs baseline", ips / baseline, ">=", 5.0, "x"),
            Goal(f"{name}: overhead vs bare ORT", ips / best_bare(bare[name]), ">=", 0.85, "ratio"),
            Goal(f"{name}: p95 at c=8", p95_of(servers[name]), "<=", 100.0, "ms"),
            Goal(
                f"{name}: RSS after the run",
                max(r["rss_mb_after"] for r in servers[name]),
                "<=",
                300.0,
                "MiB",
            ),
        ]
    return out


def print_result(result: dict[str, Any]) -> None:
    """Servers per round, bare ORT medians, then the projected goals."""
    rows = [
        [
            name,
            r["report"]["images_per_s"],
            r["report"]["latency_ms"]["p95"],
            r["ready_s"],
            r["rss_mb_after"],
            r["pss_mb_after"],
        ]
        for name, runs in result["servers"].items()
        for r in runs
    ]
    columns = ["server", "images/s", "p95 ms", "ready s", "RSS MiB", "PSS MiB"]
    print_table(f"servers at concurrency {result['plan']['concurrency']}", columns, rows)
    bare_rows = [
        [
            name,
            result["stand_ins"][name]["gflops"],
            best_bare(rounds),
        ]
        for name, rounds in result["bare_ort"].items()
    ]
    print_table("bare ONNX Runtime, decode included", ["model", "GFLOPs", "images/s"], bare_rows)
    print_goals("at the cost ceiling (a projection)", [Goal.from_dict(g) for g in result["goals"]])


def main(argv: Sequence[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_photo_arguments(parser)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0, help="load time per server run")
    parser.add_argument("--requests", type=int, default=5000, help="request limit per server run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")
    parser.add_argument("--bare-seconds", type=float, default=10.0, help="time per bare-ORT figure")
    parser.add_argument("--quick", action="store_true", help="one short round; writes *_quick.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.bare_seconds, args.requests, args.rounds = 10.0, 5.0, 1000, 1
    with tempfile.TemporaryDirectory(prefix="catdog-ceiling-") as tmp:
        result = run(args, Path(tmp))
    print_result(result)
    write_json(result_path("ceiling", quick=args.quick), result)


if __name__ == "__main__":
    main()
