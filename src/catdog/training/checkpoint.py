"""Checkpoints: the weights plus everything needed to rebuild, export, describe or resume them.

A checkpoint is a plain dict of tensors and JSON-like values saved with `torch.save`, so it loads
with `weights_only=True` (no pickled code runs). It names its architecture and the preprocessing
the weights were trained with, so export and evaluation never guess either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from catdog.errors import ModelError
from catdog.preprocess import Preprocessing
from catdog.training.models import build_model

FORMAT = "catdog-checkpoint"
FORMAT_VERSION = 1


@dataclass
class LoadedCheckpoint:
    """A checkpoint read back: a ready model (eval mode, CPU) and its metadata and raw states."""

    model: nn.Module
    arch: str
    arch_kwargs: dict[str, Any]
    preprocessing: Preprocessing
    params: dict[str, Any]
    epoch: int
    metrics: dict[str, Any]
    extra: dict[str, Any]
    model_state: dict[str, Any]
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    ema_state: dict[str, Any] | None = None
    trainer_state: dict[str, Any] = field(default_factory=dict)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def save_checkpoint(
    path: Path,
    *,
    model: nn.Module,
    arch: str,
    arch_kwargs: dict[str, Any],
    preprocessing: Preprocessing,
    params: dict[str, Any],
    epoch: int,
    metrics: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    extra: dict[str, Any] | None = None,
    ema: nn.Module | None = None,
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temp file, then rename): a crash mid-save never leaves half a file."""
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs),
        "num_classes": len(preprocessing.classes),
        "model_state": _cpu_state(unwrap(model)),
        "preprocessing": preprocessing.to_dict(),
        "params": params,
        "epoch": int(epoch),
        "metrics": metrics,
        "extra": dict(extra or {}),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "ema_state": _cpu_state(unwrap(ema)) if ema is not None else None,
        "trainer_state": dict(trainer_state or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Read a checkpoint written by `save_checkpoint`; a clear ModelError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"no checkpoint at {path}; run `catdog train` first", reason="no_checkpoint"
        )
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors for a bad file
        raise ModelError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelError(f"{path} is not a catdog checkpoint (no '{FORMAT}' marker)")
    if raw.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(f"{path} has checkpoint format {raw['format_version']}; upgrade catdog")
    model = build_model(raw["arch"], num_classes=raw["num_classes"], **raw["arch_kwargs"])
    try:
        model.load_state_dict(raw["model_state"])
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit {raw['arch']}: {exc}") from exc
    model.to("cpu").eval()
    return LoadedCheckpoint(
        model=model,
        arch=raw["arch"],
        arch_kwargs=raw["arch_kwargs"],
        preprocessing=Preprocessing.from_dict(raw["preprocessing"]),
        params=raw["params"],
        epoch=raw["epoch"],
        metrics=raw["metrics"],
        extra=raw["extra"],
        model_state=raw["model_state"],
        optimizer_state=raw["optimizer_state"],
        scheduler_state=raw["scheduler_state"],
        ema_state=raw["ema_state"],
        trainer_state=raw["trainer_state"],
    )
