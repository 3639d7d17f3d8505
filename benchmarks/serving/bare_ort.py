"""Bare ONNX Runtime in one process: the ceiling the service is measured against.

Same photos, same decode (`catdog.preprocess`, through `OnnxClassifier` exactly as the service
calls it), same session options, no HTTP, no queue. `decode` mode includes the decode of every
photo (the 85% overhead goal compares with this); `run` mode times the session alone on ready
arrays, which is where batching pays or not.

Run: `python -m benchmarks.serving.bare_ort --model models/model.onnx --batches 1,4,8,16`
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.serving.photos import Photo, add_photo_arguments, photos_from_args
from benchmarks.serving.results import print_table, result_path, write_json
from catdog.model_store import resolve_model
from catdog.predictor import OnnxClassifier

WARMUP_RUNS = 3


def decode_and_run(
    classifier: OnnxClassifier,
    photos: Sequence[Photo],
    *,
    batch: int,
    max_seconds: float,
    max_images: int,
) -> dict[str, Any]:
    """Decode `batch` photos, run them as one batch, repeat: images/s with decode included."""
    cycle = itertools.cycle(photos)
    for _ in range(WARMUP_RUNS):
        classifier.predict_batch(
            np.stack([classifier.prepare(next(cycle).data) for _ in range(batch)])
        )
    images, start = 0, time.perf_counter()
    while images < max_images and time.perf_counter() - start < max_seconds:
        arrays = [classifier.prepare(next(cycle).data) for _ in range(batch)]
        classifier.predict_batch(np.stack(arrays))
        images += batch
    elapsed = time.perf_counter() - start
    return {
        "mode": "decode",
        "batch": batch,
        "images": images,
        "elapsed_s": elapsed,
        "images_per_s": images / elapsed,
    }


def run_only(
    classifier: OnnxClassifier,
    photos: Sequence[Photo],
    *,
    batch: int,
    max_seconds: float,
    max_images: int,
) -> dict[str, Any]:
    """The session alone on photos decoded beforehand: where batching pays, or does not."""
    arrays = np.stack([classifier.prepare(photos[i % len(photos)].data) for i in range(batch)])
    for _ in range(WARMUP_RUNS):
        classifier.predict_batch(arrays)
    images, start = 0, time.perf_counter()
    while images < max_images and time.perf_counter() - start < max_seconds:
        classifier.predict_batch(arrays)
        images += batch
    elapsed = time.perf_counter() - start
    return {
        "mode": "run",
        "batch": batch,
        "images": images,
        "elapsed_s": elapsed,
        "images_per_s": images / elapsed,
    }


def measure(
    model_path: Path,
    photos: Sequence[Photo],
    *,
    batches: Sequence[int],
    modes: Sequence[str],
    max_seconds: float,
    max_images: int,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Every mode at every batch size on one loaded model."""
    classifier = OnnxClassifier(model_path, threads=threads)
    runners = {"decode": decode_and_run, "run": run_only}
    rows = []
    for mode in modes:
        for batch in batches:
            row = runners[mode](
                classifier, photos, batch=batch, max_seconds=max_seconds, max_images=max_images
            )
            rows.append({"model": str(model_path), "version": classifier.version, **row})
    return rows


def print_rows(title: str, rows: Sequence[dict[str, Any]]) -> None:
    """One table row per (model, mode, batch)."""
    print_table(
        title,
        ["model", "mode", "batch", "images/s", "images"],
        [[r["version"], r["mode"], r["batch"], r["images_per_s"], r["images"]] for r in rows],
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: bare ONNX Runtime figures for one model."""
    parser = argparse.ArgumentParser(
        description="Bare ONNX Runtime images/s, decode included or not."
    )
    parser.add_argument("--model", default=None, help="ONNX path or URI (default: reference)")
    parser.add_argument("--batches", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--modes", default="decode,run", help="decode and/or run")
    parser.add_argument("--seconds", type=float, default=10.0, help="time limit per measurement")
    parser.add_argument("--max-images", type=int, default=5000, help="image limit per measurement")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads")
    add_photo_arguments(parser)
    parser.add_argument("--quick", action="store_true", help="write serve_bare_ort_quick.json")
    args = parser.parse_args(argv)
    model_path = resolve_model(args.model)
    photo_dir, photos = photos_from_args(args)
    rows = measure(
        model_path,
        photos,
        batches=[int(b) for b in args.batches.split(",")],
        modes=args.modes.split(","),
        max_seconds=args.seconds,
        max_images=args.max_images,
        threads=args.threads,
    )
    print_rows("bare ONNX Runtime", rows)
    write_json(
        result_path("bare_ort", quick=args.quick),
        {"photos": len(photos), "photo_dir": str(photo_dir), "rows": rows},
    )


if __name__ == "__main__":
    main()
