"""The reference model's CPU recipe: EfficientNet-Lite0 from ImageNet weights, fine-tuned on
petimages-8k on 2 CPU cores within 45 minutes, every choice measured in the same run.

    .venv/bin/python -m benchmarks.reference_recipe                    # the full, timed run
    .venv/bin/python -m benchmarks.reference_recipe --limit 300 --epochs 1 --out /tmp/trial

How (params/reference.yaml holds every number):
1. The data stage splits the originals (train/val/test, its manifest); every photo is decoded
   from its original bytes through the model's `Preprocessing`, exactly as serving does it.
2. The stem and the first `frozen_blocks` blocks stay ImageNet's. Their output is computed once
   per training photo and view (the photo as served, its mirror image, random resized crops) and
   kept in memory as float16; so is the full ImageNet model's 1000-class answer on each view.
3. Warm-up: the cat/dog classifier is fitted on the frozen pooled features (a linear probe).
4. Fine-tune: the remaining blocks, head and classifier, from those cached activations, with
   smaller learning rates for earlier blocks, AdamW, label smoothing, an EMA of the weights, and
   distillation from the cached ImageNet answers (learning without forgetting), so that the
   ImageNet head still says whether a photo shows a pet at all.
5. Each candidate (the probe, the fine-tuned weights and their EMA) gets a temperature fitted on
   val; the lowest calibrated val log loss ships. Test is scored once at the end (plus per epoch
   for the curve only).

Writes `<out>/checkpoint.pt` (a catdog checkpoint: `catdog export` turns it into the shipped
ONNX file), `benchmarks/results/reference_recipe.json` and its curve picture.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

# Before torch loads OpenMP: idle threads sleep instead of spinning (the cores are shared).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
import yaml
from matplotlib.figure import Figure
from PIL import Image

from catdog.data.params import DataParams
from catdog.data.prepare import prepare_dataset
from catdog.data.sources import RawReader
from catdog.metrics import classification_metrics
from catdog.preprocess import RESAMPLING, Preprocessing, load_rgb
from catdog.training.checkpoint import save_checkpoint
from catdog.training.data import MAX_FILE_BYTES, SplitPhotos, manifest_split
from catdog.training.efficientnet import EfficientNetLite0, pet_score
from catdog.training.evaluate import expected_calibration_error
from catdog.training.models import count_gflops, input_normalisation
from catdog.training.pretrained import LICENCE, ORIGIN, load_imagenet_weights

RESULTS = Path("benchmarks/results")
PARAMS = Path("params/reference.yaml")


# ---------------------------------------------------------------- views


def random_crop(
    image: Image.Image, rng: np.random.Generator, scale: tuple[float, float]
) -> Image.Image:
    """A random resized crop's box (area fraction in `scale`, aspect 3:4..4:3), maybe mirrored."""
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            image = image.crop((left, top, left + w, top + h))
            break
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def photo_views(
    data: bytes,
    preprocessing: Preprocessing,
    crops: int,
    rng: np.random.Generator,
    scale: tuple[float, float],
) -> np.ndarray:
    """[views, S, S, 3] uint8: the photo as served, its mirror image, then `crops` crops."""
    image = load_rgb(data, draft_size=preprocessing.decode_size)
    served = np.asarray(preprocessing.resize(image), dtype=np.uint8)
    views = [served, served[:, ::-1]]
    size = (preprocessing.size, preprocessing.size)
    for _ in range(crops):
        crop = random_crop(image, rng, scale)
        views.append(
            np.asarray(crop.resize(size, RESAMPLING[preprocessing.resample], reducing_gap=3.0))
        )
    return np.stack(views)


# ---------------------------------------------------------------- cache


