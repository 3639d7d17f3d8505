"""The baseline's ResNet-18, same seed and so same weights, exported in catdog's model format.

This is the "same model" comparison: one network, served the seed projects' way and by catdog, so
that the difference in images/s is the serving alone. The torch wrapper turns the single logit
into catdog's output contract, probabilities [N, 2] = [1 - sigmoid, sigmoid] in (cat, dog) order.

Run: `python -m benchmarks.serving.export_baseline --out /tmp/resnet18-baseline`
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from benchmarks.serving.baseline_service import IMAGE_SIZE, SEED, build_model, transform
from benchmarks.serving.photos import Photo
from catdog.model_store import CARD_FILE, MODEL_FILE
from catdog.predictor import INPUT_NAME, OUTPUT_NAME, OnnxClassifier
from catdog.preprocess import Preprocessing

# ResNet-18 at 224 px: about 1.82 GFLOPs (multiply-adds) per image.
RESNET18_GFLOPS = 1.82
PARITY_TOLERANCE = 1e-4


class TwoClassProbabilities(nn.Module):
    """One logit (P(dog) after sigmoid) to the two-column probabilities catdog serves."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        dog = torch.sigmoid(self.backbone(image))
        return torch.cat([1.0 - dog, dog], dim=1)


def export(out_dir: Path, seed: int = SEED) -> Path:
    """Write `model.onnx` (dynamic batch, one file) and its card; check ONNX against torch."""
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / MODEL_FILE
    wrapped = TwoClassProbabilities(build_model(seed)).eval()
    example = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    torch.onnx.export(
        wrapped,
        (example,),
        str(onnx_path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1, max=1024)}},
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    card = _card(onnx_path, seed)
    (out_dir / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    _check_parity(wrapped, onnx_path)
    return onnx_path


def _card(onnx_path: Path, seed: int) -> dict[str, Any]:
    return {
        "name": "resnet18-baseline",
        "version": f"baseline-seed{seed}",
        "architecture": "resnet18",
        "preprocessing": Preprocessing(size=IMAGE_SIZE, resample="bilinear").to_dict(),
        "params": {"seed": seed, "weights": "random (speed does not depend on them)"},
        "metrics": {},
        "data_hash": None,
        "git_commit": None,
        "gflops": RESNET18_GFLOPS,
        "training_time_s": 0.0,
        "hardware": platform.machine(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mlflow_run_id": None,
        "onnx_sha256": hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
        "quantized": False,
    }


def _check_parity(wrapped: nn.Module, onnx_path: Path) -> None:
    """The exported file must compute what the baseline computes, at batch 1 and batch 3."""
    classifier = OnnxClassifier(onnx_path)
    for batch in (1, 3):
        x = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE)
        with torch.no_grad():
            expected = wrapped(x).numpy()
        got = classifier.predict_batch(x.numpy())
        worst = float(np.abs(got - expected).max())
        if worst > PARITY_TOLERANCE:
            raise RuntimeError(f"ONNX export differs from torch by {worst} at batch {batch}")


def agreement(onnx_path: Path, photos: Sequence[Photo], seed: int = SEED) -> float:
    """Largest gap in P(dog) between the baseline (torch, its own preprocessing) and catdog's
    path (the export, catdog.preprocess) on real photos: near 0 shows they serve one model."""
    model = build_model(seed)
    classifier = OnnxClassifier(onnx_path)
    worst = 0.0
    for photo in photos:
        image = Image.open(io.BytesIO(photo.data)).convert("RGB")
        with torch.no_grad():
            expected = float(torch.sigmoid(model(transform(image).unsqueeze(0)))[0, 0])
        got = classifier.classify([photo.data])[0].probabilities["dog"]
        worst = max(worst, abs(got - expected))
    return worst


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: export to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="export directory")
    parser.add_argument("--seed", type=int, default=SEED, help="weights seed (as the baseline)")
    args = parser.parse_args(argv)
    print(export(args.out, args.seed))


if __name__ == "__main__":
    main()
