"""The MLflow model registry: attach exports to versions, and promote by a written rule.

Every `catdog train` registers a version of `catdog`. `catdog export` attaches the ONNX file and
its card to that version's run (artifacts under `onnx/`), which is what `models:/catdog@champion`
resolves to. `catdog promote` scores the candidate and the current champion on the same test
split and moves the `champion` alias only when the rule in params.yaml says the candidate is at
least as good; otherwise the candidate becomes `challenger`, and the version's tags say why.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from catdog.errors import ModelError
from catdog.model_store import ONNX_ARTIFACT_DIR, resolve_model
from catdog.predictor import OnnxClassifier
from catdog.training.card import MODEL_NAME
from catdog.training.evaluate import evaluate, find_photos

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"


class PromoteParams(BaseModel):
    """The `promote:` section of params.yaml: the rule a candidate must pass to become champion.

    Deltas are candidate minus champion, accuracy as a fraction (0.01 = one point).
    """

    model_config = ConfigDict(extra="forbid")

    model_name: str = MODEL_NAME
    data: Path = Path("data/prepared/test")
    min_accuracy_delta: float = Field(0.0, description="candidate accuracy - champion's, at least")
    max_log_loss_delta: float = Field(0.0, description="candidate log loss - champion's, at most")
    batch_size: int = Field(32, ge=1)


@dataclass(frozen=True)
class Decision:
    """Whether the candidate becomes champion, and the reasons, one per rule."""

    promote: bool
    reasons: list[str]


@dataclass(frozen=True)
class PromotionResult:
    """What `catdog promote` did, for the summary and for tests."""

    name: str
    version: str
    alias: str
    previous_champion: str | None
    decision: Decision
    candidate_scores: dict[str, Any]
    champion_scores: dict[str, Any] | None


def client() -> MlflowClient:
    """A registry client on MLFLOW_TRACKING_URI (default: MLflow's `sqlite:///mlflow.db`)."""
    from mlflow import MlflowClient  # noqa: PLC0415 - MLflow is slow to import

    return MlflowClient()


def version_of_run(run_id: str) -> str | None:
    """The registered version a training run produced, whatever the model's name, if any."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        versions = client().search_model_versions(f"run_id='{run_id}'")
    except MlflowException as exc:
        raise ModelError(f"cannot search the registry for run {run_id}: {exc.message}") from exc
    numbers = sorted(int(v.version) for v in versions)
    return str(numbers[-1]) if numbers else None


def attach_export(run_id: str, files: Sequence[Path]) -> None:
    """Log exported files under the run's `onnx/` artifacts, where `models:/` URIs find them."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    registry = client()
    try:
        for path in files:
            registry.log_artifact(run_id, str(path), artifact_path=ONNX_ARTIFACT_DIR)
    except MlflowException as exc:
        raise ModelError(
            f"cannot attach the export to MLflow run {run_id}: {exc.message} "
            "(is MLFLOW_TRACKING_URI the one training used? `--no-register` skips this step)",
            reason="registry_unavailable",
        ) from exc


def decide(
    candidate: dict[str, Any], champion: dict[str, Any] | None, rule: PromoteParams
) -> Decision:
    """Apply the promotion rule to two score dicts (`accuracy`, `log_loss`) of the same split."""
    if champion is None:
        return Decision(True, ["no champion yet: the first version becomes champion"])
    d_acc = candidate["accuracy"] - champion["accuracy"]
    d_loss = candidate["log_loss"] - champion["log_loss"]
    acc_ok = d_acc >= rule.min_accuracy_delta
    loss_ok = d_loss <= rule.max_log_loss_delta
    reasons = [
        f"accuracy {candidate['accuracy']:.4f} vs {champion['accuracy']:.4f} "
        f"(Δ {d_acc:+.4f}, needs ≥ {rule.min_accuracy_delta:+.4f}): {'ok' if acc_ok else 'FAIL'}",
        f"log loss {candidate['log_loss']:.4f} vs {champion['log_loss']:.4f} "
        f"(Δ {d_loss:+.4f}, needs ≤ {rule.max_log_loss_delta:+.4f}): {'ok' if loss_ok else 'FAIL'}",
    ]
    return Decision(acc_ok and loss_ok, reasons)


def _newest_version(registry: MlflowClient, name: str) -> str:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        versions = registry.search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        raise ModelError(f"cannot read the registry: {exc.message}") from exc
    if not versions:
        raise ModelError(
            f"no registered versions of {name!r}: run `catdog train` first",
            reason="no_model_version",
        )
    return str(max(int(v.version) for v in versions))


def promote(rule: PromoteParams, *, version: str | None = None) -> PromotionResult:
    """Compare a version (default: the newest) with the champion and move the aliases.

    Both models are fetched from the registry and scored by `evaluate` on the rule's test split:
    the same photos, the same code, the same ONNX files the service would load.
    """
    registry = client()
    name = rule.model_name
    candidate = version or _newest_version(registry, name)
    champion = _alias_version(registry, name, CHAMPION)
    photos = find_photos(rule.data)
    with tempfile.TemporaryDirectory(prefix="catdog-promote-") as tmp:

        def score(number: str) -> dict[str, Any]:
            path = resolve_model(f"models:/{name}/{number}", cache_dir=Path(tmp) / number)
            evaluation = evaluate(
                OnnxClassifier(path), photos, batch_size=rule.batch_size, description=f"v{number}"
            )
            return evaluation.scores()

        candidate_scores = score(candidate)
        if champion == candidate:
            decision = Decision(True, [f"version {candidate} is already the champion"])
            champion_scores: dict[str, Any] | None = candidate_scores
        else:
            champion_scores = score(champion) if champion else None
            decision = decide(candidate_scores, champion_scores, rule)
    alias = CHAMPION if decision.promote else CHALLENGER
    registry.set_registered_model_alias(name, alias, candidate)
    if decision.promote and _alias_version(registry, name, CHALLENGER) == candidate:
        registry.delete_registered_model_alias(name, CHALLENGER)
    result = PromotionResult(
        name, candidate, alias, champion, decision, candidate_scores, champion_scores
    )
    _record(registry, result)
    return result


def _alias_version(registry: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        return str(registry.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _record(registry: MlflowClient, result: PromotionResult) -> None:
    """Leave the comparison on the version itself: tags to filter by, a description to read."""
    scores = result.candidate_scores
    why = "; ".join(result.decision.reasons)
    tags = {
        "promotion.decision": result.alias,
        "promotion.compared_with": result.previous_champion or "none",
        "promotion.reason": why,
        "test.accuracy": f"{scores['accuracy']:.6f}",
        "test.log_loss": f"{scores['log_loss']:.6f}",
        "test.count": str(scores["count"]),
    }
    for key, value in tags.items():
        registry.set_model_version_tag(result.name, result.version, key, value)
    against = f"champion v{result.previous_champion}" if result.previous_champion else "no champion"
    registry.update_model_version(
        result.name, result.version, description=f"{result.alias} against {against}: {why}"
    )
