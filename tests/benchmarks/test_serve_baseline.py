"""The seed-style baseline answers a real photo; its export wrapper keeps the contract."""

from __future__ import annotations

import pytest
import torch
from fastapi.testclient import TestClient

from benchmarks.serving.baseline_service import app, build_model
from benchmarks.serving.export_baseline import TwoClassProbabilities
from benchmarks.serving.photos import BUNDLED_SAMPLE


def test_baseline_answers_a_real_photo() -> None:
    photo = sorted((BUNDLED_SAMPLE / "Dog").glob("*.jpg"))[0]
    with TestClient(app) as client:
        response = client.post(
            "/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}
        )
    assert response.status_code == 200
    body = response.json()
    assert body["label"] in {"cat", "dog"}
    assert sum(body["probabilities"].values()) == pytest.approx(1.0)


def test_same_seed_gives_the_same_network() -> None:
    first, second = build_model(0).state_dict(), build_model(0).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(build_model(1).state_dict()["fc.weight"], first["fc.weight"])


def test_two_class_wrapper_is_cat_then_dog() -> None:
    model = build_model(0)
    x = torch.randn(3, 3, 64, 64)  # any size works; small keeps the test fast
    with torch.no_grad():
        dog = torch.sigmoid(model(x))[:, 0]
        probabilities = TwoClassProbabilities(model)(x)
    assert probabilities.shape == (3, 2)
    assert torch.allclose(probabilities[:, 1], dog)
    assert torch.allclose(probabilities.sum(dim=1), torch.ones(3))
