"""Fixtures for the service's tests (helpers live in serving_support.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from serving_support import SAMPLES, write_tiny_model

from catdog.model_store import resolve_model
from catdog.predictor import OnnxClassifier

# The model `catdog serve` serves when given none: the shipped reference model, unless a
# developer points CATDOG_MODEL elsewhere (read here, before each test clears CATDOG_*).
DEFAULT_MODEL_SPEC = os.environ.get("CATDOG_MODEL") or None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Settings come from the test, never from the developer's shell; the prediction log of
    each test's service goes to its own temporary folder."""
    for key in list(os.environ):
        if key.startswith("CATDOG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CATDOG_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return write_tiny_model(tmp_path / "tiny-1")


@pytest.fixture
def tiny_model_v2(tmp_path: Path) -> Path:
    """Another version, another input size: a reload must not mix the two in a batch."""
    return write_tiny_model(tmp_path / "tiny-2", version="tiny-2", size=48, swap=True)


@pytest.fixture(scope="session")
def reference_model() -> Path:
    """The model `catdog serve` serves when given none (fails clearly if none is shipped)."""
    return resolve_model(DEFAULT_MODEL_SPEC)


@pytest.fixture(scope="session")
def reference_classifier(reference_model: Path) -> OnnxClassifier:
    return OnnxClassifier(reference_model)


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str
    confidence: float


@pytest.fixture(scope="session")
def confident_photos(reference_classifier: OnnxClassifier) -> dict[str, Photo]:
    """The first sample photo of each class that the reference model gets right with >= 95%.

    The odd-format tests then check that re-encoding the same photo keeps the answer.
    """
    chosen: dict[str, Photo] = {}
    for folder, label in (("Cat", "cat"), ("Dog", "dog")):
        for path in sorted((SAMPLES / folder).glob("*.jpg")):
            prediction = reference_classifier.classify([path])[0]
            if prediction.label == label and prediction.confidence >= 0.95:
                chosen[label] = Photo(path, label, prediction.confidence)
                break
    assert set(chosen) == {"cat", "dog"}, f"the reference model is unsure of every sample: {chosen}"
    return chosen
