"""The stand-ins of the ceiling benchmark really sit at the reference model's limits."""

from __future__ import annotations

import pytest

from benchmarks.serving.ceiling import MAX_GFLOPS, MAX_MODEL_MB, STAND_INS
from catdog.training.models import build_model, count_gflops, count_parameters


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_each_stand_in_costs_just_under_the_ceiling(name: str) -> None:
    arch, options, size = STAND_INS[name]
    model = build_model(arch, **options)
    gflops = count_gflops(model, size)
    assert 0.9 * MAX_GFLOPS <= gflops <= MAX_GFLOPS, gflops
    # float32 weights: 4 bytes a parameter, the card adds a few kB.
    assert count_parameters(model) * 4 / 1e6 <= 0.9 * MAX_MODEL_MB
