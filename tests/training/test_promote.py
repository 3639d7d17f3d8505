"""`catdog promote` against a real MLflow registry (SQLite in a temporary folder)."""

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
from catdog.model_store import card_path
from catdog.training.checkpoint import load_checkpoint, save_checkpoint
from catdog.training.export import ExportParams, export_checkpoint
from catdog.training.registry import PromoteParams, attach_export, decide

if TYPE_CHECKING:
    from conftest import TinyModels

    from catdog.training.export import ExportResult


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tracking server and registry of our own (each test uses its own model name); the
    experiment id is yielded."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        yield mlflow.create_experiment("catdog", artifact_location=str(root / "artifacts"))
        mlflow.set_tracking_uri(None)


def _training_run(experiment: str, name: str = "catdog") -> str:
    """What `catdog train` leaves behind: a finished run and a registered version of it."""
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_param("arch", "simple_cnn")
    client = MlflowClient()
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    client.create_model_version(name, source=run.info.artifact_uri, run_id=run.info.run_id)
    return run.info.run_id


def _register_export(experiment: str, export: ExportResult) -> str:
    run_id = _training_run(experiment)
    attach_export(run_id, [export.onnx_path, card_path(export.onnx_path)])
    return run_id


def _promote(params: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["promote", "--params", str(params), *args])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.slow
def test_champion_moves_only_to_a_version_that_beats_it(
    tiny_models: TinyModels, registry: str, tmp_path: Path
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(f"promote:\n  data: {tiny_models.data / 'test'}\n")
    client = MlflowClient()

    # v1, the worse model, exported the way `catdog export` does after `catdog train`.
    run_id = _training_run(registry)
    loaded = load_checkpoint(tiny_models.worse_checkpoint)
    checkpoint = save_checkpoint(
        tmp_path / "v1.pt",
        model=loaded.model,
        arch=loaded.arch,
        arch_kwargs=loaded.arch_kwargs,
        preprocessing=loaded.preprocessing,
        params=loaded.params,
        epoch=loaded.epoch,
        metrics=loaded.metrics,
        extra={**loaded.extra, "mlflow_run_id": run_id},
    )
    export = export_checkpoint(
        checkpoint, tmp_path / "v1", tiny_models.data, ExportParams(quantize=False, parity_photos=4)
    )
    assert (export.card.version, export.card.mlflow_run_id) == ("1", run_id)

    first = _promote(params)
    assert (first["version"], first["alias"], first["promoted"]) == ("1", "champion", True)
    assert first["reasons"] == ["no champion yet: the first version becomes champion"]

    _register_export(registry, tiny_models.good)  # v2: better on the same test split
    second = _promote(params)
    assert (second["version"], second["alias"], second["previous_champion"]) == (
        "2",
        "champion",
        "1",
    )
    assert all(reason.endswith("ok") for reason in second["reasons"])
    assert str(client.get_model_version_by_alias("catdog", "champion").version) == "2"

    _register_export(registry, tiny_models.worse)  # v3: worse again
    third = _promote(params)
    assert (third["version"], third["alias"], third["promoted"]) == ("3", "challenger", False)
    assert any("accuracy" in r and r.endswith("FAIL") for r in third["reasons"])
    assert str(client.get_model_version_by_alias("catdog", "champion").version) == "2"
    assert str(client.get_model_version_by_alias("catdog", "challenger").version) == "3"
    tags = client.get_model_version("catdog", "3").tags
    assert tags["promotion.decision"] == "challenger"
    assert tags["promotion.compared_with"] == "2"
    assert float(tags["test.accuracy"]) == third["candidate"]["accuracy"]

    # What the registry serves as champion is the better model's ONNX file.
    test_split = str(tiny_models.data / "test")
    result = CliRunner().invoke(
        app, ["evaluate", "--model", "models:/catdog@champion", "--data", test_split]
    )
    assert result.exit_code == 0, result.output
    served = json.loads(result.stdout)
    assert served["accuracy"] == second["candidate"]["accuracy"]
    assert served["accuracy"] > third["candidate"]["accuracy"]


def test_a_version_without_an_export_is_refused_with_a_reason(
    registry: str, tiny_models: TinyModels, tmp_path: Path
) -> None:
    _training_run(registry, "unexported")  # registered by training, never exported
    params = tmp_path / "params.yaml"
    params.write_text(f"promote:\n  model_name: unexported\n  data: {tiny_models.data / 'test'}\n")
    result = CliRunner().invoke(app, ["promote", "--params", str(params)])
    assert isinstance(result.exception, ModelError)
    assert result.exception.reason == "not_exported"
    assert "export it first" in result.exception.detail
    assert MlflowClient().get_registered_model("unexported").aliases == {}


@pytest.mark.parametrize(
    ("candidate", "rule", "promoted"),
    [
        ({"accuracy": 0.90, "log_loss": 0.30}, PromoteParams(), True),  # ties pass
        ({"accuracy": 0.95, "log_loss": 0.31}, PromoteParams(), False),  # worse log loss
        ({"accuracy": 0.85, "log_loss": 0.20}, PromoteParams(), False),  # worse accuracy
        ({"accuracy": 0.90, "log_loss": 0.30}, PromoteParams(min_accuracy_delta=0.01), False),
        ({"accuracy": 0.89, "log_loss": 0.30}, PromoteParams(min_accuracy_delta=-0.02), True),
    ],
)
def test_rule_compares_accuracy_and_log_loss_by_the_params(
    candidate: dict[str, float], rule: PromoteParams, promoted: bool
) -> None:
    champion = {"accuracy": 0.90, "log_loss": 0.30}
    decision = decide(candidate, champion, rule)
    assert decision.promote is promoted
    assert len(decision.reasons) == 2
