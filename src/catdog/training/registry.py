"""The MLflow model registry: register what is served, and promote on evidence.

`catdog export` registers a new version of `catdog` for every export: an MLflow ONNX model that
holds the very `model.onnx` and `model.card.json` bytes written to `models/` (and the int8 pair
when it was kept), logged in the training run beside the PyTorch checkpoint. A version is never
changed afterwards; re-exporting makes the next one. `models:/catdog@champion` therefore resolves
to the bytes that `catdog serve --model models/model.onnx` runs, which `register_export` checks.

`catdog promote` scores the candidate and the champion on the selection split and moves the
`champion` alias only on evidence (`decide`); otherwise the candidate becomes `challenger`, and
the version's tags and description say why.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from catdog.errors import ModelError
from catdog.model_store import resolve, sha256_of
from catdog.predictor import OnnxClassifier
from catdog.training.card import MODEL_NAME
from catdog.training.evaluate import Evaluation, evaluate, find_photos
from catdog.training.paired import EvidenceParams, PairedComparison, compare

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
# Where a version's MLflow model lives in its run (its `model.onnx` and card inside).
MODEL_ARTIFACT = "onnx"


class PromoteParams(EvidenceParams):
    """The `promote:` section of params.yaml: the rule a candidate must pass to become champion.

    Both models are scored on `data`, the selection split (val/), never on the final test split.
    Deltas are candidate minus champion, accuracy as a fraction (0.01 = one point).
    """

    model_name: str = MODEL_NAME
    data: Path = Path("data/prepared/val")
    # Where the originals that data/prepared/manifest.csv lists are: both models are scored on
    # what serving would be sent, not the data stage's resized copies (None: `data` as it is).
    raw: Path | None = None
    min_accuracy_delta: float = Field(0.01, description="candidate accuracy - champion's, at least")
    max_log_loss_delta: float = Field(0.0, description="candidate log loss - champion's, at most")
    batch_size: int = Field(32, ge=1)


@dataclass(frozen=True)
class Decision:
    """Whether the candidate becomes champion, and the reasons, one per rule.

    `decided` is False when the evidence was too thin to compare the two at all.
    """

    promote: bool
    reasons: list[str]
    decided: bool = True


def decide(
    comparison: PairedComparison | None, log_loss_delta: float, rule: PromoteParams
) -> Decision:
    """Promote only on evidence: enough photos, a significant paired test, the margin, and no
    worse log loss. `comparison` is candidate against champion, None when there is no champion."""
    if comparison is None:
        return Decision(True, ["no champion yet: the first version becomes champion"])
    seen = comparison.summary()
    if comparison.photos < rule.min_photos:
        return Decision(
            False,
            [
                f"too few photos to decide: {comparison.photos} < promote.min_photos "
                f"{rule.min_photos}; the candidate stays challenger ({seen})"
            ],
            decided=False,
        )
    if comparison.smallest_p() > rule.alpha:
        return Decision(
            False,
            [
                f"too few disagreements to decide: even winning all {comparison.disagreements} "
                f"would give p = {comparison.smallest_p():.3g} > alpha {rule.alpha:g} ({seen})"
            ],
            decided=False,
        )
    p = comparison.p_better()
    delta = comparison.accuracy_delta
    test_ok = p <= rule.alpha
    margin_ok = delta >= rule.min_accuracy_delta
    loss_ok = log_loss_delta <= rule.max_log_loss_delta
    reasons = [
        f"McNemar exact test: p = {p:.4g} that the candidate is not better "
        f"(needs ≤ {rule.alpha:g}; {seen}): {'ok' if test_ok else 'FAIL'}",
        f"accuracy Δ {delta:+.4f} (needs ≥ {rule.min_accuracy_delta:+.4f}): "
        f"{'ok' if margin_ok else 'FAIL'}",
        f"log loss Δ {log_loss_delta:+.4f} (needs ≤ {rule.max_log_loss_delta:+.4f}): "
        f"{'ok' if loss_ok else 'FAIL'}",
    ]
    return Decision(test_ok and margin_ok and loss_ok, reasons)


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
    comparison: PairedComparison | None
    models: dict[str, dict[str, str]]  # "candidate" (and "champion"): URI, version, sha256


@dataclass(frozen=True)
class Registered:
    """The version an export became, and the run that holds it."""

    name: str
    version: str
    run_id: str
    training_run_found: bool
    onnx_sha256: str

    @property
    def uri(self) -> str:
        """The immutable URI of this version."""
        return f"models:/{self.name}/{self.version}"


def client() -> MlflowClient:
    """A registry client on MLFLOW_TRACKING_URI (default: MLflow's `sqlite:///mlflow.db`)."""
    from mlflow import MlflowClient  # noqa: PLC0415 - MLflow is slow to import

    return MlflowClient()


def write_registration(path: Path, registered: Registered | None) -> None:
    """Which version an export became, beside the export: what `catdog promote --registration`
    reads, so the pipeline promotes its own version, not whichever is newest."""
    record: dict[str, Any] = {"registered": registered is not None}
    if registered is not None:
        record |= {
            "name": registered.name,
            "version": registered.version,
            "uri": registered.uri,
            "run_id": registered.run_id,
            "training_run_found": registered.training_run_found,
            "onnx_sha256": registered.onnx_sha256,
        }
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def read_registration(path: Path) -> tuple[str, str]:
    """The model name and version a `write_registration` file names."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the registration record {path}: {exc}") from exc
    if not record.get("registered"):
        raise ModelError(
            f"{path} says the export was not registered (export.registered_model is null, or "
            "--no-register): there is no version to promote",
            reason="no_model_version",
        )
    return str(record["name"]), str(record["version"])


def find_run(run_id: str | None) -> str | None:
    """`run_id` when the tracking store has that run, else None (a fresh clone, another store)."""
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    if not run_id:
        return None
    try:
        client().get_run(run_id)
    except MlflowException:
        return None
    return run_id


def start_export_run(experiment: str, missing_run: str | None) -> str:
    """A run of its own for an export whose training run this tracking store does not have."""
    import mlflow  # noqa: PLC0415

    from catdog.training.tracking import experiment_id  # noqa: PLC0415

    tags = {"catdog.stage": "export", "catdog.training_run": missing_run or "unknown"}
    run = client().create_run(experiment_id(experiment, mlflow.get_tracking_uri()), tags=tags)
    return str(run.info.run_id)


def register_export(
    *,
    name: str,
    run_id: str,
    training_run_found: bool,
    onnx_path: Path,
    files: Sequence[Path],
    checkpoint: Path,
    tags: Mapping[str, str | None],
) -> Registered:
    """Register `onnx_path` (with `files`, its card and maybe int8 pair) as a new version.

    The ONNX model is logged in `run_id` with MLflow's ONNX flavour, unchanged (no external
    data); the checkpoint is kept as a run artifact under `checkpoint/`. The downloaded version
    must hash to the local file, or the registration fails.
    """
    import mlflow  # noqa: PLC0415
    import onnx  # noqa: PLC0415
    import onnxruntime  # noqa: PLC0415
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    registry = client()
    sha = sha256_of(onnx_path)
    try:
        if not registry.list_artifacts(run_id, "checkpoint"):
            registry.log_artifact(run_id, str(checkpoint), artifact_path="checkpoint")
        with mlflow.start_run(run_id=run_id):
            info = mlflow.onnx.log_model(
                onnx.load(str(onnx_path)),
                name=MODEL_ARTIFACT,
                save_as_external_data=False,
                # What runs the file; catdog itself is not needed to score it.
                pip_requirements=[
                    f"onnxruntime=={onnxruntime.__version__}",
                    f"onnx=={onnx.__version__}",
                ],
                metadata={"onnx_sha256": sha},
            )
            with tempfile.TemporaryDirectory(prefix="catdog-register-") as tmp:
                extra = Path(tmp)
                for path in files:
                    if path != onnx_path:
                        (extra / path.name).write_bytes(path.read_bytes())
                registry.log_model_artifacts(info.model_id, str(extra))
        version = mlflow.register_model(
            info.model_uri, name, tags=_clean(tags) | {"onnx_sha256": sha}
        )
    except MlflowException as exc:
        raise ModelError(
            f"cannot register the export in MLflow at {mlflow.get_tracking_uri()}: {exc.message} "
            "(`--no-register` skips this step)",
            reason="registry_unavailable",
        ) from exc
    registered = Registered(name, str(version.version), run_id, training_run_found, sha)
    _check_bytes(registered)
    return registered


def _clean(tags: Mapping[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if value is not None}


def _check_bytes(registered: Registered) -> None:
    """The registered ONNX file must be the very bytes written locally: served == registered."""
    with tempfile.TemporaryDirectory(prefix="catdog-verify-") as tmp:
        found = resolve(registered.uri, cache_dir=Path(tmp)).sha256
    if found != registered.onnx_sha256:
        raise ModelError(
            f"{registered.uri} holds an ONNX file with sha256 {found}, not the exported "
            f"{registered.onnx_sha256}",
            reason="registry_mismatch",
        )


def _newest_version(registry: MlflowClient, name: str) -> str:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        versions = registry.search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        raise ModelError(f"cannot read the registry: {exc.message}") from exc
    if not versions:
        raise ModelError(
            f"no registered versions of {name!r}: run `catdog export` first",
            reason="no_model_version",
        )
    return str(max(int(v.version) for v in versions))


def promote(rule: PromoteParams, *, version: str | None = None) -> PromotionResult:
    """Compare a version (default: the newest) with the champion and move the aliases.

    Both models are fetched from the registry and scored by `evaluate` on the rule's selection
    split: the same photos, the same code, the same ONNX files the service would load.
    """
    registry = client()
    name = rule.model_name
    candidate = version or _newest_version(registry, name)
    champion = _alias_version(registry, name, CHAMPION)
    photos = find_photos(rule.data, rule.raw)
    with tempfile.TemporaryDirectory(prefix="catdog-promote-") as tmp:
        models: dict[str, dict[str, str]] = {}

        def score(number: str, role: str) -> Evaluation:
            resolved = resolve(f"models:/{name}/{number}", cache_dir=Path(tmp) / number)
            models[role] = resolved.describe()
            classifier = OnnxClassifier(resolved.path)
            return evaluate(classifier, photos, batch_size=rule.batch_size, description=role)

        candidate_eval = score(candidate, "candidate")
        comparison: PairedComparison | None = None
        champion_scores: dict[str, Any] | None = None
        if champion == candidate:
            decision = Decision(True, [f"version {candidate} is already the champion"])
            champion_scores = candidate_eval.scores()
        elif champion is None:
            decision = decide(None, 0.0, rule)
        else:
            champion_eval = score(champion, "champion")
            champion_scores = champion_eval.scores()
            comparison = compare(candidate_eval, champion_eval)
            log_loss_delta = candidate_eval.scores()["log_loss"] - champion_scores["log_loss"]
            decision = decide(comparison, log_loss_delta, rule)
    alias = CHAMPION if decision.promote else CHALLENGER
    registry.set_registered_model_alias(name, alias, candidate)
    if decision.promote and _alias_version(registry, name, CHALLENGER) == candidate:
        registry.delete_registered_model_alias(name, CHALLENGER)
    result = PromotionResult(
        name,
        candidate,
        alias,
        champion,
        decision,
        candidate_eval.scores(),
        champion_scores,
        comparison,
        models,
    )
    _record(registry, result, rule)
    return result


def _alias_version(registry: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException  # noqa: PLC0415

    try:
        return str(registry.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _record(registry: MlflowClient, result: PromotionResult, rule: PromoteParams) -> None:
    """Leave the comparison on the version itself: tags to filter by, a description to read."""
    scores = result.candidate_scores
    why = "; ".join(result.decision.reasons)
    outcome = result.alias if result.decision.decided else "undecided"
    tags = {
        "promotion.decision": outcome,
        "promotion.compared_with": result.previous_champion or "none",
        "promotion.reason": why,
        "promotion.data": str(rule.data),
        "selection.accuracy": f"{scores['accuracy']:.6f}",
        "selection.log_loss": f"{scores['log_loss']:.6f}",
        "selection.count": str(scores["count"]),
    }
    if result.comparison is not None:
        tags["promotion.disagreements"] = str(result.comparison.disagreements)
        tags["promotion.p_value"] = f"{result.comparison.p_better():.6g}"
    for key, value in tags.items():
        registry.set_model_version_tag(result.name, result.version, key, value)
    against = f"champion v{result.previous_champion}" if result.previous_champion else "no champion"
    registry.update_model_version(
        result.name, result.version, description=f"{outcome} against {against}: {why}"
    )
