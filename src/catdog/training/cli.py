"""`catdog train`: read the `train:` params, apply command-line overrides, run the loop.

Only light modules at the top (typer, pydantic): torch and MLflow load inside the command, so
`catdog --help` stays fast. The same command runs under `torchrun` for distributed training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from catdog.errors import ConfigError
from catdog.params import DEFAULT_PARAMS, load_section
from catdog.terminal import summary_table
from catdog.training.params import Device, TrainParams


def load_train_params(path: Path, overrides: dict[str, Any]) -> TrainParams:
    """The `train:` section of `path`, with the options given on the command line on top."""
    if path != DEFAULT_PARAMS and not path.is_file():
        raise ConfigError(f"the parameters file {path} does not exist")
    params = load_section(path, "train", TrainParams)
    given = {key: value for key, value in overrides.items() if value is not None}
    if given.get("arch", params.arch) != params.arch:
        given.setdefault("arch_options", {})  # the file's options belong to the file's arch
    try:
        return TrainParams.model_validate(params.model_dump() | given)
    except ValidationError as exc:
        raise ConfigError(f"bad training option: {exc}") from exc


def train(
    *,
    params: Annotated[
        Path, typer.Option("--params", help="Parameters file; its `train:` section is used.")
    ] = DEFAULT_PARAMS,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Prepared data: train/, val/ (and test/) of cat/ and dog/."),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option(
            "--arch",
            help="simple_cnn | resnet18 | mobilenet_se (arch_options in params apply only "
            "to the architecture named there)",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    device: Annotated[
        Device | None,
        typer.Option("--device", help="auto: CUDA (bf16, channels_last), else MPS, else CPU."),
    ] = None,
    pretrained: Annotated[
        bool | None,
        typer.Option(
            "--pretrained/--no-pretrained",
            help="resnet18 from torchvision's ImageNet weights (downloaded once, then cached).",
        ),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Training resolution (default: the data's).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1)] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="Peak learning rate.")] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", help="Wall-clock budget; the schedule anneals within it."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    compile_model: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = None,
    tracking: Annotated[
        bool | None,
        typer.Option("--tracking/--no-tracking", help="Log the run to MLflow (default: on)."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option("--resume", help="Continue from a last.pt written by an earlier run."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Use at most this many photos per split (quick runs)."),
    ] = None,
) -> None:
    """Train a cat/dog classifier on the prepared data and record it in MLflow."""
    # Before torch loads OpenMP: idle threads sleep instead of spinning. Spinning threads
    # collapse throughput ten-fold when other processes share the cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from catdog.training.loop import train as run_training  # noqa: PLC0415 - torch is heavy

    settings = load_train_params(
        params,
        {
            "data": data,
            "arch": arch,
            "epochs": epochs,
            "device": device,
            "pretrained": pretrained,
            "image_size": image_size,
            "batch_size": batch_size,
            "lr": lr,
            "max_minutes": max_minutes,
            "seed": seed,
            "compile": compile_model,
            "tracking": tracking,
        },
    )
    result = run_training(settings, resume=resume, limit=limit)
    if result.rank != 0:
        return  # one summary per distributed run, from rank 0
    rows: dict[str, Any] = {
        "architecture": f"{result.arch} @ {result.image_size} px ({result.gflops:.3f} GFLOPs)",
        "epochs": f"{result.epochs_run} (best {result.best_epoch}, stop: {result.stop_reason})",
        "val accuracy": result.val["accuracy"],
    }
    if result.test is not None:
        rows |= {"test accuracy": result.test["accuracy"], "test ROC AUC": result.test["roc_auc"]}
    rows |= {
        "training time": f"{result.training_time_s / 60:.1f} min",
        "throughput": f"{result.images_per_s:.0f} photos/s",
        "photos skipped": len(result.refused),
        "checkpoint": str(result.checkpoint),
        "MLflow run": result.run_id or "off",
    }
    summary_table("catdog train", rows)
