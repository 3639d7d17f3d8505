"""Not a pet: how often the shipped model's pet score flags non-pet images, and real cats and dogs.

    .venv/bin/python -m benchmarks.not_a_pet [--model PATH]   # default: what `catdog serve` runs

The threshold is the one the model card recommends: `catdog export` chose it on the val photos
alone (the score under which 0.5% of the val split's cats and dogs fall) and measured what it
flags among the test split's cat and dog photos. This benchmark measures it on:
- non-pet images: the sample images that the scikit-image and matplotlib wheels ship (none
  fetched; the cat `chelsea` and the `horse` silhouette left out), and generated ones: solid
  colours, a single pixel, noise, gradients, rendered text "screenshots", drawn cage bars.

Writes benchmarks/results/not_a_pet.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import skimage
from PIL import Image, ImageDraw, ImageFont

from catdog.model_store import default_model
from catdog.predictor import OnnxClassifier

RESULTS = Path("benchmarks/results")
# Bundled with the wheels; animals left out (chelsea is a cat, horse a horse's silhouette, the
# GIF an animated film clip).
SKIMAGE_IMAGES = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chessboard_GRAY.png",
    "chessboard_RGB.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "logo.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "phantom.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)
MATPLOTLIB_IMAGES = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def generated_images(seed: int = 0) -> dict[str, bytes]:
    """Images nobody would call a cat or a dog, drawn here so that the set needs no download."""
    rng = np.random.default_rng(seed)
    images: dict[str, Image.Image] = {}
    colours = {
        "black": (0, 0, 0),
        "white": (255, 255, 255),
        "grey": (128, 128, 128),
        "red": (200, 30, 30),
        "green": (40, 160, 60),
        "blue": (30, 60, 200),
        "brown": (120, 80, 40),
        "beige": (225, 205, 170),
    }
    for name, rgb in colours.items():
        images[f"solid_{name}"] = Image.new("RGB", (400, 300), rgb)
    images["single_white_pixel"] = Image.new("RGB", (1, 1), (255, 255, 255))
    images["single_black_pixel"] = Image.new("RGB", (1, 1), (0, 0, 0))
    for i in range(3):
        images[f"uniform_noise_{i}"] = Image.fromarray(
            rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
        )
        gaussian = np.clip(rng.normal(128, 40, (300, 400, 3)), 0, 255).astype(np.uint8)
        images[f"gaussian_noise_{i}"] = Image.fromarray(gaussian)
    ramp = np.linspace(0, 255, 400, dtype=np.float32)
    horizontal = np.broadcast_to(ramp[None, :, None], (300, 400, 3)).astype(np.uint8)
    images["gradient_horizontal"] = Image.fromarray(horizontal)
    images["gradient_vertical"] = Image.fromarray(horizontal.transpose(1, 0, 2).copy())
    yy, xx = np.mgrid[:300, :400]
    radial = np.hypot(yy - 150, xx - 200) / 250 * 255
    images["gradient_radial"] = Image.fromarray(
        np.stack([radial, 255 - radial, np.full_like(radial, 128)], -1)
        .clip(0, 255)
        .astype(np.uint8)
    )
    font = ImageFont.load_default(size=18)
    texts = [
        "Shelter intake form\nName: ______\nSpecies: ______\nDate: 2026-12-07",
        "ERROR 500\nInternal Server Error\nTraceback (most recent call last):",
        "Adopt, don't shop!\nOpen Saturday 10:00 - 16:00\nCall 555-0100",
        "def predict(photo):\n    return model(photo)\n\n# TODO: tests",
    ]
    for i, text in enumerate(texts):
        page = Image.new("RGB", (640, 400), (250, 250, 250) if i % 2 == 0 else (30, 30, 40))
        draw = ImageDraw.Draw(page)
        draw.rectangle((0, 0, 640, 36), fill=(60, 90, 160))
        draw.multiline_text(
            (20, 60),
            text,
            fill=(20, 20, 20) if i % 2 == 0 else (220, 220, 220),
            font=font,
            spacing=12,
        )
        images[f"text_screenshot_{i}"] = page
    for i, (bars, wall, floor) in enumerate(
        [
            (12, (150, 150, 150), (90, 90, 90)),
            (8, (200, 190, 170), (120, 100, 80)),
            (16, (60, 60, 70), (40, 40, 40)),
            (10, (230, 230, 230), (170, 170, 160)),
        ]
    ):
        cage = Image.new("RGB", (500, 375), wall)
        draw = ImageDraw.Draw(cage)
        draw.rectangle((0, 260, 500, 375), fill=floor)
        for x in np.linspace(10, 490, bars):
            draw.rectangle((x - 3, 0, x + 3, 375), fill=(50, 50, 55))
        draw.rectangle((0, 20, 500, 28), fill=(50, 50, 55))
        draw.rectangle((0, 340, 500, 348), fill=(50, 50, 55))
        images[f"empty_cage_{i}"] = cage
    return {name: _png(image) for name, image in images.items()}


def packaged_images() -> dict[str, bytes]:
    """The sample images inside the installed scikit-image and matplotlib wheels."""
    found: dict[str, bytes] = {}
    skimage_data = Path(skimage.__file__).parent / "data"
    for name in SKIMAGE_IMAGES:
        found[f"skimage/{name}"] = (skimage_data / name).read_bytes()
    matplotlib_data = Path(matplotlib.get_data_path()) / "sample_data"
    for name in MATPLOTLIB_IMAGES:
        found[f"matplotlib/{name}"] = (matplotlib_data / name).read_bytes()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "not_a_pet.json")
    args = parser.parse_args(argv)
    args.model = args.model or Path(os.path.relpath(default_model()))
    model = OnnxClassifier(args.model)
    if not model.has_pet_score:
        raise SystemExit(f"{args.model} has no pet_score output")
    card_says = model.card["not_a_pet"]
    threshold = float(card_says["threshold"])
    non_pets = {**packaged_images(), **generated_images()}
    answers: dict[str, dict[str, Any]] = {}
    for name, data in non_pets.items():
        prediction = model.classify([data])[0]
        assert prediction.pet_score is not None
        answers[name] = {
            "pet_score": round(prediction.pet_score, 5),
            "flagged": prediction.pet_score < threshold,
            "label": prediction.label,
            "confidence": round(prediction.confidence, 4),
        }
    flagged = [a["flagged"] for a in answers.values()]
    report = {
        "benchmark": "not-a-pet: pet score (ImageNet cat+dog softmax mass) against a threshold",
        "command": "python -m benchmarks.not_a_pet",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": {"file": args.model.as_posix(), "version": model.version},
        "threshold": threshold,
        "threshold_rule": card_says["rule"],
        "test_photos": card_says["test_photos"],
        "test_flagged_fraction": card_says["test_flagged_fraction"],
        "non_pet_images": len(answers),
        "non_pet_flagged_fraction": round(float(np.mean(flagged)), 5),
        "non_pet_missed": sorted(name for name, a in answers.items() if not a["flagged"]),
        "non_pets": answers,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in report.items() if k != "non_pets"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
