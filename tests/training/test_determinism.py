"""`train.deterministic`: the switch that makes a GPU run repeatable, and what it sets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from catdog.training.loop import seed_everything
from catdog.training.params import TrainParams


@pytest.fixture(autouse=True)
def _restore_torch_flags() -> Iterator[None]:
    """These flags are process-wide: put them back for the tests that follow."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    yield
    torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2:]


def _flags() -> tuple[bool, bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )


def test_deterministic_turns_off_cudnn_benchmarking_on_cuda() -> None:
    # The flags are set whether or not this machine has a GPU: no kernel runs here.
    seed_everything(0, torch.device("cuda"), deterministic=True)
    assert _flags() == (True, False, True)


def test_without_it_cuda_benchmarks_and_cpu_stays_deterministic() -> None:
    seed_everything(0, torch.device("cuda"), deterministic=False)
    assert _flags() == (False, True, False)
    seed_everything(0, torch.device("cpu"), deterministic=False)
    assert _flags() == (True, False, True)


def test_the_switch_is_a_train_param_off_by_default() -> None:
    assert TrainParams().deterministic is False
    assert TrainParams(deterministic=True).deterministic is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_two_deterministic_gpu_runs_give_the_same_weights() -> None:
    def fit() -> torch.Tensor:
        seed_everything(0, torch.device("cuda"), deterministic=True)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3),
            torch.nn.BatchNorm2d(16),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.LazyLinear(2),
        ).cuda()
        x = torch.randn(64, 3, 32, 32, device="cuda")
        y = torch.randint(0, 2, (64,), device="cuda")
        model(x)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(20):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return torch.cat([p.detach().flatten() for p in model.parameters()]).cpu()

    assert torch.equal(fit(), fit())
