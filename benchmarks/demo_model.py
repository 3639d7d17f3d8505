"""The model `make demo` trains: accuracy on 200 photos it never saw, and the 4 demo photos.

    .venv/bin/python -m benchmarks.demo_model [--model models/model.onnx]

The 200 photos are petimages-8k photos that are not in the bundled sample (100 cats, 100 dogs,
evenly spread over the sorted file names), scored as originals through the model's own
preprocessing. Writes benchmarks/results/demo_model.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from catdog.predictor import OnnxClassifier
from catdog.training.evaluate import LabelledPhoto, PhotoSet, evaluate

RESULTS = Path("benchmarks/results")
SAMPLES = Path("samples/petimages")
DEMO_PHOTOS = ("Cat/cat.1136.jpg", "Cat/cat.3512.jpg", "Dog/dog.1081.jpg", "Dog/dog.1142.jpg")


def unseen_photos(raw: Path, per_class: int) -> PhotoSet:
    """`per_class` photos of each class of `raw` that the bundled sample does not hold."""
    photos: list[LabelledPhoto] = []
    for folder, label in (("Cat", "cat"), ("Dog", "dog")):
        bundled = {p.name for p in (SAMPLES / folder).iterdir()}
        candidates = sorted(p.name for p in (raw / folder).iterdir() if p.name not in bundled)
        step = len(candidates) // per_class
        photos += [LabelledPhoto(f"{folder}/{n}", label) for n in candidates[::step][:per_class]]
    return PhotoSet(raw, photos)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/model.onnx"))
    parser.add_argument("--raw", type=Path, default=Path("../shared/datasets/petimages-8k"))
    parser.add_argument("--out", type=Path, default=RESULTS / "demo_model.json")
    args = parser.parse_args(argv)
    model = OnnxClassifier(args.model)
    unseen = evaluate(model, unseen_photos(args.raw, 100), description="200 unseen photos")
    demo = {}
    for name in DEMO_PHOTOS:
        (answer,) = model.classify([SAMPLES / name])
        demo[name] = {
            "label": answer.label,
            "confidence": round(answer.confidence, 4),
            "right": answer.label == name.split("/")[0].lower(),
            "is_pet": answer.is_pet,
        }
    report = {
        "benchmark": "the demo's model on photos it never saw",
        "command": "python -m benchmarks.demo_model",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"file": args.model.as_posix(), "version": model.version},
        "unseen": unseen.scores(),
        "demo_photos": demo,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        json.dumps({"unseen_accuracy": unseen.metrics["accuracy"], "demo_photos": demo}, indent=1)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
