"""Turn a checkpoint into what is served: ONNX proven equal to PyTorch, maybe int8, with cards.

The graph ends in softmax, so every runtime reads probabilities in the card's class order and
no client re-implements the head. A model that keeps ImageNet's classifier (the pretrained
EfficientNet-Lite0) has a second output, `pet_score`: the softmax mass on ImageNet's cat and dog
classes, computed from the same pooled features, so the not-a-pet answer costs one matrix
product more. An export is written to a staging folder and moved into place
only after it passed the parity check, so a failed export never replaces a good model.

Exporter: `torch.onnx.export(dynamo=True)` (torch.export + onnxscript). The TorchScript exporter
still runs on torch 2.14 but warns that it will be removed; the dynamo exporter is the supported
path, writes byte-identical files for the same weights, and gives the dynamic batch axis from
`torch.export.Dim`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from pydantic import ConfigDict, Field
from torch import nn

from catdog.errors import ExportError
from catdog.model_store import MODEL_FILE, card_path
from catdog.predictor import INPUT_NAME, OUTPUT_NAME, PET_OUTPUT_NAME, OnnxClassifier
from catdog.preprocess import Preprocessing
from catdog.terminal import console
from catdog.training.card import (
    MODEL_NAME,
    ModelCard,
    Quantization,
    build_card,
    card_version,
    sha256_of,
    write_card,
)
from catdog.training.checkpoint import LoadedCheckpoint, load_checkpoint
from catdog.training.efficientnet import EfficientNetLite0, pet_score
from catdog.training.evaluate import (
    Evaluation,
    PhotoSet,
    evaluate,
    find_photos,
    load_arrays,
)
from catdog.training.models import count_gflops, count_parameters
from catdog.training.paired import EvidenceParams, compare
from catdog.training.registry import (
    Registered,
    find_run,
    register_export,
    start_export_run,
    write_registration,
)
from catdog.training.tracking import git_commit, tracking_uri

INT8_FILE = "model.int8.onnx"
# The int8 model and its card go in their own folder: a DVC output that exists (empty when int8
# was not kept), so `dvc checkout` never restores a card that names a missing file.
INT8_DIR = "int8"
# Which registry version the export became (or that it was not registered).
REGISTRATION_FILE = "registration.json"


class ExportParams(EvidenceParams):
    """The `export:` section of params.yaml (the int8 gate's evidence rule included)."""

    model_config = ConfigDict(extra="forbid")

    quantize: bool = True
    max_int8_accuracy_drop: float = Field(0.5, ge=0, description="percentage points")
    parity_tolerance: float = Field(1e-4, gt=0)
    parity_photos: int = Field(32, ge=1)
    calibration_photos: int = Field(256, ge=1)
    batch_size: int = Field(32, ge=1)
    # Each export registers a new version of this model (None: register nothing), in the
    # training run, or in a new run of this experiment when the store lacks that run.
    registered_model: str | None = MODEL_NAME
    experiment: str = "catdog"
    # Models with a pet score: the not-a-pet threshold is the score under which this fraction
    # of the val split's cats and dogs fall (test then measures it).
    pet_val_flagged: float = Field(0.005, gt=0, lt=1)


def has_pet_head(model: nn.Module) -> bool:
    """Whether the model keeps ImageNet's classifier, whose answer says "is this a pet"."""
    return isinstance(model, EfficientNetLite0) and model.imagenet_classifier is not None


class ProbabilitiesHead(nn.Module):
    """The classifier with softmax on top: the exported graph outputs probabilities (and the
    pet score, for models that keep ImageNet's classifier)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        if isinstance(model, EfficientNetLite0) and model.imagenet_classifier is not None:
            pooled = model.pooled(image)
            probabilities = torch.softmax(model.classify(pooled), dim=1)
            return probabilities, pet_score(model.imagenet_logits(pooled))
        return torch.softmax(model(image), dim=1)


@dataclass
class ExportResult:
    """Where the export went and what its cards say."""

    onnx_path: Path
    card: ModelCard
    int8_path: Path | None
    int8_card: ModelCard | None
    baseline_path: Path | None = None
    registered: Registered | None = None


def export_onnx(model: nn.Module, size: int, path: Path) -> None:
    """Write `model` (eval mode) as ONNX: input `image` [N, 3, S, S], output `probabilities`."""
    head = ProbabilitiesHead(model).eval()
    # A batch of 2: torch.export specialises dimensions of size 1, which would fix the batch.
    sample = torch.zeros(2, 3, size, size)
    outputs = [OUTPUT_NAME, PET_OUTPUT_NAME] if has_pet_head(model) else [OUTPUT_NAME]
    try:
        torch.onnx.export(
            head,
            (sample,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamo=True,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            verbose=False,
        )
    except Exception as exc:  # torch.export raises many untyped errors for unsupported models
        raise ExportError(f"torch.onnx.export failed: {exc}") from exc


def torch_probabilities(model: nn.Module, batch: np.ndarray) -> np.ndarray:
    """What PyTorch says for a batch, in `OnnxClassifier.predict_batch`'s layout (class
    probabilities, then the pet score when there is one): the reference ONNX must match."""
    with torch.inference_mode():
        out = ProbabilitiesHead(model).eval()(torch.from_numpy(batch))
    if isinstance(out, tuple):
        probabilities, pets = out
        out = torch.cat([probabilities, pets[:, None]], dim=1)
    scores: np.ndarray = out.numpy()
    return scores


def parity_max_abs_diff(
    model: nn.Module, classifier: OnnxClassifier, arrays: np.ndarray, tolerance: float
) -> float:
    """Largest |p_onnx - p_torch| over the photos, in one batch and one photo at a time
    (which proves the batch axis is dynamic); ExportError when it is over `tolerance`."""
    reference = torch_probabilities(model, arrays)
    batched = classifier.predict_batch(arrays)
    single = np.concatenate(
        [classifier.predict_batch(arrays[i : i + 1]) for i in range(len(arrays))]
    )
    diff = float(max(np.abs(batched - reference).max(), np.abs(single - reference).max()))
    if not diff <= tolerance:  # also catches NaN
        raise ExportError(
            f"ONNX and PyTorch disagree on {len(arrays)} photos: max |Δp| = {diff:.3g} > "
            f"{tolerance:g}; the export is not written",
            reason="parity_failed",
        )
    return diff


def split_or_root(data: Path, split: str) -> Path:
    """`data/<split>` when the data set is split (data/prepared), else the folder itself."""
    candidate = data / split
    return candidate if candidate.is_dir() else data


def quantize_int8(fp32_path: Path, int8_path: Path, calibration: np.ndarray) -> None:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on real photos.

    Static rather than dynamic: dynamic quantisation leaves convolutions' activations in float,
    which is where a CNN spends its time, and ONNX Runtime's ConvInteger kernel is slow on CPU.
    """
    from onnxruntime.quantization import (  # noqa: PLC0415 - only when quantising
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    class Photos(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._rows = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self._rows, None)
            return None if row is None else {INPUT_NAME: row[None]}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # ONNX's own shape inference: the symbolic one cannot follow the pet score's gather.
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(int8_path),
            Photos(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
            nodes_to_exclude=head_nodes(onnx.load(str(prepared))),
        )


def head_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes from the first fully connected layer on: the classifiers, the temperature, the
    softmax and the pet score stay float. Quantised, the logits and the probabilities come out in
    steps of 1/255 (a confidence of 0.906 or 0.910, nothing between; rows that sum to 0.996), for
    no speed: the convolutions before them are where the time goes."""
    nodes = list(model.graph.node)
    first = next((i for i, n in enumerate(nodes) if n.op_type in {"Gemm", "MatMul"}), len(nodes))
    return [node.name for node in nodes[first:]]


def int8_decision(
    fp32: Evaluation, int8: Evaluation, params: ExportParams, calibration_photos: int
) -> Quantization:
    """Keep int8 only on evidence, as promotion decides: on enough photos of the selection split,
    a drop within `max_int8_accuracy_drop` points, and not significantly more often wrong than
    fp32 where the two disagree (one-sided exact McNemar). Too few photos: not kept, and why."""
    paired = compare(int8, fp32)
    drop = -100.0 * paired.accuracy_delta
    p_worse = paired.p_worse()
    if paired.photos < params.min_photos:
        kept = False
        why = f"too few photos to decide: {paired.photos} < export.min_photos {params.min_photos}"
    elif drop > params.max_int8_accuracy_drop:
        kept = False
        why = f"accuracy drop {drop:.2f} points > the allowed {params.max_int8_accuracy_drop:.2f}"
    elif p_worse <= params.alpha:
        kept = False
        why = f"McNemar exact test: int8 is worse (p = {p_worse:.3g} ≤ {params.alpha:g})"
    else:
        kept = True
        why = (
            f"accuracy drop {drop:.2f} points ≤ {params.max_int8_accuracy_drop:.2f}, "
            f"not shown worse (McNemar p = {p_worse:.3g} > {params.alpha:g})"
        )
    return Quantization(
        attempted=True,
        kept=kept,
        method="onnxruntime static QDQ, per-channel int8 weights, uint8 activations",
        fp32_accuracy=paired.baseline_accuracy,
        int8_accuracy=paired.candidate_accuracy,
        accuracy_drop_points=round(drop, 4),
        max_drop_points=params.max_int8_accuracy_drop,
        calibration_photos=calibration_photos,
        evaluation_photos=paired.photos,
        reason=f"{'kept' if kept else 'discarded'}: {why} ({paired.summary()})",
    )


def pet_threshold(val: Evaluation, test: Evaluation, val_flagged: float) -> dict[str, Any]:
    """The not-a-pet threshold, chosen on val photos alone, and what it flags on test."""
    if val.pet_scores is None or test.pet_scores is None:
        raise ExportError("the model has an ImageNet head but its export gave no pet_score")
    threshold = float(f"{np.quantile(val.pet_scores, val_flagged):.2g}")  # a number to retype
    return {
        "output": PET_OUTPUT_NAME,
        "score": "softmax mass on ImageNet's cat (281-285) and dog (151-268) classes",
        "threshold": threshold,
        "rule": f"the {val_flagged:.1%} quantile of the val split's cat and dog pet scores",
        "val_photos": len(val.pet_scores),
        "test_photos": len(test.pet_scores),
        "test_flagged_fraction": round(float((test.pet_scores < threshold).mean()), 6),
        "setting": "CATDOG_PET_THRESHOLD overrides the threshold in the service",
    }


def _opset(path: Path) -> int:
    import onnx  # noqa: PLC0415

    model = onnx.load(str(path), load_external_data=False)
    return int(max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))


def export_checkpoint(
    checkpoint: Path,
    out_dir: Path,
    data: Path,
    params: ExportParams,
    *,
    register: bool = True,
) -> ExportResult:
    """Export, check parity on real photos, maybe quantise; then write files and cards in place.

    `data` is a class-folder dataset: parity uses photos from all of it; when it is split
    (data/prepared), int8 is calibrated on `train/`, judged on the selection split `val/`, and
    reported on `test/`; else all three use it all. `register` then registers the export as a
    new version in MLflow (`register_export`).
    """
    loaded = load_checkpoint(checkpoint)
    preprocessing = loaded.preprocessing
    # The originals the checkpoint trained from (its train.raw), when `data` has their manifest:
    # parity, int8 and the test figures then see what serving sees.
    raw = Path(loaded.params["raw"]) if loaded.params.get("raw") else None
    photos = find_photos(data, raw)
    test_set = find_photos(split_or_root(data, "test"), raw)
    selection_set = find_photos(split_or_root(data, "val"), raw)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        fp32_path = Path(tmp) / MODEL_FILE
        export_onnx(loaded.model, preprocessing.size, fp32_path)
        fp32 = OnnxClassifier(fp32_path, card={"preprocessing": preprocessing.to_dict()})
        parity_arrays = load_arrays(photos.subset(params.parity_photos), preprocessing)
        parity = parity_max_abs_diff(loaded.model, fp32, parity_arrays, params.parity_tolerance)
        fp32_test = evaluate(fp32, test_set, batch_size=params.batch_size, description="fp32 test")
        fp32_selection = evaluate(
            fp32, selection_set, batch_size=params.batch_size, description="fp32 selection"
        )
        not_a_pet = None
        if has_pet_head(loaded.model):
            not_a_pet = pet_threshold(fp32_selection, fp32_test, params.pet_val_flagged)
        quantization = Quantization(attempted=False, reason="off (export.quantize: false)")
        int8_test: Evaluation | None = None
        if params.quantize:
            calibration_set = find_photos(split_or_root(data, "train"), raw)
            int8_selection, calibrated = _quantize_and_test(
                fp32_path, preprocessing, calibration_set, selection_set, params
            )
            quantization = int8_decision(fp32_selection, int8_selection, params, calibrated)
            if quantization.kept:
                int8 = OnnxClassifier(
                    Path(tmp) / INT8_FILE, card={"preprocessing": preprocessing.to_dict()}
                )
                int8_test = evaluate(
                    int8, test_set, batch_size=params.batch_size, description="int8 test"
                )
        # The card cannot name the registry version it will become: the version is numbered
        # when it is registered, after the card is written (and registered with it).
        registered = None
        gflops = count_gflops(loaded.model, preprocessing.size)
        common: dict[str, Any] = {
            "architecture": loaded.arch,
            "arch_kwargs": loaded.arch_kwargs,
            "preprocessing": preprocessing,
            "params": loaded.params,
            "extra": loaded.extra,
            "epoch": loaded.epoch,
            "gflops": gflops,
            "parameters": count_parameters(loaded.model),
            "opset": _opset(fp32_path),
            "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}",
            "quantization": quantization,
            "parity_max_abs_diff": parity,
            "parity_photos": len(parity_arrays),
            "test_data": test_set.root,
            "not_a_pet": not_a_pet,
        }
        onnx_path = _place(fp32_path, out_dir)
        card = _card(onnx_path, registered, loaded.metrics, fp32_test, quantized=False, **common)
        int8_path: Path | None = None
        int8_card: ModelCard | None = None
        int8_dir = out_dir / INT8_DIR
        for stale in (
            out_dir / INT8_FILE,
            card_path(out_dir / INT8_FILE),
            int8_dir / INT8_FILE,
            card_path(int8_dir / INT8_FILE),
        ):
            stale.unlink(missing_ok=True)
        int8_dir.mkdir(exist_ok=True)
        if quantization.kept and int8_test is not None:
            int8_path = _place(Path(tmp) / INT8_FILE, int8_dir)
            int8_card = _card(
                int8_path, registered, loaded.metrics, int8_test, quantized=True, **common
            )
    # The drift baseline `catdog monitor` compares live traffic with (catdog.monitoring).
    from catdog.monitoring.baseline_export import export_baseline  # noqa: PLC0415

    baseline = export_baseline(onnx_path, split_or_root(data, "train"), data / "manifest.csv")
    result = ExportResult(onnx_path, card, int8_path, int8_card, baseline)
    if register and params.registered_model:
        result.registered = _register(params.registered_model, checkpoint, loaded, result, params)
    write_registration(out_dir / REGISTRATION_FILE, result.registered)
    return result


def _quantize_and_test(
    fp32_path: Path,
    preprocessing: Preprocessing,
    calibration_set: PhotoSet,
    test_set: PhotoSet,
    params: ExportParams,
) -> tuple[Evaluation, int]:
    """Write the int8 model beside the fp32 one; its test scores and the calibration count."""
    calibration = load_arrays(calibration_set.subset(params.calibration_photos), preprocessing)
    int8_path = fp32_path.with_name(INT8_FILE)
    quantize_int8(fp32_path, int8_path, calibration)
    int8 = OnnxClassifier(int8_path, card={"preprocessing": preprocessing.to_dict()})
    scores = evaluate(int8, test_set, batch_size=params.batch_size, description="int8 selection")
    return scores, len(calibration)


def _place(staged: Path, out_dir: Path) -> Path:
    """Move a checked file from staging into the export folder (same file system: atomic)."""
    return staged.replace(out_dir / staged.name)


def _card(
    onnx_path: Path,
    registered: str | None,
    training_metrics: dict[str, Any],
    test: Evaluation,
    *,
    test_data: Path,
    quantized: bool,
    **common: Any,
) -> ModelCard:
    """Write the card of one exported file: training's own metrics, and this file's on test."""
    card = build_card(
        onnx_path=onnx_path,
        version=card_version(registered, sha256_of(onnx_path)),
        metrics={"training": training_metrics, "test": test.scores(), "test_data": str(test_data)},
        quantized=quantized,
        registered_version=registered,
        **common,
    )
    write_card(card, onnx_path)
    return card


def _register(
    name: str,
    checkpoint: Path,
    loaded: LoadedCheckpoint,
    result: ExportResult,
    params: ExportParams,
) -> Registered:
    """Register the export as a new version, in its training run when this tracking store has
    it, else in a run of its own that names the missing one (and the terminal says so)."""
    training_run = loaded.extra.get("mlflow_run_id")
    run_id = find_run(str(training_run) if training_run else None)
    if run_id is None:
        run_id = start_export_run(params.experiment, str(training_run) if training_run else None)
        console.print(
            f"[yellow]training run {training_run or '(none recorded)'} is not in "
            f"{tracking_uri()}: registering in a new run {run_id}, with the checkpoint, its "
            "card and the metrics it holds[/]"
        )
    card = result.card
    files = [result.onnx_path, card_path(result.onnx_path)]
    if result.baseline_path is not None:
        files.append(result.baseline_path)
    if result.int8_path is not None:
        files += [result.int8_path, card_path(result.int8_path)]
    test = card.metrics["test"]
    tags = {
        "data_hash": card.data_hash,
        "git_commit": card.git_commit,
        "export.git_commit": git_commit(),
        "training_run": str(training_run) if training_run else None,
        "training_run_found": str(run_id == training_run).lower(),
        "architecture": card.architecture,
        "test.accuracy": f"{test['accuracy']:.6f}",
        "test.log_loss": f"{test['log_loss']:.6f}",
        "test.count": str(test["count"]),
        "int8": "kept" if card.quantization.kept else "not kept",
        "int8.reason": card.quantization.reason,
    }
    return register_export(
        name=name,
        run_id=run_id,
        training_run_found=run_id == training_run,
        onnx_path=result.onnx_path,
        files=files,
        checkpoint=checkpoint,
        tags=tags,
    )
