"""Training throughput: photos per second of the real training step, per architecture and device.

The step is the loop's own (device augmentation, normalisation, forward, soft-target loss,
backward, AdamW), on a fixed batch of real photos from the bundled sample, after warmup steps.

    .venv/bin/python -m benchmarks.train_benchmark                       # every arch, CPU (+CUDA)
    .venv/bin/python -m benchmarks.train_benchmark --archs mobilenet_se --steps 3 --out /tmp/t.json

Writes benchmarks/results/train_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

# Before torch loads OpenMP: idle threads sleep instead of spinning (the cores are shared).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn.functional as F  # noqa: N812

from catdog.preprocess import CLASSES, Preprocessing
from catdog.terminal import summary_table
from catdog.training.augment import augment
from catdog.training.data import decode_photos, normalise
from catdog.training.loop import build_optimizer
from catdog.training.models import ARCHITECTURES, build_model, count_gflops
from catdog.training.params import AugmentParams, TrainParams

SAMPLES = Path("samples/petimages")


def measure(
    arch: str,
    device: torch.device,
    photos: torch.Tensor,
    labels: torch.Tensor,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Photos per second over `args.steps` timed training steps on one device."""
    preprocessing = Preprocessing(size=args.size)
    augment_params = AugmentParams(crop_size=args.crop)
    model = build_model(arch).to(device).to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, TrainParams(arch=arch))
    generator = torch.Generator(device).manual_seed(0)
    targets = F.one_hot(labels, len(CLASSES)).float()
    bf16 = device.type == "cuda"

    def step() -> None:
        images = normalise(augment(photos, augment_params, generator), preprocessing)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    model.train()
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {
        "arch": arch,
        "device": device.type,
        "image_size": args.size,
        "crop_size": args.crop or args.size,
        "batch_size": len(labels),
        "steps": args.steps,
        "images_per_s": round(args.steps * len(labels) / seconds, 1),
        "gflops_at_image_size": round(count_gflops(build_model(arch), args.size), 4),
        "bf16": bf16,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES)
    parser.add_argument("--size", type=int, default=96, help="decoded photo side")
    parser.add_argument("--crop", type=int, default=64, help="training crop side")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_speed.json"))
    args = parser.parse_args()

    decoded = decode_photos(SAMPLES, Preprocessing(size=args.size), limit=args.batch_size)
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    results = []
    for device in devices:
        photos, labels = decoded.images.to(device), decoded.labels.to(device)
        for arch in args.archs:
            result = measure(arch, device, photos, labels, args)
            results.append(result)
            print(json.dumps(result), flush=True)
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "torch": str(torch.__version__),
            "load_average_at_end": list(os.getloadavg()),
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    summary_table(
        "training throughput (photos/s)",
        [(f"{r['arch']} on {r['device']}", r["images_per_s"]) for r in results],
    )


if __name__ == "__main__":
    main()
