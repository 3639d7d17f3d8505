"""Checkpoints round-trip weights and metadata, and refuse what they cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from catdog.errors import ModelError
from catdog.preprocess import Preprocessing
from catdog.training.checkpoint import load_checkpoint, save_checkpoint
from catdog.training.models import build_model


def test_round_trip_keeps_weights_metadata_and_optimizer_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("mobilenet_se", width=0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3, 64, 64)).sum().backward()
    optimizer.step()
    preprocessing = Preprocessing(size=64)
    path = save_checkpoint(
        tmp_path / "nested" / "checkpoint.pt",
        model=model,
        arch="mobilenet_se",
        arch_kwargs={"width": 0.5},
        preprocessing=preprocessing,
        params={"epochs": 3},
        epoch=2,
        metrics={"val_accuracy": 0.75},
        optimizer=optimizer,
        extra={"mlflow_run_id": "abc", "git_commit": None},
    )
    loaded = load_checkpoint(path)
    assert not loaded.model.training
    assert loaded.arch == "mobilenet_se"
    assert loaded.arch_kwargs == {"width": 0.5}
    assert loaded.preprocessing == preprocessing
    assert (loaded.epoch, loaded.params, loaded.metrics) == (
        2,
        {"epochs": 3},
        {"val_accuracy": 0.75},
    )
    assert loaded.extra == {"mlflow_run_id": "abc", "git_commit": None}
    assert loaded.optimizer_state is not None
    assert loaded.optimizer_state["state"]
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert not list(tmp_path.glob("nested/*.tmp"))


def test_missing_foreign_and_corrupt_files_are_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="run `catdog train` first"):
        load_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save(build_model("simple_cnn").state_dict(), foreign)
    with pytest.raises(ModelError, match="not a catdog checkpoint"):
        load_checkpoint(foreign)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_checkpoint(corrupt)
