"""Registering exports and promoting versions against a real MLflow registry (SQLite, temp dir)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from catdog.cli import app
from catdog.errors import ModelError
from catdog.model_store import card_path, resolve, sha256_of
from catdog.training.checkpoint import load_checkpoint, save_checkpoint
from catdog.training.export import INT8_FILE, ExportParams, ExportResult, export_checkpoint

if TYPE_CHECKING:
    from conftest import TinyModels

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tracking store and registry of our own (each test uses its own model name); the
    experiment id is yielded."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield mlflow.create_experiment("catdog", artifact_location=str(root / "artifacts"))
        mlflow.set_tracking_uri(None)


def _training_run(experiment: str) -> str:
    """What `catdog train` leaves behind: a finished run (training registers nothing)."""
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_param("arch", "simple_cnn")
    return run.info.run_id


def _of_run(checkpoint: Path, run_id: str, out: Path) -> Path:
    """The checkpoint as `catdog train` would have written it in run `run_id`."""
    loaded = load_checkpoint(checkpoint)
    return save_checkpoint(
        out,
        model=loaded.model,
        arch=loaded.arch,
        arch_kwargs=loaded.arch_kwargs,
        preprocessing=loaded.preprocessing,
        params=loaded.params,
        epoch=loaded.epoch,
        metrics=loaded.metrics,
        extra={**loaded.extra, "mlflow_run_id": run_id},
    )


def _export(checkpoint: Path, out: Path, data: Path, name: str) -> ExportResult:
    params = ExportParams(quantize=False, parity_photos=4, registered_model=name)
    return export_checkpoint(checkpoint, out, data, params)


def test_each_export_registers_the_served_bytes_as_a_new_immutable_version(
    tiny_models: TinyModels, registry: str, tmp_path: Path
) -> None:
    client = MlflowClient()
    run_id = _training_run(registry)
    checkpoint = _of_run(tiny_models.good_checkpoint, run_id, tmp_path / "good.pt")
    out = tmp_path / "models"
    first = _export(checkpoint, out, tiny_models.data, "served")
    assert first.registered is not None
    assert (first.registered.version, first.registered.run_id) == ("1", run_id)
    assert first.registered.training_run_found
    first_onnx = (out / "model.onnx").read_bytes()
    first_card = card_path(out / "model.onnx").read_bytes()

    # What the registry serves is, byte for byte, what `catdog serve --model models/` runs.
    client.set_registered_model_alias("served", "champion", "1")
    champion = resolve("models:/served@champion", cache_dir=tmp_path / "champion")
    assert champion.version == "1"
    assert champion.sha256 == sha256_of(out / "model.onnx") == first.card.onnx_sha256
    assert card_path(champion.path).read_bytes() == first_card
    # The logged model asks for ONNX Runtime, not for an unpublished catdog.
    requirements = (champion.path.parent / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "catdog" not in requirements
    # The PyTorch checkpoint is kept in the training run.
    assert [a.path for a in client.list_artifacts(run_id, "checkpoint")] == ["checkpoint/good.pt"]
    tags = client.get_model_version("served", "1").tags
    assert (tags["data_hash"], tags["git_commit"]) == ("md5:good", "0" * 40)
    assert tags["training_run"] == run_id and tags["training_run_found"] == "true"
    assert float(tags["test.accuracy"]) == pytest.approx(first.card.metrics["test"]["accuracy"])
    assert tags["int8"] == "not kept" and tags["onnx_sha256"] == champion.sha256

    # Re-exporting makes version 2; version 1 keeps its bytes; no stale int8 file survives.
    (out / INT8_FILE).write_bytes(b"an int8 model from an older export")
    card_path(out / INT8_FILE).write_text("{}")
    second = _export(checkpoint, out, tiny_models.data, "served")
    assert second.registered is not None and second.registered.version == "2"
    assert not (out / INT8_FILE).exists() and not card_path(out / INT8_FILE).exists()
    assert list((out / "int8").iterdir()) == []
    record = json.loads((out / "registration.json").read_text())
    assert (record["registered"], record["version"], record["uri"]) == (
        True,
        "2",
        "models:/served/2",
    )
    again = resolve("models:/served/1", cache_dir=tmp_path / "again")
    assert again.path.read_bytes() == first_onnx
    assert card_path(again.path).read_bytes() == first_card
    newest = resolve("models:/served/2", cache_dir=tmp_path / "newest")
    assert card_path(newest.path).read_bytes() == card_path(out / "model.onnx").read_bytes()


def test_an_export_without_its_training_run_registers_with_what_it_has(
    tiny_models: TinyModels, registry: str, tmp_path: Path
) -> None:
    missing = "f" * 32  # a run of another machine's store, as in a fresh clone
    checkpoint = _of_run(tiny_models.good_checkpoint, missing, tmp_path / "good.pt")
    args = ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "models")]
    args += ["--data", str(tiny_models.data), "--no-quantize", "--params", str(tmp_path / "p")]
    (tmp_path / "p").write_text("export:\n  parity_photos: 4\n  registered_model: orphan\n")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"training run {missing} is not in" in " ".join(result.output.split())

    client = MlflowClient()
    version = client.get_model_version("orphan", "1")
    assert version.run_id != missing
    assert client.get_run(version.run_id).data.tags["catdog.training_run"] == missing
    assert version.tags["training_run_found"] == "false"
    assert version.tags["data_hash"] == "md5:good"
    served = resolve("models:/orphan/1", cache_dir=tmp_path / "dl")
    assert served.sha256 == sha256_of(tmp_path / "models" / "model.onnx")


def _promote(params: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["promote", "--params", str(params), *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    for role, model in report["models"].items():
        line = f"model: {model['spec']} (version {model['version']}, sha256 {model['sha256']})"
        assert line in result.stderr, role
    return report


def test_champion_moves_only_on_evidence(
    tiny_models: TinyModels, registry: str, tmp_path: Path
) -> None:
    name = "promoted"
    selection = tiny_models.data / "test"  # 20 photos: the tiny data set has no val/ split
    params = tmp_path / "params.yaml"
    params.write_text(f"promote:\n  model_name: {name}\n  data: {selection}\n  min_photos: 20\n")
    client = MlflowClient()

    def export(checkpoint: Path, tag: str) -> None:
        run = _of_run(checkpoint, _training_run(registry), tmp_path / f"{tag}.pt")
        _export(run, tmp_path / tag, tiny_models.data, name)

    export(tiny_models.worse_checkpoint, "v1")
    first = _promote(params)
    assert (first["version"], first["alias"], first["promoted"]) == ("1", "champion", True)
    assert first["reasons"] == ["no champion yet: the first version becomes champion"]

    # v2, the mirror image of v1: they disagree on every photo, and v2 wins nearly all.
    export(tiny_models.good_checkpoint, "v2")
    second = _promote(params)
    assert (second["version"], second["alias"], second["previous_champion"]) == (
        "2",
        "champion",
        "1",
    )
    assert second["comparison"]["disagreements"] == 20
    assert second["comparison"]["p_value"] <= 0.05
    assert all(reason.endswith("ok") for reason in second["reasons"])

    export(tiny_models.worse_checkpoint, "v3")  # worse again: the test says so
    third = _promote(params)
    assert (third["version"], third["alias"], third["promoted"]) == ("3", "challenger", False)
    assert third["decided"] and any(r.startswith("McNemar") for r in third["reasons"])
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    tags = client.get_model_version(name, "3").tags
    assert (tags["promotion.decision"], tags["promotion.compared_with"]) == ("challenger", "2")
    assert float(tags["selection.accuracy"]) == third["candidate"]["accuracy"]

    export(tiny_models.good_checkpoint, "v4")  # the champion's weights again: no disagreement
    fourth = _promote(params)
    assert (fourth["alias"], fourth["promoted"], fourth["decided"]) == ("challenger", False, False)
    assert fourth["reasons"][0].startswith("too few disagreements to decide")
    assert client.get_model_version(name, "4").tags["promotion.decision"] == "undecided"

    params.write_text(f"promote:\n  model_name: {name}\n  data: {selection}\n  min_photos: 21\n")
    fifth = _promote(params, "--version", "3")
    assert (fifth["promoted"], fifth["decided"]) == (False, False)
    assert fifth["reasons"][0].startswith("too few photos to decide: 20 < promote.min_photos 21")

    # `evaluate` names the model it scored, and the champion is still v2's file.
    result = CliRunner().invoke(
        app, ["evaluate", "--model", f"models:/{name}@champion", "--data", str(selection)]
    )
    assert result.exit_code == 0, result.output
    served = json.loads(result.stdout)
    assert served["model"]["version"] == "2"
    assert served["model"]["sha256"] == sha256_of(tmp_path / "v2" / "model.onnx")
    assert f"model: models:/{name}@champion (version 2, sha256 " in result.stderr
    assert served["accuracy"] == second["candidate"]["accuracy"]


def test_a_version_that_holds_no_onnx_model_is_refused_with_a_reason(
    registry: str, tiny_models: TinyModels, tmp_path: Path
) -> None:
    run_id = _training_run(registry)  # a version registered by hand from a bare run
    client = MlflowClient()
    client.create_registered_model("unexported")
    client.create_model_version("unexported", source=f"runs:/{run_id}", run_id=run_id)
    params = tmp_path / "params.yaml"
    params.write_text(f"promote:\n  model_name: unexported\n  data: {tiny_models.data / 'test'}\n")
    result = CliRunner().invoke(app, ["promote", "--params", str(params)])
    assert isinstance(result.exception, ModelError)
    assert result.exception.reason == "not_exported"
    assert "register an ONNX export" in result.exception.detail
    assert client.get_registered_model("unexported").aliases == {}
