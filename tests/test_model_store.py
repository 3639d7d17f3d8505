"""Which model runs: the bundled reference model when none is named, and every command says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from catdog.cli import app
from catdog.model_store import REFERENCE_DIR, REFERENCE_FILE, read_card, resolve, sha256_of

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "petimages"
REFERENCE = REFERENCE_DIR / REFERENCE_FILE


def test_no_model_named_is_always_the_reference_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A local export in ./models is never picked up by guessing.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.onnx").write_bytes(b"a user's own export")
    monkeypatch.chdir(tmp_path)
    resolved = resolve(None)
    assert resolved.path == REFERENCE
    assert resolved.sha256 == sha256_of(REFERENCE)
    assert resolved.version == read_card(REFERENCE)["version"]
    assert resolved.spec.startswith("reference model")


def test_a_named_file_is_that_file_with_its_card_version(tmp_path: Path) -> None:
    for name in ("model.onnx", "model.card.json"):
        shutil.copy(REFERENCE_DIR / name, tmp_path / name)
    resolved = resolve(tmp_path)  # a folder means its model.onnx
    assert (resolved.path, resolved.spec) == (tmp_path / "model.onnx", str(tmp_path / "model.onnx"))
    assert resolved.sha256 == sha256_of(REFERENCE_DIR / "model.onnx")


def test_evaluate_prints_the_model_it_scored_on_stderr_and_in_its_json(tmp_path: Path) -> None:
    for label in ("Cat", "Dog"):
        (tmp_path / label).mkdir()
        for photo in sorted((SAMPLES / label).glob("*.jpg"))[:2]:
            shutil.copy(photo, tmp_path / label / photo.name)
    result = CliRunner().invoke(app, ["evaluate", "--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    assert model["sha256"] == sha256_of(REFERENCE)
    line = f"model: {model['spec']} (version {model['version']}, sha256 {model['sha256']})"
    assert line in result.stderr.splitlines()
