"""The CPU recipe: train on petimages-8k within a wall-clock budget, record accuracy vs minutes.

Prepares the data set with the data stage (once; reused on later runs), trains with
`params/cpu-recipe.yaml` under a time budget (the learning-rate schedule follows the clock, so it
has annealed when the budget runs out), and scores the held-out test split after every epoch.

    .venv/bin/python -m benchmarks.cpu_recipe                      # the full 30-minute run
    .venv/bin/python -m benchmarks.cpu_recipe --minutes 2 --limit 400 --out /tmp/quick.json

Writes benchmarks/results/cpu_recipe.json (the curve and the final scores), the curve as
benchmarks/results/cpu_recipe_curve.png, and the best weights to
benchmarks/results/cpu_recipe/checkpoint.pt (export it with `catdog export`).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

# Before torch loads OpenMP: idle threads sleep instead of spinning (the cores are shared).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from matplotlib.figure import Figure

from catdog.data.params import DataParams
from catdog.data.prepare import prepare_dataset
from catdog.terminal import summary_table
from catdog.training.cli import load_train_params
from catdog.training.loop import Trainer, score

RAW = Path("/work/shared/datasets/petimages-8k")
RESULTS = Path("benchmarks/results")


def prepare(raw: Path, work: Path, image_size: int) -> Path:
    """The data stage's output at `image_size`, prepared once and reused."""
    prepared = work / f"prepared-{image_size}"
    if not (prepared / "report.json").is_file():
        prepare_dataset(raw, prepared, DataParams(image_size=image_size))
    return prepared


def plot_curve(report: dict[str, Any], path: Path) -> None:
    """Val and test accuracy against minutes of training, with the 90% target."""
    minutes = [point["minutes"] for point in report["curve"]]
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for split in ("val", "test"):
        accuracy = [point[f"{split}_accuracy"] for point in report["curve"]]
        ax.plot(minutes, accuracy, marker=".", label=split)
    ax.axhline(0.9, color="grey", linestyle="--", label="90% target")
    recipe = report["recipe"]
    ax.set(
        xlabel="minutes of training (2 shared CPU cores)",
        ylabel="accuracy",
        ylim=(0.5, 1.0),
        title=f"CPU recipe: {recipe['arch']} {recipe['arch_options']}, "
        f"{recipe['augment']['crop_size']} px crops, {recipe['image_size']} px test",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, default=RAW, help="petimages-8k (Cat/, Dog/)")
    parser.add_argument("--params", type=Path, default=Path("params/cpu-recipe.yaml"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    parser.add_argument("--limit", type=int, default=None, help="photos per split (quick runs)")
    parser.add_argument("--work", type=Path, default=Path("data/benchmarks/cpu-recipe"))
    parser.add_argument("--out", type=Path, default=RESULTS / "cpu_recipe.json")
    parser.add_argument("--checkpoint", type=Path, default=RESULTS / "cpu_recipe" / "checkpoint.pt")
    parser.add_argument("--tracking", action="store_true", help="also log the run to MLflow")
    args = parser.parse_args()

    recipe = load_train_params(args.params, {})
    prepared = prepare(args.raw, args.work, recipe.image_size or 128)
    params = recipe.model_copy(
        update={
            "data": prepared,
            "max_minutes": args.minutes,
            "tracking": args.tracking,
            "checkpoint": args.checkpoint,
            "last_checkpoint": args.work / "last.pt",
            "metrics_file": args.work / "train_metrics.json",
            "history_file": args.work / "train_history.csv",
        }
    )
    curve: list[dict[str, Any]] = []

    def score_test(trainer: Trainer, row: dict[str, float]) -> None:
        test = score(trainer.evaluate("test"), trainer.data["test"].labels)
        point = {
            "epoch": int(row["epoch"]),
            "minutes": round(row["elapsed_s"] / 60, 2),
            "val_accuracy": round(row["val_accuracy"], 4),
            "test_accuracy": round(test["accuracy"], 4),
        }
        curve.append(point)
        print(json.dumps(point), flush=True)

    started = time.perf_counter()
    trainer = Trainer(params, limit=args.limit)
    decode_s = time.perf_counter() - started
    result = trainer.run(on_epoch=score_test)
    assert result.test is not None
    report = {
        "recipe": params.model_dump(mode="json"),
        "params_file": str(args.params),
        "budget_minutes": args.minutes,
        "photos": {split: len(photos) for split, photos in trainer.data.items()},
        "hardware": trainer.extra["hardware"],
        "load_average_at_end": list(os.getloadavg()),
        "decode_s": round(decode_s, 1),
        "training_minutes": round(result.training_time_s / 60, 2),
        "images_per_s": round(result.images_per_s, 1),
        "gflops": round(result.gflops, 4),
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "best_val_accuracy": result.val["accuracy"],
        "test": result.test,
        "curve": curve,
        "checkpoint": str(args.checkpoint),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_curve(report, args.out.with_name(args.out.stem + "_curve.png"))
    summary_table(
        "CPU recipe",
        {
            "recipe": f"{params.arch} {params.arch_options} @ {trainer.preprocessing.size} px",
            "training time": f"{report['training_minutes']} min ({result.epochs_run} epochs)",
            "test accuracy": result.test["accuracy"],
            "test ROC AUC": result.test["roc_auc"],
            "throughput": f"{report['images_per_s']} photos/s",
            "results": str(args.out),
        },
    )


if __name__ == "__main__":
    main()
