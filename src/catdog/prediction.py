"""One photo's answer, and what the service's event loop knows of a model: its card.

Free of NumPy, Pillow and ONNX Runtime on purpose. The service's event-loop process imports this
module, and those libraries would cost it 22 MiB of resident memory that only the runner
processes (`catdog.serving.child`, `catdog.predictor`) need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catdog.errors import ModelError
from catdog.model_store import read_card

# Below this pet score a photo is "not a pet" unless the card (or CATDOG_PET_THRESHOLD) says
# otherwise: measured on non-pet images against cat/dog test photos (README, "Not a pet").
DEFAULT_PET_THRESHOLD = 0.1


@dataclass(frozen=True)
class Prediction:
    """One photo's answer."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    # Models with an ImageNet head beside the cat/dog head also say whether the photo shows a pet:
    # pet_score is the probability mass on ImageNet's cat and dog classes; None for older models.
    pet_score: float | None = None
    is_pet: bool | None = None


def to_prediction(
    classes: Sequence[str], scores: Sequence[float], pet_threshold: float = DEFAULT_PET_THRESHOLD
) -> Prediction:
    """One row of scores to a labelled answer: the class probabilities, then the pet score when
    the model has one (a photo under `pet_threshold` is not a pet). Ties go to the first class."""
    probabilities = [float(p) for p in scores[: len(classes)]]
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    pet = float(scores[len(classes)]) if len(scores) > len(classes) else None
    return Prediction(
        label=classes[best],
        confidence=probabilities[best],
        probabilities=dict(zip(classes, probabilities, strict=True)),
        pet_score=pet,
        is_pet=None if pet is None else pet >= pet_threshold,
    )


def card_pet_threshold(card: dict[str, Any]) -> float:
    """The pet-score threshold the model card recommends (measured at export), else the default."""
    not_a_pet = card.get("not_a_pet") or {}
    return float(not_a_pet.get("threshold", DEFAULT_PET_THRESHOLD))


def card_classes(onnx_path: Path, card: dict[str, Any]) -> tuple[str, ...]:
    """The class names a model card gives, in the order of the model's output columns."""
    try:
        classes = tuple(card["preprocessing"]["classes"])
    except (KeyError, TypeError) as exc:
        raise ModelError(f"model card of {onnx_path} names no classes: {exc}") from exc
    if len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise ModelError(f"model card of {onnx_path} names no usable classes: {classes!r}")
    return classes


@dataclass(frozen=True, eq=False)
class ServedModel:
    """What the service's event loop knows of a model: its card. The sessions live in the runner
    processes, which know it by `key` (one per load, so reloading a file is a new model) and
    check the rest of the card when they load it."""

    key: str
    path: Path
    card: dict[str, Any]
    classes: tuple[str, ...]

    @classmethod
    def read(cls, onnx_path: Path, key: str) -> ServedModel:
        """The model at `onnx_path`, described by the card beside it."""
        card = read_card(onnx_path)
        return cls(key, onnx_path, card, card_classes(onnx_path, card))

    @property
    def version(self) -> str:
        """The card's version: every answer names it."""
        return str(self.card.get("version", "unknown"))

    def to_prediction(self, scores: Sequence[float]) -> Prediction:
        """One row of a runner's scores to a labelled answer."""
        return to_prediction(self.classes, scores, card_pet_threshold(self.card))
