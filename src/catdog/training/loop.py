"""The training loop: one readable loop, with devices, AMP, DDP, EMA and resume as switches.

Shape of a run (after torchvision's classification reference and nanoGPT):
decode the splits once into uint8 tensors on the device; each epoch shuffles, augments on the
device, steps AdamW under a warmup + cosine schedule, evaluates on val and checkpoints; at the end
the best-on-val weights are scored on test and logged to MLflow with their pictures.

- Device `auto`: CUDA (bf16 autocast, channels_last), else Apple MPS, else CPU.
- Distributed: under `torchrun` (WORLD_SIZE > 1) the same code wraps the model in
  DistributedDataParallel (NCCL on GPUs, gloo on CPU); each rank trains on its slice of every
  epoch's permutation; rank 0 alone evaluates for the record, saves and tracks.
- Deterministic under a seed: every epoch's shuffle, augmentation and dropout draw from
  generators seeded by (seed, epoch, rank), so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import math
import os
import platform
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812 - the torch convention
from torch import nn
from torch.optim.swa_utils import AveragedModel

from catdog.errors import ConfigError, TrainingError
from catdog.metrics import ClassificationMetrics, classification_metrics
from catdog.preprocess import CLASSES, Preprocessing
from catdog.terminal import console, progress
from catdog.training import plots
from catdog.training.augment import augment, mix, soft_targets
from catdog.training.checkpoint import LoadedCheckpoint, load_checkpoint, save_checkpoint
from catdog.training.data import (
    PhotoTensors,
    data_hash,
    decode_photos,
    list_photos,
    normalise,
    training_splits,
)
from catdog.training.models import build_model, count_gflops, input_normalisation
from catdog.training.params import TrainParams
from catdog.training.pretrained import LICENCE, ORIGIN
from catdog.training.tracking import MlflowTracking, NoTracking, Tracker, git_commit

EVAL_BATCH = 256
EpochHook = Callable[["Trainer", dict[str, float]], None]


@dataclass(frozen=True)
class Runtime:
    """Where this process trains: its device, and its place in a distributed run."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self, enabled: bool) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on CUDA (no loss scaling needed); full precision elsewhere."""
        if enabled and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def resolve_device(requested: str, local_rank: int = 0) -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; an explicit device that is missing is an error."""
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if requested == "auto":
        requested = "cuda" if cuda else "mps" if mps else "cpu"
    if (requested == "cuda" and not cuda) or (requested == "mps" and not mps):
        raise ConfigError(f"device {requested!r} was asked for but is not available here")
    if requested == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(requested)


def start_runtime(requested: str) -> Runtime:
    """Join the torchrun process group when there is one (NCCL on GPUs, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested, local_rank)
    if world_size == 1:
        return Runtime(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        # Processes on one machine share its cores: give each its share, not all of them.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Runtime(device, dist.get_rank(), dist.get_world_size())


def seed_everything(seed: int, device: torch.device, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch. On CPU, or anywhere with `deterministic`, also ask torch
    for deterministic kernels (warning on ops that have none) and keep cuDNN from benchmarking,
    which picks the fastest algorithm per run, not the same one. Otherwise CUDA benchmarks."""
    random.seed(seed)
    np.random.seed(seed)  # third-party code may draw from the global generator
    torch.manual_seed(seed)
    if deterministic or device.type == "cpu":
        if device.type == "cuda":  # cuBLAS is deterministic only with a fixed workspace
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


@dataclass
class TrainResult:
    """What a run produced: where the weights are, how good they are, how long it took."""

    checkpoint: Path
    arch: str
    image_size: int
    best_epoch: int
    epochs_run: int
    stop_reason: str
    val: dict[str, float]
    test: ClassificationMetrics | None
    history: list[dict[str, float]]
    training_time_s: float
    images_per_s: float
    gflops: float
    refused: list[tuple[str, str]]
    rank: int = 0
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def lr_factor(step: int, warmup_steps: int, progress_done: float) -> float:
    """Linear warmup over `warmup_steps`, then cosine from 1 to 0 as progress goes 0 -> 1."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress_done)))


def build_optimizer(model: nn.Module, params: TrainParams) -> torch.optim.AdamW:
    """AdamW, without weight decay on biases and normalisation weights (1-d tensors)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": params.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=params.lr)


def ema_of(model: nn.Module, decay: float) -> AveragedModel:
    """Exponential moving average of the weights and BN statistics, with a warmup: early on
    the average follows the model closely (decay (1 + n) / (10 + n)), later at `decay`."""

    def average(
        averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor | int
    ) -> torch.Tensor:
        rate = min(decay, (1 + float(n)) / (10 + float(n)))
        return averaged * rate + current * (1 - rate)

    return AveragedModel(model, avg_fn=average, use_buffers=True)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    photos: PhotoTensors,
    preprocessing: Preprocessing,
    runtime: Runtime,
    *,
    amp: bool = True,
    channels_last: bool = False,
) -> torch.Tensor:
    """Logits of un-augmented photos, exactly as serving would normalise them (float32, CPU)."""
    model.eval()
    outputs = []
    for start in range(0, len(photos), EVAL_BATCH):
        batch = normalise(
            photos.images[start : start + EVAL_BATCH].to(runtime.device), preprocessing
        )
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(amp):
            outputs.append(model(batch).float().cpu())
    return torch.cat(outputs)


def average_buffers(module: nn.Module, world_size: int) -> None:
    """Average BatchNorm statistics over the ranks: each rank saw other photos, and every
    rank must evaluate and save one and the same model."""
    for buffer in module.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer)
            buffer.div_(world_size)


def score(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Mean cross-entropy and accuracy of logits against hard labels."""
    labels = labels.cpu()
    return {
        "loss": float(F.cross_entropy(logits, labels)),
        "accuracy": float((logits.argmax(1) == labels).float().mean()),
    }


class Trainer:
    """One training run: `__init__` gets everything ready, `run()` is the loop."""

    def __init__(
        self, params: TrainParams, *, resume: Path | None = None, limit: int | None = None
    ) -> None:
        self.params = params
        self.runtime = start_runtime(params.device)
        seed_everything(params.seed, self.runtime.device, deterministic=params.deterministic)
        # NHWC suits cuDNN and oneDNN alike, depthwise convolutions most of all.
        self.channels_last = self.runtime.device.type in {"cuda", "cpu"}
        # The model first: a missing pretrained download fails before minutes of decoding.
        self.model = build_model(
            params.arch, pretrained=params.pretrained and resume is None, **params.arch_options
        )
        self.splits = training_splits(params.data, params.raw)
        mean, std = input_normalisation(params.arch)
        self.preprocessing = Preprocessing(
            size=params.image_size or self._prepared_size(), mean=mean, std=std
        )
        self.data = self._decode(limit)
        self.extra: dict[str, Any] = {
            "data_hash": data_hash(params.data),
            "git_commit": git_commit(),
            "hardware": self._hardware(),
            "gflops": count_gflops(self.model, self.preprocessing.size),
            "mlflow_run_id": None,
        }
        if params.pretrained:  # the card names where the starting weights came from
            self.extra |= {"weights_origin": ORIGIN, "weights_licence": LICENCE}
        self.model.to(self.runtime.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, params)
        self.ema = ema_of(self.model, params.ema_decay) if params.ema_decay else None
        # Counters that a resumed run continues from; `elapsed_s` is training time before now.
        self.state: dict[str, Any] = {"epoch": 0, "step": 0, "elapsed_s": 0.0, "bad_epochs": 0}
        self.best: dict[str, float] | None = None
        self.history: list[dict[str, float]] = []
        if resume is not None:
            self._restore(load_checkpoint(resume))
        self.train_model: nn.Module = self.model
        if self.runtime.distributed:
            device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids
            )
        if params.compile:
            self.train_model = torch.compile(self.train_model)  # type: ignore[assignment]
        per_rank = len(self.data["train"]) // self.runtime.world_size
        self.steps_per_epoch = max(1, per_rank // params.batch_size)
        self.total_steps = params.epochs * self.steps_per_epoch
        self.warmup_steps = round(params.warmup_epochs * self.steps_per_epoch)
        self.tracker: Tracker = NoTracking()
        self.on_epoch: EpochHook | None = None

    def _prepared_size(self) -> int:
        """The side of the prepared photos (the data stage already resized them)."""
        from PIL import Image  # noqa: PLC0415 - only needed here

        photos = list_photos(self.params.data / "train")
        if not photos:
            raise TrainingError(f"no photos in {self.params.data / 'train'}", reason="no_data")
        with Image.open(photos[0][0]) as image:
            return max(32, image.size[0])

    def _decode(self, limit: int | None) -> dict[str, PhotoTensors]:
        """Decode every split once, then keep it on the training device."""
        decoded: dict[str, PhotoTensors] = {}
        for split, folder in self.splits.items():
            with progress() as bar:
                total = len(folder.items)
                task = bar.add_task(f"decode {split}", total=min(total, limit or total))
                photos = decode_photos(
                    folder, self.preprocessing, limit=limit, on_decoded=partial(bar.advance, task)
                )
            if split == "train" and min(photos.class_counts().values()) == 0:
                raise TrainingError(
                    f"{folder.root} has photos of one class only: {photos.class_counts()}",
                    reason="no_data",
                )
            if len(photos) < self.runtime.world_size:
                raise TrainingError(
                    f"{folder.root} has fewer photos than processes", reason="no_data"
                )
            for path, reason in photos.refused:
                console.print(f"[yellow]skipped[/] {path}: {reason}")
            decoded[split] = photos.to(self.runtime.device)
        return decoded

    def _restore(self, loaded: LoadedCheckpoint) -> None:
        """Continue a run from its last.pt: weights, optimiser, EMA, counters, history."""
        wanted = (self.params.arch, self.params.arch_options, self.preprocessing.size)
        found = (loaded.arch, loaded.arch_kwargs, loaded.preprocessing.size)
        if wanted != found:
            raise TrainingError(
                f"cannot resume: the checkpoint is (arch, options, size) {found}, "
                f"the params ask for {wanted}",
                reason="bad_resume",
            )
        if loaded.optimizer_state is None or not loaded.trainer_state:
            raise TrainingError(
                "cannot resume from a best-weights checkpoint; resume from last.pt",
                reason="bad_resume",
            )
        self.model.load_state_dict(loaded.model_state)
        self.optimizer.load_state_dict(loaded.optimizer_state)
        if self.ema is not None and loaded.ema_state is not None:
            self.ema.load_state_dict(loaded.ema_state)
        state = dict(loaded.trainer_state)
        self.history = list(state.pop("history"))
        self.best = state.pop("best")
        self.state = state

    def _hardware(self) -> dict[str, Any]:
        device = self.runtime.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        return {
            "device": device.type,
            "name": name or platform.machine(),
            "processes": self.runtime.world_size,
            "threads": torch.get_num_threads(),
            "torch": str(torch.__version__),
        }

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are evaluated and saved: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model

    def elapsed(self, started: float) -> float:
        """Training seconds so far (resumed runs included), by rank 0's clock on every rank."""
        now: float = self.state["elapsed_s"] + time.perf_counter() - started
        if not (self.runtime.distributed and self.params.max_minutes is not None):
            return now
        seconds = torch.tensor([now], device=self.runtime.device)  # NCCL needs device tensors
        dist.broadcast(seconds, src=0)
        return float(seconds[0])

    def progress_done(self, elapsed_s: float) -> float:
        """How far the schedule is: by steps, or by the clock when the time budget is nearer."""
        steps = self.total_steps - self.warmup_steps
        done: float = (self.state["step"] - self.warmup_steps) / max(1, steps)
        if self.params.max_minutes is not None:
            done = max(done, elapsed_s / (60 * self.params.max_minutes))
        return done

    def train_one_epoch(self, epoch: int, started: float) -> dict[str, float]:
        """One pass over this rank's share of a fresh permutation of the training photos."""
        params, runtime, train = self.params, self.runtime, self.data["train"]
        seed = params.seed
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + epoch))
        order = order[runtime.rank :: runtime.world_size].to(runtime.device)
        generator = torch.Generator(runtime.device).manual_seed(seed + 7919 * epoch + runtime.rank)
        rng = np.random.default_rng([seed, epoch, runtime.rank])
        torch.manual_seed(seed + 104729 * epoch + runtime.rank)  # dropout
        totals = torch.zeros(3, device=runtime.device)  # loss sum, correct, photos
        self.train_model.train()
        with progress() as bar:
            task = bar.add_task(f"epoch {epoch}", total=self.steps_per_epoch)
            for batch in range(self.steps_per_epoch):
                done = self.progress_done(self.elapsed(started))
                # An epoch begun within the budget trains at least one batch: the budget may run
                # out between the check at the epoch boundary and here, and an epoch of nothing
                # would still be validated and recorded.
                if params.max_minutes is not None and done >= 1.0 and batch > 0:
                    break
                for group in self.optimizer.param_groups:
                    group["lr"] = params.lr * lr_factor(self.state["step"], self.warmup_steps, done)
                index = order[batch * params.batch_size : (batch + 1) * params.batch_size]
                labels = train.labels[index]
                images = augment(train.images[index], params.augment, generator, progress_done=done)
                images = normalise(images, self.preprocessing)
                targets = soft_targets(labels, len(CLASSES), params.label_smoothing)
                images, targets = mix(images, targets, params.augment, rng)
                if self.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                with runtime.autocast(params.amp):
                    logits = self.train_model(images)
                loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                self.optimizer.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                self.state["step"] += 1
                totals[0] += loss.detach() * len(index)
                totals[1] += (logits.argmax(1) == labels).sum()
                totals[2] += len(index)
                bar.advance(task)
        if runtime.distributed:
            dist.all_reduce(totals)
            for module in (self.model, self.ema):
                if module is not None:
                    average_buffers(module, runtime.world_size)
        loss_sum, correct, count = totals.tolist()
        count = max(count, 1.0)
        return {"train_loss": loss_sum / count, "train_accuracy": correct / count, "photos": count}

    def evaluate(self, split: str, model: nn.Module | None = None) -> torch.Tensor:
        """Logits of a split's un-augmented photos."""
        return predict_logits(
            model if model is not None else self.eval_model,
            self.data[split],
            self.preprocessing,
            self.runtime,
            amp=self.params.amp,
            channels_last=self.channels_last,
        )

    def is_better(self, val: dict[str, float]) -> bool:
        """Lower val loss wins (or higher val accuracy, per `monitor`); the other breaks ties."""
        if self.best is None:
            return True

        def rank(scores: dict[str, float]) -> tuple[float, float]:
            if self.params.monitor == "val_loss":
                return (-scores["loss"], scores["accuracy"])
            return (scores["accuracy"], -scores["loss"])

        return rank(val) > rank(self.best)

    def save(self, path: Path, epoch: int, metrics: dict[str, Any], *, resumable: bool) -> None:
        """last.pt (resumable: raw weights, optimiser, EMA, counters) or the best weights."""
        save_checkpoint(
            path,
            model=self.model if resumable else self.eval_model,
            arch=self.params.arch,
            arch_kwargs=self.params.arch_options,
            preprocessing=self.preprocessing,
            params=self.params.model_dump(mode="json"),
            epoch=epoch,
            metrics=metrics,
            optimizer=self.optimizer if resumable else None,
            ema=self.ema if resumable else None,
            extra=self.extra,
            trainer_state={**self.state, "best": self.best, "history": self.history}
            if resumable
            else None,
        )

    def run(self, on_epoch: EpochHook | None = None) -> TrainResult:
        """Train, then score and record the best weights. Rank 0 alone tracks and saves.

        `on_epoch(trainer, row)` runs on rank 0 after each epoch's record (benchmarks use it to
        score the test split along the way); its time counts as training time.
        """
        params = self.params
        self.on_epoch = on_epoch
        if self.runtime.is_main and params.tracking:
            self.tracker = MlflowTracking(
                experiment=params.experiment,
                params=params.model_dump(mode="json") | {"image_size": self.preprocessing.size},
                tags={
                    "git_commit": self.extra["git_commit"],
                    "data_hash": self.extra["data_hash"],
                    "arch": params.arch,
                },
            )
            self.extra["mlflow_run_id"] = self.tracker.run_id
        try:
            result = self._fit()
            if self.runtime.is_main:
                self._finish(result)
        except BaseException:
            self.tracker.end(failed=True)
            raise
        self.tracker.end()
        return result

    def _fit(self) -> TrainResult:
        params, runtime = self.params, self.runtime
        started = time.perf_counter()
        stop_reason = "epochs"
        photos, train_seconds = 0.0, 0.0
        for epoch in range(self.state["epoch"] + 1, params.epochs + 1):
            if params.max_minutes is not None and self.progress_done(self.elapsed(started)) >= 1:
                stop_reason = "time_budget"
                break
            epoch_started = time.perf_counter()
            stats = self.train_one_epoch(epoch, started)
            photos += stats.pop("photos")
            train_seconds += time.perf_counter() - epoch_started
            val = score(self.evaluate("val"), self.data["val"].labels)
            elapsed = self.elapsed(started)
            row = {
                "epoch": epoch,
                **stats,
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
                "lr": self.optimizer.param_groups[0]["lr"],
                "elapsed_s": elapsed,
            }
            self.history.append(row)
            improved = self.is_better(val)
            self.best = {**val, "epoch": epoch} if improved else self.best
            self.state["bad_epochs"] = 0 if improved else self.state["bad_epochs"] + 1
            self.state["epoch"] = epoch
            if runtime.is_main:
                self._record_epoch(row, improved)
                self.state["elapsed_s"], resumed_from = elapsed, self.state["elapsed_s"]
                self.save(params.last_checkpoint, epoch, row, resumable=True)
                self.state["elapsed_s"] = resumed_from
            if params.patience and self.state["bad_epochs"] >= params.patience:
                stop_reason = "early_stopping"
                break
        assert self.best is not None
        return TrainResult(
            checkpoint=params.checkpoint,
            arch=params.arch,
            image_size=self.preprocessing.size,
            best_epoch=int(self.best["epoch"]),
            epochs_run=self.state["epoch"],
            stop_reason=stop_reason,
            val={"accuracy": self.best["accuracy"], "loss": self.best["loss"]},
            test=None,
            history=self.history,
            training_time_s=self.elapsed(started),
            images_per_s=photos / train_seconds if train_seconds else 0.0,
            gflops=self.extra["gflops"],
            refused=[r for split in self.data.values() for r in split.refused],
            rank=runtime.rank,
            run_id=self.tracker.run_id,
        )

    def _record_epoch(self, row: dict[str, float], improved: bool) -> None:
        console.print(
            f"epoch {row['epoch']}/{self.params.epochs}: "
            f"train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
            f"{' (best)' if improved else ''} | {row['elapsed_s'] / 60:.1f} min"
        )
        self.tracker.log_epoch(int(row["epoch"]), {k: v for k, v in row.items() if k != "epoch"})
        if improved:
            self.save(self.params.checkpoint, int(row["epoch"]), row, resumable=False)
        if self.on_epoch is not None:
            self.on_epoch(self, row)

    def _finish(self, result: TrainResult) -> None:
        """Score the best weights on test, log pictures and the model, write the DVC files."""
        params = self.params
        best = load_checkpoint(params.checkpoint)
        model = copy.deepcopy(best.model).to(self.runtime.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        split = "test" if "test" in self.data else "val"
        logits = self.evaluate(split, model)
        photos = self.data[split]
        labels = photos.labels.cpu().numpy()
        p_dog = torch.softmax(logits, dim=1)[:, 1].numpy()
        scores = classification_metrics(labels, p_dog)
        result.test = scores if split == "test" else None
        with tempfile.TemporaryDirectory() as folder:
            pictures = Path(folder)
            plots.plot_curves(self.history, pictures / "curves.png")
            plots.plot_confusion(scores, pictures / f"confusion_{split}.png", title=split)
            plots.plot_roc(labels, p_dog, scores["roc_auc"], pictures / f"roc_{split}.png")
            plots.plot_worst_mistakes(
                photos.images.cpu().numpy(),
                labels,
                p_dog,
                photos.sources,
                pictures / f"worst_mistakes_{split}.png",
                count=params.mistakes_shown,
            )
            self.tracker.log_folder(pictures, "plots")
        final = {f"{split}_{k}": float(v) for k, v in scores.items() if isinstance(v, int | float)}
        final |= {"best_val_accuracy": result.val["accuracy"], "best_epoch": result.best_epoch}
        final |= {"training_time_s": result.training_time_s, "images_per_s": result.images_per_s}
        self.tracker.log_metrics(final)
        self.extra |= {
            "training_time_s": result.training_time_s,
            "images_per_s": result.images_per_s,
        }
        result.extra = self.extra
        # The best weights again, now with their test scores and run metadata for the card.
        save_checkpoint(
            params.checkpoint,
            model=best.model,
            arch=best.arch,
            arch_kwargs=best.arch_kwargs,
            preprocessing=best.preprocessing,
            params=best.params,
            epoch=best.epoch,
            metrics={**best.metrics, **final},
            extra=self.extra,
        )
        write_history(self.history, params.history_file)
        write_metrics(result, params.metrics_file)


def write_history(history: list[dict[str, float]], path: Path) -> None:
    """Per-epoch CSV for `dvc plots`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def write_metrics(result: TrainResult, path: Path) -> None:
    """The run's headline numbers as JSON for `dvc metrics`."""
    report = {
        "arch": result.arch,
        "image_size": result.image_size,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stop_reason": result.stop_reason,
        "val": result.val,
        "test": result.test,
        "training_time_s": round(result.training_time_s, 2),
        "images_per_s": round(result.images_per_s, 2),
        "gflops": round(result.gflops, 4),
        "refused_photos": len(result.refused),
        "mlflow_run_id": result.run_id,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def train(
    params: TrainParams, *, resume: Path | None = None, limit: int | None = None
) -> TrainResult:
    """Run `catdog train`: one process, or one rank of a torchrun job."""
    try:
        return Trainer(params, resume=resume, limit=limit).run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
