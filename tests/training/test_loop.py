"""The training loop on real photos: it learns, it repeats itself, it resumes, it stops early."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from photo_sets import NO_AUGMENT, write_prepared

from catdog.errors import ConfigError, TrainingError
from catdog.training import loop
from catdog.training.checkpoint import load_checkpoint
from catdog.training.loop import Trainer, lr_factor, train
from catdog.training.params import AugmentParams, TrainParams


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 train, 4 val, 4 test photos per class, 48 px."""
    return write_prepared(
        tmp_path_factory.mktemp("prepared"), {"train": 12, "val": 4, "test": 4}, size=48
    )


def params_in(folder: Path, data: Path, **changes: Any) -> TrainParams:
    """Small, quick, untracked training params writing under `folder`."""
    base: dict[str, Any] = {
        "data": data,
        "arch": "simple_cnn",
        "arch_options": {"width": 8},
        "epochs": 1,
        "batch_size": 8,
        "device": "cpu",
        "tracking": False,
        "checkpoint": folder / "checkpoint.pt",
        "last_checkpoint": folder / "last.pt",
        "metrics_file": folder / "train_metrics.json",
        "history_file": folder / "train_history.csv",
    }
    return TrainParams.model_validate(base | changes)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model_state


def assert_same_weights(first: Path, second: Path) -> None:
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.slow
def test_overfits_sixteen_real_photos(tmp_path: Path) -> None:
    """The whole path (decode, device normalise, step, evaluate) can fit 16 photos exactly."""
    data = write_prepared(tmp_path / "data", {"train": 8}, size=64)
    shutil.copytree(data / "train", data / "val")
    params = params_in(
        tmp_path,
        data,
        arch_options={"width": 16},
        epochs=40,
        batch_size=16,
        lr=0.005,
        weight_decay=0.0,
        warmup_epochs=0,
        label_smoothing=0.0,
        augment=NO_AUGMENT,
    )
    result = train(params)
    losses = [row["train_loss"] for row in result.history]
    assert losses[0] > 0.5
    assert losses[-1] < 0.05
    assert result.val["accuracy"] == 1.0
    assert result.val["loss"] < 0.1


