"""Small real models for the export, evaluation and promotion tests.

A tiny `simple_cnn` is fitted for a few steps on real sample photos, once per session, and
exported once. Its mirror image (output columns swapped) calls every cat a dog: a deliberately
worse model that stays deterministic whatever the fitted one scores, as long as that beats 50%.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from catdog.preprocess import Preprocessing
from catdog.training.checkpoint import save_checkpoint
from catdog.training.export import ExportParams, ExportResult, export_checkpoint
from catdog.training.models import build_model

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "petimages"
IMAGE_SIZE = 32
FIT_STEPS = 12


@dataclass(frozen=True)
class TinyModels:
    """A fitted checkpoint and its mirror image, the split data set, and their exports."""

    data: Path
    image_size: int
    good_checkpoint: Path
    worse_checkpoint: Path
    good: ExportResult
    worse: ExportResult


def _copy_split(root: Path, split: str, per_class: slice) -> None:
    for source, name in (("Cat", "cat"), ("Dog", "dog")):
        folder = root / split / name
        folder.mkdir(parents=True)
        for photo in sorted((SAMPLES / source).glob("*.jpg"))[per_class]:
            shutil.copy(photo, folder / photo.name)


def _fit(data: Path, preprocessing: Preprocessing) -> torch.nn.Module:
    """A few full-batch Adam steps on train/ and test/ together: the point of these models is
    to be better and worse than each other on test/, not to generalise."""
    photos = sorted(data.glob("*/*/*.jpg"))
    x = torch.from_numpy(np.stack([preprocessing(p) for p in photos]))
    y = torch.tensor([int(p.parent.name == "dog") for p in photos])
    torch.manual_seed(0)
    model = build_model("simple_cnn", width=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(FIT_STEPS):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    # After so few steps BatchNorm's running averages still lag the weights: set them to the
    # exact statistics of the data (momentum None = cumulative average over one pass).
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    with torch.no_grad():
        model(x)
    return model.eval()


def _mirror(model: torch.nn.Module) -> torch.nn.Module:
    """The same network with its two output columns swapped: p_dog becomes p_cat."""
    linear = model.classifier[-1]
    with torch.no_grad():
        linear.weight.copy_(linear.weight.flip(0))
        linear.bias.copy_(linear.bias.flip(0))
    return model


def _save(path: Path, model: torch.nn.Module, preprocessing: Preprocessing, tag: str) -> Path:
    return save_checkpoint(
        path,
        model=model,
        arch="simple_cnn",
        arch_kwargs={"width": 8},
        preprocessing=preprocessing,
        params={"steps": FIT_STEPS, "lr": 1e-2},
        epoch=1,
        metrics={"val_accuracy": None},
        extra={
            "data_hash": f"md5:{tag}",
            "git_commit": "0" * 40,
            "training_time_s": 1.5,
            "hardware": {"device": "cpu"},
        },
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyModels]:
    root = tmp_path_factory.mktemp("tiny-models")
    data = root / "data"
    _copy_split(data, "train", slice(0, 12))
    _copy_split(data, "test", slice(12, 22))
    preprocessing = Preprocessing(size=IMAGE_SIZE)
    model = _fit(data, preprocessing)
    good_checkpoint = _save(root / "good.pt", model, preprocessing, "good")
    worse_checkpoint = _save(root / "worse.pt", _mirror(model), preprocessing, "worse")
    params = ExportParams(quantize=False, parity_photos=16)
    good = export_checkpoint(good_checkpoint, root / "good", data, params, register=False)
    worse = export_checkpoint(worse_checkpoint, root / "worse", data, params, register=False)
    yield TinyModels(data, IMAGE_SIZE, good_checkpoint, worse_checkpoint, good, worse)
