"""The not-a-pet answer: pet_score and is_pet from the model, the card's threshold, the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from serving_support import RED, serving, solid, write_tiny_model

from catdog.predictor import OnnxClassifier
from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio
GREEN = (40, 220, 40)


@pytest.fixture
def pet_model(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "pet", pet_threshold=0.5)


def test_the_classifier_reads_the_pet_score_beside_the_probabilities(pet_model: Path) -> None:
    classifier = OnnxClassifier(pet_model)
    assert classifier.has_pet_score
    red, green = classifier.classify([solid(RED), solid(GREEN)])
    assert red.label == "cat"
    assert red.is_pet is True
    assert red.pet_score is not None and red.pet_score > 0.99
    assert green.is_pet is False
    assert green.pet_score is not None and green.pet_score < 0.01
    assert sum(red.probabilities.values()) == pytest.approx(1, abs=1e-5)


def test_a_model_without_the_head_gives_no_pet_answer(tiny_model: Path) -> None:
    (answer,) = OnnxClassifier(tiny_model).classify([solid(RED)])
    assert answer.is_pet is None
    assert answer.pet_score is None


async def test_predict_and_batch_say_when_a_photo_is_not_a_pet(pet_model: Path) -> None:
    async with serving(Settings(model=str(pet_model))) as client:
        red = (await client.post("/predict", files={"file": ("r.jpg", solid(RED))})).json()
        batch = await client.post(
            "/predict/batch",
            files=[("files", ("r.jpg", solid(RED))), ("files", ("g.jpg", solid(GREEN)))],
        )
    assert red["is_pet"] is True
    assert red["pet_score"] > 0.99
    assert [r["is_pet"] for r in batch.json()["results"]] == [True, False]


async def test_the_threshold_setting_overrides_the_card(pet_model: Path) -> None:
    settings = Settings(model=str(pet_model), pet_threshold=1.0)
    async with serving(settings) as client:
        red = (await client.post("/predict", files={"file": ("r.jpg", solid(RED))})).json()
    assert red["pet_score"] < 1.0
    assert red["is_pet"] is False