@pytest.mark.slow
def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path, photos: Path) -> None:
    """Shuffle, crops, jitter, mixup, dropout and EMA all draw from the seed."""
    every_draw = {
        "augment": AugmentParams(mixup_alpha=0.2, cutmix_alpha=1.0, crop_size=40),
        "ema_decay": 0.9,
    }
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        train(params_in(tmp_path / name, photos, seed=seed, **every_draw))
    assert_same_weights(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")
    assert_same_weights(tmp_path / "a" / "checkpoint.pt", tmp_path / "b" / "checkpoint.pt")
    a, c = weights(tmp_path / "a" / "last.pt"), weights(tmp_path / "c" / "last.pt")
    assert any(not torch.equal(a[name], c[name]) for name in a)


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_to_the_same_weights(
    tmp_path: Path, photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"epochs": 3, "ema_decay": 0.9}
    straight = train(params_in(tmp_path / "straight", photos, **settings))

    real_epoch = Trainer.train_one_epoch

    def killed_in_epoch_three(self: Trainer, epoch: int, started: float) -> dict[str, float]:
        if epoch == 3:
            raise KeyboardInterrupt
        return real_epoch(self, epoch, started)

    interrupted = params_in(tmp_path / "resumed", photos, **settings)
    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_one_epoch", killed_in_epoch_three)
        with pytest.raises(KeyboardInterrupt):
            train(interrupted)
    assert load_checkpoint(interrupted.last_checkpoint).epoch == 2
    resumed = train(interrupted, resume=interrupted.last_checkpoint)

    assert_same_weights(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt")
    assert_same_weights(tmp_path / "straight" / "checkpoint.pt", interrupted.checkpoint)
    assert [r["val_loss"] for r in resumed.history] == [r["val_loss"] for r in straight.history]
    assert resumed.epochs_run == 3


def test_resume_refuses_a_checkpoint_of_another_architecture(tmp_path: Path, photos: Path) -> None:
    first = params_in(tmp_path, photos)
    train(first)
    other = first.model_copy(update={"arch": "mobilenet_se", "arch_options": {}})
    with pytest.raises(TrainingError, match="cannot resume") as info:
        train(other, resume=first.last_checkpoint)
    assert info.value.reason == "bad_resume"
    with pytest.raises(TrainingError, match="best-weights checkpoint"):
        train(first, resume=first.checkpoint)


@pytest.mark.slow
@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_early_stopping_stops_after_patience_epochs_without_progress(
    tmp_path: Path, photos: Path, monitor: str
) -> None:
    # A learning rate this small leaves the weights where they are: val stops improving.
    result = train(
        params_in(
            tmp_path, photos, epochs=12, patience=2, lr=1e-12, monitor=monitor, augment=NO_AUGMENT
        )
    )
    assert result.stop_reason == "early_stopping"

    def rank(row: dict[str, float]) -> tuple[float, float]:
        loss, accuracy = row["val_loss"], row["val_accuracy"]
        return (-loss, accuracy) if monitor == "val_loss" else (accuracy, -loss)

    best, bad, best_epoch = rank(result.history[0]), 0, 1
    for row in result.history[1:]:
        if rank(row) > best:
            best, bad, best_epoch = rank(row), 0, int(row["epoch"])
        else:
            bad += 1
    assert bad == 2
    assert result.best_epoch == best_epoch
    assert result.epochs_run == len(result.history) < 12


def test_a_time_budget_ends_training_at_an_epoch_boundary(tmp_path: Path, photos: Path) -> None:
    budget_s = 0.5
    result = train(params_in(tmp_path, photos, epochs=100_000, max_minutes=budget_s / 60))
    assert result.stop_reason == "time_budget"
    # Every recorded epoch trained on something, and each but the last began within budget.
    assert all(row["train_loss"] > 0 for row in result.history)
    assert all(row["elapsed_s"] < budget_s for row in result.history[:-1])
    assert result.epochs_run == len(result.history) < 100_000


def test_outputs_for_dvc_and_the_checkpoint_metadata(tmp_path: Path, photos: Path) -> None:
    params = params_in(tmp_path, photos, epochs=2)
    result = train(params)
    lines = params.history_file.read_text().splitlines()
    assert lines[0].startswith("epoch,train_loss,train_accuracy,val_loss,val_accuracy")
    assert len(lines) == 3
    assert '"stop_reason": "epochs"' in params.metrics_file.read_text()
    best = load_checkpoint(params.checkpoint)
    assert best.preprocessing.size == 48
    assert best.epoch == result.best_epoch
    assert {"data_hash", "git_commit", "hardware", "training_time_s", "mlflow_run_id"} <= set(
        best.extra
    )
    assert 0.0 <= best.metrics["test_accuracy"] <= 1.0
    assert result.test is not None
    assert result.test["n"] == 8


def test_learning_rate_warms_up_then_anneals_to_zero() -> None:
    assert lr_factor(0, 10, 0.0) == pytest.approx(0.1)
    assert lr_factor(9, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(10, 10, 0.0) == pytest.approx(1.0)
    assert lr_factor(50, 10, 0.5) == pytest.approx(0.5)
    assert lr_factor(99, 10, 1.0) == pytest.approx(0.0)


def test_an_explicit_device_that_is_missing_is_a_config_error() -> None:
    if torch.cuda.is_available():
        assert loop.resolve_device("cuda", 0) == torch.device("cuda", 0)
    else:
        with pytest.raises(ConfigError, match="not available"):
            loop.resolve_device("cuda")
    assert loop.resolve_device("cpu") == torch.device("cpu")