class Cache:
    """One split's frozen activations and ImageNet answers, per photo and view."""

    def __init__(
        self,
        frozen: torch.Tensor,
        teacher: torch.Tensor,
        pooled: torch.Tensor,
        labels: torch.Tensor,
        sources: list[str],
    ):
        self.frozen = frozen  # [N, V, C, H, W] float16
        self.teacher = teacher  # [N, V, 1000] float16: the ImageNet model's logits
        self.pooled = pooled  # [N, V, 1280] float32: ImageNet features (the linear probe's input)
        self.labels = labels
        self.sources = sources


class Teacher(torch.nn.Module):
    """The frozen layers' output, the pooled ImageNet features and ImageNet's logits."""

    def __init__(self, model: EfficientNetLite0) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        frozen = self.model.frozen_features(x)
        pooled = self.model.pooled_from_frozen(frozen)
        return frozen, pooled, self.model.imagenet_logits(pooled)


def teacher_session(
    model: EfficientNetLite0, size: int, folder: Path
) -> Callable[[np.ndarray], list[np.ndarray]]:
    """The ImageNet model in ONNX Runtime: 3-4x faster than PyTorch's CPU kernels on the
    high-resolution depthwise layers, which is where caching spends its time."""
    import onnxruntime as ort  # noqa: PLC0415 - only the recipe needs it

    path = folder / "teacher.onnx"
    torch.onnx.export(
        Teacher(model).eval(),
        (torch.zeros(2, 3, size, size),),
        str(path),
        input_names=["image"],
        output_names=["frozen", "pooled", "imagenet"],
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=False,
        verbose=False,
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"image": batch})


def build_cache(
    teacher: Callable[[np.ndarray], list[np.ndarray]],
    photos: SplitPhotos,
    preprocessing: Preprocessing,
    *,
    crops: int,
    scale: tuple[float, float],
    seed: int,
    chunk: int = 64,
    log: Callable[[str], None] = print,
) -> Cache:
    """Decode every photo's views once, run the frozen layers and the ImageNet model on them."""
    reader = RawReader(photos.root)
    mean = torch.tensor(preprocessing.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(preprocessing.std).view(1, 3, 1, 1) * 255
    frozen, answers, pooled, labels, sources = [], [], [], [], []
    items = list(photos.items)
    started = time.perf_counter()

    def views_of(index: int) -> np.ndarray | None:
        source = items[index][0]
        try:
            data = reader.read(source, MAX_FILE_BYTES)
            rng = np.random.default_rng([seed, index])
            return photo_views(data, preprocessing, crops, rng, scale)
        except Exception as exc:  # a photo that does not decode is reported, never hidden
            log(f"refused {source}: {exc}")
            return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        for start in range(0, len(items), chunk):
            batch_views = list(pool.map(views_of, range(start, min(start + chunk, len(items)))))
            kept = [i for i, v in enumerate(batch_views) if v is not None]
            arrays = np.stack([batch_views[i] for i in kept])  # [B, V, S, S, 3]
            b, v = arrays.shape[:2]
            x = torch.from_numpy(arrays).reshape(b * v, *arrays.shape[2:]).permute(0, 3, 1, 2)
            x = ((x.float() - mean) / std).contiguous().numpy()
            f, p, logits = (torch.from_numpy(a) for a in teacher(x))
            frozen.append(f.half().reshape(b, v, *f.shape[1:]))
            pooled.append(p.reshape(b, v, -1))
            answers.append(logits.half().reshape(b, v, -1))
            for i in kept:
                source, label = items[start + i]
                labels.append(label)
                sources.append(source)
            done = start + len(batch_views)
            if done % (chunk * 10) == 0 or done == len(items):
                rate = done / (time.perf_counter() - started)
                log(f"  cached {done}/{len(items)} photos x {v} views ({rate:.1f} photos/s)")
    reader.close()
    return Cache(
        torch.cat(frozen), torch.cat(answers), torch.cat(pooled), torch.tensor(labels), sources
    )


# ---------------------------------------------------------------- training


def fit_probe(
    model: EfficientNetLite0, train: Cache, val: Cache, cfg: dict[str, Any]
) -> dict[str, float]:
    """Warm-up: the cat/dog classifier fitted on the frozen pooled features of every view, with
    each weight decay of `probe_weight_decays`; the one with the lowest val log loss is kept.
    Returns each decay's val log loss."""
    val_loss: dict[str, float] = {}
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    for decay in cfg["probe_weight_decays"]:
        _fit_head(model.classifier, train, decay, cfg["probe_steps"])
        with torch.no_grad():  # the backbone is frozen: val's cached pooled features suffice
            loss = float(F.cross_entropy(model.classifier(val.pooled[:, 0]), val.labels))
        val_loss[f"{decay:g}"] = round(loss, 5)
        if best is None or loss < best[0]:
            best = (loss, copy.deepcopy(model.classifier.state_dict()))
    assert best is not None
    model.classifier.load_state_dict(best[1])
    return val_loss


def _fit_head(head: torch.nn.Linear, train: Cache, decay: float, steps: int) -> None:
    """LBFGS on cross-entropy plus `decay` x the squared weights, from zero."""
    x = train.pooled.reshape(-1, train.pooled.shape[-1])
    y = train.labels.repeat_interleave(train.pooled.shape[1])
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(head(x), y) + decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)


