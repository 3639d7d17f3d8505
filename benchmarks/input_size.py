"""Input size: test accuracy against bare ONNX Runtime speed at 288, 256, 224, 192 and 160 px,
with the photo centre-cropped (the card's `center_crop`) and squashed whole.

    .venv/bin/python -m benchmarks.input_size [--checkpoint models/reference/checkpoint.pt]

For each size and fit, with the same weights (every layer of EfficientNet-Lite0 works at any size):
- bare ONNX Runtime images/s of the exported graph (both heads), 2 threads, batches of 8 and 1;
- test accuracy and log loss of a linear probe on frozen ImageNet features at that size (fitted
  on the train split): what the backbone can tell apart at that resolution;
- test accuracy and log loss of the shipped weights (fitted at 256 px) fed that size and fit.
Photos are the originals of the data stage's split, decoded as serving decodes them.

Writes benchmarks/results/input_size.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import onnxruntime as ort
from sklearn.linear_model import LogisticRegression

from catdog.metrics import classification_metrics
from catdog.predictor import OnnxClassifier
from catdog.training.checkpoint import load_checkpoint
from catdog.training.evaluate import PhotoSet, find_photos, iter_batches
from catdog.training.export import export_onnx
from catdog.training.pretrained import imagenet_state

RESULTS = Path("benchmarks/results")


def bare_speed(path: Path, size: int, batch: int, seconds: float = 8.0) -> float:
    """Images/s of ONNX Runtime alone on random inputs (no decoding, no HTTP)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    session.run(None, {"image": x})
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {"image": x})
        done += batch
    return done / (time.perf_counter() - started)


def features_and_scores(
    probe: ort.InferenceSession, tuned: OnnxClassifier, photos: PhotoSet
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ImageNet pooled features (probe graph), the fine-tuned p_dog, and the labels."""
    features, p_dog, labels = [], [], []
    for batch, items in iter_batches(photos, tuned.preprocessing, 64, []):
        features.append(probe.run(["features"], {"image": batch})[0])
        p_dog.append(tuned.predict_batch(batch)[:, 1])
        labels += [1 if item.label == "dog" else 0 for item in items]
    return np.concatenate(features), np.concatenate(p_dog), np.asarray(labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("models/reference/checkpoint.pt"))
    parser.add_argument("--data", type=Path, default=Path("data/reference"))
    parser.add_argument("--raw", type=Path, default=Path("../shared/datasets/petimages-8k"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[288, 256, 224, 192, 160])
    parser.add_argument("--train-photos", type=int, default=2000, help="for the linear probe")
    parser.add_argument("--fits", nargs="+", choices=["crop", "squash"], default=["crop", "squash"])
    parser.add_argument("--out", type=Path, default=RESULTS / "input_size.json")
    args = parser.parse_args(argv)
    loaded = load_checkpoint(args.checkpoint)
    imagenet = load_checkpoint(args.checkpoint).model
    state = {k: v for k, v in imagenet_state().items() if not k.startswith("imagenet_")}
    imagenet.load_state_dict(state, strict=False)  # ImageNet's backbone, for the probe
    train = find_photos(args.data / "train", args.raw).subset(args.train_photos)
    test = find_photos(args.data / "test", args.raw)
    rows: list[dict[str, Any]] = []
    speed: dict[int, tuple[float, float]] = {}  # the graph's speed does not depend on the fit
    with tempfile.TemporaryDirectory() as tmp:
        for size, fit in ((size, fit) for size in args.sizes for fit in args.fits):
            crop = (loaded.preprocessing.center_crop or 0.875) if fit == "crop" else None
            preprocessing = replace(loaded.preprocessing, size=size, center_crop=crop)
            card = {"preprocessing": preprocessing.to_dict()}
            tuned_path = Path(tmp) / f"tuned-{size}.onnx"
            probe_path = Path(tmp) / f"probe-{size}.onnx"
            if not tuned_path.exists():
                export_onnx(loaded.model, size, tuned_path)
                export_features(imagenet, size, probe_path)
                speed[size] = (bare_speed(tuned_path, size, 8), bare_speed(tuned_path, size, 1))
            tuned = OnnxClassifier(tuned_path, card=card, threads=2)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            probe = ort.InferenceSession(
                str(probe_path), options, providers=["CPUExecutionProvider"]
            )
            x_train, _, y_train = features_and_scores(probe, tuned, train)
            x_test, p_tuned, y_test = features_and_scores(probe, tuned, test)
            regression = LogisticRegression(C=0.5, max_iter=3000).fit(x_train, y_train)
            p_probe = regression.predict_proba(x_test)[:, 1]
            probe_m = classification_metrics(y_test, p_probe)
            tuned_m = classification_metrics(y_test, p_tuned)
            row = {
                "size": size,
                "center_crop": crop,
                "ort_images_per_s_batch8": round(speed[size][0], 1),
                "ort_images_per_s_batch1": round(speed[size][1], 1),
                "probe_test_accuracy": round(float(probe_m["accuracy"]), 5),
                "probe_test_log_loss": round(float(probe_m["log_loss"]), 5),
                "fine_tuned_test_accuracy": round(float(tuned_m["accuracy"]), 5),
                "fine_tuned_test_log_loss": round(float(tuned_m["log_loss"]), 5),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    report = {
        "benchmark": "input size: test accuracy vs bare ONNX Runtime images/s",
        "command": "python -m benchmarks.input_size",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "train_photos_for_probe": len(train.photos),
        "test_photos": len(test.photos),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


def export_features(model: Any, size: int, path: Path) -> None:
    """A graph that outputs the pooled ImageNet features (`features`), for the linear probe."""
    import torch  # noqa: PLC0415

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.model.pooled(image)  # type: ignore[no-any-return]

    torch.onnx.export(
        Features().eval(),
        (torch.zeros(2, 3, size, size),),
        str(path),
        input_names=["image"],
        output_names=["features"],
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        external_data=False,
        verbose=False,
    )


if __name__ == "__main__":
    raise SystemExit(main())
