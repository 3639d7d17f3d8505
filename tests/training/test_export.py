"""ONNX export: parity with PyTorch on real photos, a dynamic batch, the card, the int8 rule."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from catdog.cli import app
from catdog.errors import ExportError
from catdog.model_store import card_path
from catdog.monitoring.stats import STATISTICS
from catdog.predictor import INPUT_NAME, OUTPUT_NAME, OnnxClassifier
from catdog.preprocess import Preprocessing
from catdog.training.card import sha256_of
from catdog.training.checkpoint import load_checkpoint
from catdog.training.evaluate import evaluate, find_photos
from catdog.training.export import (
    INT8_FILE,
    parity_max_abs_diff,
    quantize_int8,
)

if TYPE_CHECKING:
    from conftest import TinyModels

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "petimages"
# Raw photos of every size, none of them in the tiny models' data set (which uses the first 22).
RAW_PHOTOS = (
    sorted((SAMPLES / "Cat").glob("*.jpg"))[40:44] + sorted((SAMPLES / "Dog").glob("*.jpg"))[40:44]
)


def test_onnx_matches_pytorch_on_raw_photos_at_any_batch_size(tiny_models: TinyModels) -> None:
    loaded = load_checkpoint(tiny_models.good_checkpoint)
    classifier = OnnxClassifier(tiny_models.good.onnx_path)
    batch = np.stack([classifier.prepare(path) for path in RAW_PHOTOS])
    with torch.inference_mode():
        reference = torch.softmax(loaded.model(torch.from_numpy(batch)), dim=1).numpy()
    for size in (1, 3, len(batch)):
        got = np.concatenate(
            [classifier.predict_batch(batch[i : i + size]) for i in range(0, len(batch), size)]
        )
        assert got.shape == (len(batch), 2)
        assert np.abs(got - reference).max() <= 1e-4
    np.testing.assert_allclose(reference.sum(axis=1), 1.0, rtol=1e-6)


def test_graph_has_named_input_output_and_a_symbolic_batch_axis(tiny_models: TinyModels) -> None:
    graph = onnx.load(str(tiny_models.good.onnx_path)).graph
    (image,) = graph.input
    (probabilities,) = graph.output
    assert (image.name, probabilities.name) == (INPUT_NAME, OUTPUT_NAME)
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].HasField("dim_value")
    side = tiny_models.image_size
    assert [d.dim_value for d in dims[1:]] == [3, side, side]


def test_card_describes_the_model_beside_it(tiny_models: TinyModels) -> None:
    onnx_path = tiny_models.good.onnx_path
    card = json.loads(card_path(onnx_path).read_text())
    assert card["architecture"] == "simple_cnn"
    assert card["input_size"] == tiny_models.image_size
    assert card["class_order"] == ["cat", "dog"]
    assert card["normalisation"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    expected = Preprocessing(size=tiny_models.image_size)
    assert Preprocessing.from_dict(card["preprocessing"]) == expected
    assert card["params"] == {"steps": 12, "lr": 0.01}
    assert (card["data_hash"], card["git_commit"]) == ("md5:good", "0" * 40)
    assert (card["training_time_s"], card["hardware"]) == (1.5, {"device": "cpu"})
    assert card["onnx_sha256"] == sha256_of(onnx_path)
    assert card["version"] == f"sha-{card['onnx_sha256'][:12]}"  # not registered
    assert card["mlflow_run_id"] is None
    assert card["quantized"] is False
    assert 0 <= card["parity_max_abs_diff"] <= 1e-4
    assert card["parity_photos"] == 16
    # Multiply-accumulates of simple_cnn(width=8): four 3x3 conv stages, each halving the side.
    macs, side, c_in = 0, tiny_models.image_size, 3
    for c_out in (8, 16, 32, 64):
        macs += side * side * c_out * c_in * 9
        side, c_in = side // 2, c_out
    macs += 64 * 2
    assert card["gmacs"] == pytest.approx(macs / 1e9, abs=1e-6)
    assert card["gflops"] == pytest.approx(2 * card["gmacs"], abs=1e-6)


def test_card_test_metrics_are_what_evaluate_measures(tiny_models: TinyModels) -> None:
    card = json.loads(card_path(tiny_models.good.onnx_path).read_text())
    classifier = OnnxClassifier(tiny_models.good.onnx_path)
    measured = evaluate(classifier, find_photos(tiny_models.data / "test")).scores()
    assert card["metrics"]["test"] == measured
    assert measured["count"] == 20


def test_parity_check_refuses_an_onnx_file_that_disagrees(tiny_models: TinyModels) -> None:
    worse = load_checkpoint(tiny_models.worse_checkpoint).model
    classifier = OnnxClassifier(tiny_models.good.onnx_path)
    batch = np.stack([classifier.prepare(path) for path in RAW_PHOTOS])
    with pytest.raises(ExportError) as caught:
        parity_max_abs_diff(worse, classifier, batch, tolerance=1e-4)
    assert caught.value.reason == "parity_failed"


def test_export_command_judges_int8_on_the_selection_split_and_leaves_no_stale_file(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    out = tmp_path / "models"
    out.mkdir()
    (out / INT8_FILE).write_bytes(b"an int8 model from an older export")
    card_path(out / INT8_FILE).write_text("{}")
    params = tmp_path / "params.yaml"
    params.write_text("export:\n  parity_photos: 8\n  calibration_photos: 16\n  min_photos: 1\n")
    args = ["export", "--checkpoint", str(tiny_models.good_checkpoint), "--out", str(out)]
    args += ["--data", str(tiny_models.data), "--quantize", "--no-register"]
    result = CliRunner().invoke(app, [*args, "--params", str(params)])
    assert result.exit_code == 0, result.output

    card = json.loads((out / "model.card.json").read_text())
    # The drift baseline `catdog monitor` compares live traffic with, beside the model it is of
    baseline = json.loads((out / "model.baseline.json").read_text())
    assert baseline["model_version"] == card["version"] and baseline["photos"] > 0
    assert set(baseline["statistics"]) == set(STATISTICS)
    decision = card["quantization"]
    # No val/ split here: the gate falls back to the whole data set, never to test/ alone.
    selection = find_photos(tiny_models.data)
    assert decision["attempted"] and decision["evaluation_photos"] == len(selection.photos)
    assert (decision["calibration_photos"], card["parity_photos"]) == (16, 8)
    fp32 = evaluate(OnnxClassifier(out / "model.onnx"), selection).scores()
    assert decision["fp32_accuracy"] == pytest.approx(fp32["accuracy"])
    # The stale files never survive: replaced by the new int8 model in int8/, or removed.
    assert not (out / INT8_FILE).exists() and not card_path(out / INT8_FILE).exists()
    int8_path = out / "int8" / INT8_FILE
    assert int8_path.is_file() == card_path(int8_path).is_file() == decision["kept"]
    if decision["kept"]:
        int8 = OnnxClassifier(int8_path)
        assert int8.card["quantized"] and int8.card["onnx_sha256"] == sha256_of(int8_path)
        measured = evaluate(int8, selection).scores()
        assert measured["accuracy"] == pytest.approx(decision["int8_accuracy"])


def test_int8_keeps_the_probabilities_float(tiny_models: TinyModels, tmp_path: Path) -> None:
    """Only the convolutions are quantised: quantised probabilities come in steps of 1/255 and
    rows that do not sum to 1, which the service's runners refuse to load."""
    fp32 = OnnxClassifier(tiny_models.good.onnx_path)
    batch = np.stack([fp32.prepare(path) for path in RAW_PHOTOS])
    int8_path = tmp_path / INT8_FILE
    quantize_int8(tiny_models.good.onnx_path, int8_path, batch)
    graph = onnx.load(str(int8_path)).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    (softmax,) = [node for node in graph.node if node.op_type == "Softmax"]
    assert not [n for n in graph.node if softmax.output[0] in n.input and n.op_type != "Identity"]
    card = {"preprocessing": fp32.preprocessing.to_dict()}
    got = OnnxClassifier(int8_path, card=card).predict_batch(batch)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-6)