def trainable_groups(model: EfficientNetLite0, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """Parameter groups, the learning rate shrinking by `lr_decay` per group further from the
    output: the classifier, then the head and last block, then the blocks below two at a time."""
    lr, decay = cfg["lr"], cfg["lr_decay"]
    blocks = list(range(model.frozen_blocks, len(model.blocks)))[::-1]
    groups: list[list[torch.nn.Module]] = [
        [model.classifier],
        [model.head, model.blocks[blocks[0]]],
    ]
    for i in range(1, len(blocks), 2):
        groups.append([model.blocks[j] for j in blocks[i : i + 2]])
    out = []
    for depth, modules in enumerate(groups):
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        matrices = [p for p in params if p.ndim > 1]
        vectors = [p for p in params if p.ndim <= 1]
        rate = lr * decay**depth
        out.append(
            {"params": matrices, "lr": rate, "base_lr": rate, "weight_decay": cfg["weight_decay"]}
        )
        out.append({"params": vectors, "lr": rate, "base_lr": rate, "weight_decay": 0.0})
    return out


def logits_from_cache(
    model: EfficientNetLite0, cache: Cache, view: int, batch: int = 200
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cat/dog and ImageNet logits of one view of every cached photo (eval mode)."""
    model.eval()
    out, imagenet = [], []
    with torch.no_grad():
        for start in range(0, len(cache.labels), batch):
            pooled = model.pooled_from_frozen(cache.frozen[start : start + batch, view].float())
            out.append(model.classify(pooled))
            imagenet.append(model.imagenet_logits(pooled))
    return torch.cat(out), torch.cat(imagenet)


def scores(
    logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0
) -> dict[str, float]:
    """Accuracy, log loss and ECE of (temperature-scaled) logits."""
    p_dog = torch.softmax(logits / temperature, dim=1)[:, 1].numpy()
    return probability_scores(p_dog, labels)


def probability_scores(p_dog: np.ndarray, labels: torch.Tensor) -> dict[str, float]:
    y = labels.numpy()
    m = classification_metrics(y, p_dog)
    return {
        "accuracy": round(float(m["accuracy"]), 5),
        "log_loss": round(float(m["log_loss"]), 5),
        "ece": round(expected_calibration_error(y, p_dog), 5),
        "errors": round((1 - m["accuracy"]) * len(y)),
        "count": len(y),
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The temperature that minimises val log loss (one scalar: accuracy cannot change)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def fine_tune(
    model: EfficientNetLite0,
    train: Cache,
    val: Cache,
    test: Cache,
    cfg: dict[str, Any],
    *,
    log: Callable[[str], None],
    clock: Callable[[], float],
) -> tuple[EfficientNetLite0, list[dict[str, float]]]:
    """Train the unfrozen layers from the cached activations; returns the EMA model and curve."""
    torch.manual_seed(cfg["seed"])
    optimizer = torch.optim.AdamW(trainable_groups(model, cfg))
    ema = copy.deepcopy(model).eval()
    n, views = train.frozen.shape[:2]
    batch = cfg["batch_size"]
    steps_per_epoch = n // batch
    total = steps_per_epoch * cfg["epochs"]
    warmup = max(1, int(cfg["warmup_epochs"] * steps_per_epoch))
    smoothing, weight, t = cfg["label_smoothing"], cfg["distill_weight"], cfg["distill_temperature"]
    curve: list[dict[str, float]] = []
    step = 0
    generator = torch.Generator().manual_seed(cfg["seed"])
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        if cfg["freeze_batchnorm"]:
            # Batches of 64 give noisier statistics than ImageNet's: keep its normalisation.
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
        order = torch.randperm(n, generator=generator)
        view_of = torch.randint(0, views, (n,), generator=generator)
        totals = [0.0, 0.0, 0.0]
        for b in range(steps_per_epoch):
            index = order[b * batch : (b + 1) * batch]
            view = view_of[index]
            factor = (
                (step + 1) / warmup
                if step < warmup
                else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
            )
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            x = train.frozen[index, view].float()
            labels = train.labels[index]
            pooled = model.pooled_from_frozen(x)
            logits = model.classify(pooled)
            task = F.cross_entropy(logits, labels, label_smoothing=smoothing)
            student = F.log_softmax(model.imagenet_logits(pooled) / t, dim=1)
            teacher = F.softmax(train.teacher[index, view].float() / t, dim=1)
            distill = F.kl_div(student, teacher, reduction="batchmean") * t * t
            loss = task + weight * distill
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            rate = min(cfg["ema_decay"], (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(
                    ema.state_dict().values(), model.state_dict().values(), strict=True
                ):
                    if e.is_floating_point():
                        e.mul_(rate).add_(p.detach(), alpha=1 - rate)
                    else:
                        e.copy_(p)
            totals[0] += task.item() * len(index)
            totals[1] += distill.item() * len(index)
            totals[2] += len(index)
        row: dict[str, float] = {
            "epoch": epoch,
            "minutes": round(clock() / 60, 2),
            "train_loss": round(totals[0] / totals[2], 5),
            "distill_loss": round(totals[1] / totals[2], 5),
        }
        for name, candidate in (("raw", model), ("ema", ema)):
            for split, cache in (("val", val), ("test", test)):
                logits, _ = logits_from_cache(candidate, cache, 0)
                s = scores(logits, cache.labels)
                row[f"{name}_{split}_accuracy"] = s["accuracy"]
                row[f"{name}_{split}_log_loss"] = s["log_loss"]
        curve.append(row)
        log(f"epoch {epoch}: {json.dumps(row)}")
    return ema, curve


# ---------------------------------------------------------------- the run


def pet_flag_rates(scores_: np.ndarray, thresholds: list[float]) -> dict[str, float]:
    """Fraction of photos whose pet score is under each threshold (flagged as not a pet)."""
    return {f"{t:g}": round(float((scores_ < t).mean()), 5) for t in thresholds}


def plot_curve(report: dict[str, Any], path: Path) -> None:
    """Val and test accuracy and log loss of the EMA weights per epoch."""
    curve = report["curve"]
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    minutes = [row["minutes"] for row in curve]
    for split in ("val", "test"):
        left.plot(
            minutes,
            [row[f"ema_{split}_accuracy"] for row in curve],
            marker="o",
            label=f"{split} (EMA)",
        )
        right.plot(
            minutes,
            [row[f"ema_{split}_log_loss"] for row in curve],
            marker="o",
            label=f"{split} (EMA)",
        )
    probe = report["probe"]["test"]
    left.axhline(probe["accuracy"], color="grey", linestyle=":", label="linear probe, test")
    left.axhline(0.994, color="red", linestyle="--", label="99.4% goal")
    right.axhline(0.025, color="red", linestyle="--", label="0.025 goal")
    left.set(xlabel="minutes since start (2 shared CPU cores)", ylabel="accuracy", title="accuracy")
    right.set(
        xlabel="minutes since start", ylabel="log loss (before temperature)", title="log loss"
    )
    left.legend()
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", type=Path, default=PARAMS)
    parser.add_argument("--limit", type=int, default=None, help="photos per split (trials)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="folder for checkpoint and JSON")
    args = parser.parse_args(argv)
    cfg: dict[str, Any] = yaml.safe_load(args.params.read_text())["reference"]
    if args.epochs is not None:
        cfg["epochs"] = args.epochs
    out = args.out or Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - started

    def log(message: str) -> None:
        print(f"[{clock() / 60:5.1f} min] {message}", flush=True)

    torch.manual_seed(cfg["seed"])
    raw, data = Path(cfg["raw"]), Path(cfg["data"])
    prepare_dataset(raw, data, DataParams(**cfg["data_params"]), show_progress=False)
    splits = {s: manifest_split(data, raw, s) for s in ("train", "val", "test")}
    if args.limit:
        splits = {
            s: SplitPhotos(p.root, p.items[:: max(1, len(p.items) // args.limit)][: args.limit])
            for s, p in splits.items()
        }
    log("split: " + ", ".join(f"{s} {len(p.items)}" for s, p in splits.items()))
    mean, std = input_normalisation("efficientnet_lite0")
    preprocessing = Preprocessing(
        size=cfg["image_size"],
        mean=mean,
        std=std,
        resample=cfg["resample"],
        center_crop=cfg.get("center_crop"),
    )
    options = {
        "frozen_blocks": cfg["frozen_blocks"],
        "imagenet_head": True,
        "dropout": cfg["dropout"],
    }
    model = load_imagenet_weights(EfficientNetLite0(**options))
    scale = tuple(cfg["crop_scale"])
    model.eval()
    teacher = teacher_session(model, preprocessing.size, out)
    caches = {
        split: build_cache(
            teacher,
            photos,
            preprocessing,
            crops=cfg["crop_views"] if split == "train" else 0,
            scale=scale,
            seed=cfg["seed"],
            log=log,
        )
        for split, photos in splits.items()
    }
    cache_minutes = clock() / 60
    log(f"cache built in {cache_minutes:.1f} min")
    train, val, test = caches["train"], caches["val"], caches["test"]

    probe_decays = fit_probe(model, train, val, cfg)
    log(f"linear probe val log loss by weight decay: {probe_decays}")
    probe: dict[str, Any] = {"val_log_loss_by_weight_decay": probe_decays}
    for split, cache in (("val", val), ("test", test)):
        logits, _ = logits_from_cache(model, cache, 0)
        probe[split] = scores(logits, cache.labels)
    log(f"linear probe: {probe}")

    probe_model = copy.deepcopy(model)
    ema, curve = fine_tune(model, train, val, test, cfg, log=log, clock=clock)
    candidates = {"probe": probe_model, "raw": model, "ema": ema}
    final: dict[str, Any] = {}
    temperatures: dict[str, float] = {}
    for name, candidate in candidates.items():
        val_logits, _ = logits_from_cache(candidate, val, 0)
        temperatures[name] = fit_temperature(val_logits, val.labels)
        final[name] = {
            "val": scores(val_logits, val.labels),
            "val_calibrated": scores(val_logits, val.labels, temperatures[name]),
        }
    # The weights to ship: the lowest val log loss once each candidate has its own temperature,
    # as it will be served (label smoothing inflates the raw loss that a temperature removes).
    # Test plays no part in the choice.
    chosen_name = min(final, key=lambda name: final[name]["val_calibrated"]["log_loss"])
    chosen = candidates[chosen_name]
    val_logits, _ = logits_from_cache(chosen, val, 0)
    temperature = temperatures[chosen_name]
    test_logits, test_imagenet = logits_from_cache(chosen, test, 0)
    flip_logits, _ = logits_from_cache(chosen, test, 1)
    p_single = torch.softmax(test_logits / temperature, dim=1)[:, 1].numpy()
    p_flip = (p_single + torch.softmax(flip_logits / temperature, dim=1)[:, 1].numpy()) / 2
    for name, candidate in candidates.items():
        logits, _ = logits_from_cache(candidate, test, 0)
        final[name]["test"] = scores(logits, test.labels)
        final[name]["test_calibrated"] = scores(logits, test.labels, temperatures[name])
    thresholds = [0.05, 0.1, 0.2, 0.3, 0.5]
    student_pet = pet_score(test_imagenet.float()).numpy()
    teacher_pet = pet_score(test.teacher[:, 0].float()).numpy()
    train_minutes = clock() / 60
    chosen.temperature = temperature
    chosen.eval()
    gflops = count_gflops(chosen, preprocessing.size)
    report: dict[str, Any] = {
        "benchmark": "reference model CPU recipe (EfficientNet-Lite0 from ImageNet weights)",
        "command": "python -m benchmarks.reference_recipe"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --epochs {args.epochs}" if args.epochs else ""),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "recipe": cfg,
        "photos": {s: len(c.labels) for s, c in caches.items()},
        "hardware": {
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "load_average_at_end": os.getloadavg(),
        },
        "cache_minutes": round(cache_minutes, 2),
        "wall_minutes": round(train_minutes, 2),
        "probe": probe,
        "curve": curve,
        "final": final,
        "chosen_weights": chosen_name,
        "temperature": round(temperature, 4),
        "test": {
            "single_view": scores(test_logits, test.labels, temperature),
            "single_view_uncalibrated": scores(test_logits, test.labels),
            "flip_averaged": probability_scores(p_flip, test.labels),
        },
        "pet_flagged_test_photos": {
            "fine_tuned_head": pet_flag_rates(student_pet, thresholds),
            "imagenet_model": pet_flag_rates(teacher_pet, thresholds),
        },
        "gflops": round(gflops, 4),
        "image_size": preprocessing.size,
    }
    metrics = {
        "test_accuracy": report["test"]["single_view"]["accuracy"],
        "test_log_loss": report["test"]["single_view"]["log_loss"],
        "test_ece": report["test"]["single_view"]["ece"],
        "val_accuracy": scores(val_logits, val.labels, temperature)["accuracy"],
        "temperature": temperature,
    }
    save_checkpoint(
        out / "checkpoint.pt",
        model=chosen,
        arch="efficientnet_lite0",
        arch_kwargs={**options, "temperature": temperature},
        preprocessing=preprocessing,
        # `raw` and `data` as a `catdog train` checkpoint names them: export scores the originals.
        params={"raw": cfg["raw"], "data": cfg["data"], "recipe": cfg},
        epoch=cfg["epochs"],
        metrics=metrics,
        extra={
            "training_time_s": round(train_minutes * 60, 1),
            "weights_origin": ORIGIN,
            "weights_licence": LICENCE,
            "recipe": "python -m benchmarks.reference_recipe --params params/reference.yaml",
            "data": "petimages-8k (Microsoft Cats vs Dogs sample), split by the data stage",
            "test_split": report["test"],
        },
    )
    results = Path(cfg["results"]) if args.out is None else out
    results.mkdir(parents=True, exist_ok=True)
    name = "reference_recipe"
    (results / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_curve(report, results / f"{name}_curve.png")
    log(
        json.dumps(
            {
                k: report[k]
                for k in ("wall_minutes", "temperature", "test", "pet_flagged_test_photos")
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
