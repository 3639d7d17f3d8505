"""`catdog evaluate` on class-folder datasets of raw photos, through ONNX and through PyTorch."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from typer.testing import CliRunner

from catdog.cli import app
from catdog.errors import DataError
from catdog.predictor import OnnxClassifier
from catdog.training.evaluate import evaluate_model

if TYPE_CHECKING:
    from conftest import TinyModels

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "petimages"


@pytest.fixture
def shelter_upload(tmp_path: Path) -> tuple[Path, dict[Path, str]]:
    """Raw photos of many sizes in class folders named and nested as people name them, with a
    file that is not a photo and one outside any class folder."""
    root = tmp_path / "shelter"
    truth: dict[Path, str] = {}
    layout = {"PetImages/Cats": ("Cat", "cat"), "intake/2024/DOGS": ("Dog", "dog")}
    for folder, (source, label) in layout.items():
        (root / folder).mkdir(parents=True)
        for photo in sorted((SAMPLES / source).glob("*.jpg"))[60:67]:
            truth[root / folder / photo.name] = label
            shutil.copy(photo, root / folder / photo.name)
    (root / "intake/2024/DOGS/scan.jpg").write_text("not a photo at all")
    (root / "README.txt").write_text("photos from the spring intake")
    return root, truth


def _run_evaluate(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["evaluate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_evaluate_scores_raw_photos_and_lists_what_it_refused(
    tiny_models: TinyModels, shelter_upload: tuple[Path, dict[Path, str]], tmp_path: Path
) -> None:
    root, truth = shelter_upload
    out, plots = tmp_path / "reports" / "eval.json", tmp_path / "plots"
    model = str(tiny_models.good.onnx_path)
    code, stdout, stderr = _run_evaluate(
        "--model", model, "--data", str(root), "--out", str(out), "--plots", str(plots)
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report == json.loads(out.read_text())

    # The same photos classified one by one through the serving path give the same numbers.
    classifier = OnnxClassifier(tiny_models.good.onnx_path)
    photos = sorted(truth)
    p_dog = np.array([p.probabilities["dog"] for p in classifier.classify(photos)])
    y = np.array([truth[p] == "dog" for p in photos])
    assert report["count"] == len(photos) == 14
    assert report["accuracy"] == pytest.approx(np.mean((p_dog >= 0.5) == y))
    p_true = np.where(y, p_dog, 1 - p_dog)
    assert report["log_loss"] == pytest.approx(-np.mean(np.log(p_true)), rel=1e-5)
    matrix = report["confusion_matrix"]
    assert [sum(matrix[f"actual_{c}"].values()) for c in ("cat", "dog")] == [7, 7]
    assert matrix["actual_dog"]["predicted_dog"] == int(np.sum((p_dog >= 0.5) & y))
    assert matrix["actual_cat"]["predicted_dog"] == int(np.sum((p_dog >= 0.5) & ~y))
    for key in ("precision", "recall", "f1", "roc_auc"):
        assert 0.0 <= report[key] <= 1.0

    assert report["refused"] == [
        {
            "source": "intake/2024/DOGS/scan.jpg",
            "reason": "not_an_image",
            "detail": "not a recognised image format",
        }
    ]
    assert (report["refused_count"], report["unlabelled_count"]) == (1, 1)
    assert report["model"]["version"] == classifier.version

    with (plots / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 14 and {r["actual"] for r in rows} == {"cat", "dog"}
    with (plots / "roc.csv").open() as handle:
        roc = [(float(r["fpr"]), float(r["tpr"])) for r in csv.DictReader(handle)]
    assert roc[0] == (0.0, 0.0) and roc[-1] == (1.0, 1.0)


def test_a_zip_of_class_folders_scores_like_the_folder(
    tiny_models: TinyModels, shelter_upload: tuple[Path, dict[Path, str]], tmp_path: Path
) -> None:
    root, _ = shelter_upload
    archive = Path(shutil.make_archive(str(tmp_path / "upload"), "zip", root))
    model = str(tiny_models.good.onnx_path)
    from_folder, _ = evaluate_model(model, root, batch_size=4)
    from_zip, _ = evaluate_model(model, archive, batch_size=4)
    assert from_zip.metrics == from_folder.metrics
    assert [r.reason for r in from_zip.refused] == ["not_an_image"]
    assert from_zip.unlabelled == ["README.txt"]


def test_checkpoint_in_pytorch_and_its_onnx_export_score_alike(tiny_models: TinyModels) -> None:
    test_split = tiny_models.data / "test"
    onnx_eval, onnx_model = evaluate_model(
        str(tiny_models.good.onnx_path), test_split, batch_size=8
    )
    torch_eval, torch_model = evaluate_model(
        str(tiny_models.good_checkpoint), test_split, batch_size=8
    )
    assert (onnx_model["runtime"], torch_model["runtime"]) == ("onnxruntime", "pytorch")
    assert onnx_eval.sources == torch_eval.sources
    np.testing.assert_allclose(onnx_eval.p_dog, torch_eval.p_dog, atol=1e-4)
    assert onnx_eval.metrics["accuracy"] == torch_eval.metrics["accuracy"]


def test_the_mirrored_model_scores_the_complement(tiny_models: TinyModels) -> None:
    test_split = tiny_models.data / "test"
    good, _ = evaluate_model(str(tiny_models.good.onnx_path), test_split, batch_size=32)
    worse, _ = evaluate_model(str(tiny_models.worse.onnx_path), test_split, batch_size=32)
    np.testing.assert_allclose(good.p_dog, 1 - worse.p_dog, atol=1e-5)
    assert good.metrics["accuracy"] > 0.5 > worse.metrics["accuracy"]


def test_a_folder_without_class_folders_is_a_clear_error(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    (tmp_path / "holiday").mkdir()
    shutil.copy(next((SAMPLES / "Cat").glob("*.jpg")), tmp_path / "holiday" / "1.jpg")
    result = CliRunner().invoke(
        app, ["evaluate", "--model", str(tiny_models.good.onnx_path), "--data", str(tmp_path)]
    )
    assert isinstance(result.exception, DataError)
    assert "no photos in class folders" in result.exception.detail


def test_symlinked_class_folders_are_scored(tmp_path: Path) -> None:
    """`catdog evaluate --data DIR` where DIR/Cat and DIR/Dog are links to folders."""
    from catdog.training.evaluate import find_photos  # noqa: PLC0415

    store = tmp_path / "store"
    for folder in ("Cat", "Dog"):
        (store / folder).mkdir(parents=True)
        for photo in sorted((SAMPLES / folder).glob("*.jpg"))[:2]:
            shutil.copy(photo, store / folder / photo.name)
    data = tmp_path / "data"
    data.mkdir()
    for folder in ("Cat", "Dog"):
        (data / folder).symlink_to(store / folder, target_is_directory=True)
    photos = find_photos(data)
    assert sorted(p.label for p in photos.photos) == ["cat", "cat", "dog", "dog"]


def test_with_raw_a_prepared_split_means_its_original_photos(tmp_path: Path) -> None:
    """The manifest's originals are scored, not the resized copies beside it."""
    from catdog.data.params import DataParams  # noqa: PLC0415
    from catdog.data.prepare import prepare_dataset  # noqa: PLC0415
    from catdog.training.evaluate import find_photos  # noqa: PLC0415

    raw = tmp_path / "raw"
    for folder in ("Cat", "Dog"):
        (raw / folder).mkdir(parents=True)
        for photo in sorted((SAMPLES / folder).glob("*.jpg"))[:10]:
            shutil.copy(photo, raw / folder / photo.name)
    out = tmp_path / "prepared"
    prepare_dataset(raw, out, DataParams(image_size=32, workers=1), show_progress=False)
    with (out / "manifest.csv").open(newline="") as handle:
        tests = sorted(r["source_path"] for r in csv.DictReader(handle) if r["split"] == "test")
    photos = find_photos(out / "test", raw)
    assert photos.root == raw
    assert [p.source for p in photos.photos] == tests
    assert all((raw / p.source).is_file() for p in photos.photos)
    everything = find_photos(out, raw)
    assert len(everything.photos) == 20


def test_expected_calibration_error_tells_overconfidence_from_calibration() -> None:
    from catdog.training.evaluate import expected_calibration_error  # noqa: PLC0415

    rng = np.random.default_rng(0)
    p_dog = rng.uniform(0, 1, 20_000)
    calibrated = (rng.uniform(0, 1, p_dog.size) < p_dog).astype(int)
    assert expected_calibration_error(calibrated, p_dog) < 0.02
    overconfident = np.where(p_dog >= 0.5, 0.999, 0.001)  # same answers, 99.9% sure of each
    assert expected_calibration_error(calibrated, overconfident) > 0.2
