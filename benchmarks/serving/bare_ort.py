"""Bare ONNX Runtime: the ceiling the service is measured against.

Same photos, same decode (`catdog.preprocess`, through `OnnxClassifier` exactly as the service
calls it), no HTTP. `layout` mode is the ceiling for the overhead goal: the service's own
runner layout (its runner processes, threads and spinning from the same Settings, fed by its
MicroBatcher at concurrency 8) without HTTP, so service / ceiling measures what HTTP, admission
and the event loop cost. `decode` mode decodes and runs in this one process (default threads);
`run` mode times the session alone on ready arrays, which is where batching pays or not.

Run: `python -m benchmarks.serving.bare_ort --model models/model.onnx --modes layout,decode`
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.serving.photos import Photo, add_photo_arguments, photos_from_args
from benchmarks.serving.results import print_table, result_path, write_json
from catdog.model_store import resolve_model
from catdog.prediction import ServedModel
from catdog.predictor import OnnxClassifier
from catdog.serving.batching import MicroBatcher
from catdog.serving.metrics import ServiceMetrics
from catdog.serving.runner import runner_processes
from catdog.serving.settings import Settings

WARMUP_RUNS = 3
# The callers of the layout ceiling: the concurrency of the service's headline run.
LAYOUT_CONCURRENCY = 8


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


def service_layout(
    model_path: Path, photos: Sequence[Photo], *, max_seconds: float, max_images: int
) -> dict[str, Any]:
    """Images/s of the service's runner layout without HTTP: `catdog serve`'s default Settings
    (runners, ONNX Runtime threads, spinning, batching), photos submitted by 8 callers."""
    settings = Settings()
    threads, count = settings.threads_per_worker()
    batcher = MicroBatcher(
        max_batch=settings.max_batch,
        max_wait_s=settings.max_wait_ms / 1000,
        metrics=ServiceMetrics(),
        runners=runner_processes(count, call_timeout_s=settings.runner_deadline_s),
        ort_threads=threads,
        ort_spinning=settings.ort_spinning,
        max_pixels=settings.max_pixels,
    )
    model = ServedModel.read(model_path, "bench")

    async def drive() -> tuple[int, float]:
        batcher.start()
        try:
            await batcher.load(model, serving=False)
            for photo in photos[: LAYOUT_CONCURRENCY * WARMUP_RUNS]:
                await batcher.submit(model, photo.data)
            done = 0
            start = time.perf_counter()

            async def caller(offset: int) -> None:
                nonlocal done
                i = offset
                while done < max_images and time.perf_counter() - start < max_seconds:
                    await batcher.submit(model, photos[i % len(photos)].data)
                    done += 1
                    i += LAYOUT_CONCURRENCY

            await asyncio.gather(*(caller(i) for i in range(LAYOUT_CONCURRENCY)))
            return done, time.perf_counter() - start
        finally:
            await batcher.stop()

    images, elapsed = asyncio.run(drive())
    return {
        "mode": "layout",
        "batch": settings.max_batch,
        "runners": count,
        "ort_threads": threads,
        "concurrency": LAYOUT_CONCURRENCY,
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
    if "layout" in modes:
        row = service_layout(model_path, photos, max_seconds=max_seconds, max_images=max_images)
        rows.append({"model": str(model_path), "version": classifier.version, **row})
    for mode in (m for m in modes if m != "layout"):
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
    parser.add_argument("--modes", default="layout,decode,run", help="layout, decode, run")
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
