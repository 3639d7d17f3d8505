"""Score a model on a class-folder dataset: the numbers `evaluate`, `export` and `promote` report.

Photos go through the model's own `Preprocessing` (read from its card or checkpoint), the same
code the service runs, so raw photos of any size are measured exactly as they would be served.
A file that cannot be decoded is refused with its reason and listed, never dropped silently.
"""

from __future__ import annotations

import csv
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from catdog.data.manifest import MANIFEST_NAME as MANIFEST
from catdog.data.params import DataParams
from catdog.data.sources import RawFile, RawReader, list_files
from catdog.errors import DataError, ImageError, ModelError
from catdog.metrics import ClassificationMetrics, classification_metrics, roc_curve
from catdog.model_store import resolve, sha256_of
from catdog.predictor import OnnxClassifier
from catdog.preprocess import Preprocessing
from catdog.terminal import progress

# The data stage's file-size limit: a file it would refuse as too big is refused here too.
MAX_FILE_BYTES = DataParams().max_file_bytes
# What reading a file of a folder or zip can raise (a zip member may be corrupt or encrypted).
READ_ERRORS = (OSError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)


class EvaluateParams(BaseModel):
    """The `evaluate:` section of params.yaml."""

    model_config = ConfigDict(extra="forbid")

    data: Path = Path("data/prepared/test")
    # Where the originals are that data/prepared/manifest.csv lists: `data` then means those
    # originals (as serving receives them), not the resized copies. None scores `data` as it is.
    raw: Path | None = None
    batch_size: int = Field(32, ge=1)


class Scorer(Protocol):
    """Anything that turns normalised batches into class probabilities: ONNX or PyTorch."""

    @property
    def preprocessing(self) -> Preprocessing: ...

    def predict_batch(self, batch: np.ndarray) -> np.ndarray: ...


class CheckpointScorer:
    """A PyTorch checkpoint scored through the same preprocessing as its ONNX export."""

    def __init__(self, path: Path) -> None:
        from catdog.training.checkpoint import load_checkpoint  # noqa: PLC0415 - torch is heavy

        loaded = load_checkpoint(path)
        self._model = loaded.model
        self._preprocessing = loaded.preprocessing
        self.arch = loaded.arch
        self.epoch = loaded.epoch

    @property
    def preprocessing(self) -> Preprocessing:
        """How this checkpoint's photos were prepared in training."""
        return self._preprocessing

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """Softmax probabilities in the order of `preprocessing.classes` (then the pet score,
        for models with one), exactly as the ONNX export answers."""
        from catdog.training.export import torch_probabilities  # noqa: PLC0415

        return torch_probabilities(self._model, batch).astype(np.float32)


@dataclass(frozen=True)
class LabelledPhoto:
    """One file of a class-folder dataset and the class its folder names."""

    source: str
    label: str


@dataclass
class PhotoSet:
    """A dataset to score: its labelled files, and the files no class folder claims."""

    root: Path
    photos: list[LabelledPhoto]
    unlabelled: list[str] = field(default_factory=list)

    def subset(self, count: int) -> PhotoSet:
        """At most `count` photos, evenly spread over the sorted list: both classes, every time."""
        if count >= len(self.photos):
            return self
        picks = np.linspace(0, len(self.photos) - 1, num=count).round().astype(int)
        return PhotoSet(self.root, [self.photos[i] for i in picks])


def manifest_photos(manifest: Path, raw: Path, split: str | None) -> PhotoSet:
    """The originals a data stage's manifest kept (in `split`, or in all splits), under `raw`."""
    if not raw.exists():
        raise DataError(f"the original photos {raw} that {manifest} lists do not exist")
    photos: list[LabelledPhoto] = []
    with manifest.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["status"] == "kept" and (split is None or row["split"] == split):
                photos.append(LabelledPhoto(row["source_path"], row["label"]))
    if not photos:
        raise DataError(f"{manifest} keeps no photos in split {split!r}")
    return PhotoSet(raw, sorted(photos, key=lambda photo: photo.source))


def find_photos(root: Path, raw: Path | None = None) -> PhotoSet:
    """The files of a class-folder tree or zip (cat/cats/Cat... at any depth, as the data stage).

    With `raw` (where the originals are) and a data stage's output (`root` is the prepared
    folder or one of its splits, beside manifest.csv), the photos are the originals the manifest
    kept there: what serving would be sent, not the resized copies.
    """
    if raw is not None:
        for manifest, split in ((root / MANIFEST), None), ((root.parent / MANIFEST), root.name):
            if manifest.is_file():
                return manifest_photos(manifest, raw, split)
    if not root.exists():
        raise DataError(f"no dataset at {root}")
    files: list[RawFile] = list_files(root)
    photos = [LabelledPhoto(f.source, f.label) for f in files if f.label is not None]
    unlabelled = [f.source for f in files if f.label is None]
    if not photos:
        raise DataError(f"{root} has no photos in class folders (cat/, dog/, at any depth)")
    return PhotoSet(root, photos, unlabelled)


@dataclass
class Refusal:
    """A file that is in a class folder but could not be scored, and why."""

    source: str
    reason: str
    detail: str


@dataclass
class Evaluation:
    """Scores of one model on one dataset, with every refused file accounted for."""

    metrics: ClassificationMetrics
    sources: list[str]
    labels: np.ndarray
    p_dog: np.ndarray
    refused: list[Refusal]
    unlabelled: list[str]
    # Each photo's pet score, for models that output one (None otherwise).
    pet_scores: np.ndarray | None = None

    def scores(self) -> dict[str, Any]:
        """The numbers alone: what a model card and a registry tag record."""
        m = self.metrics
        return {
            "count": m["n"],
            "accuracy": m["accuracy"],
            "precision": m["precision"],
            "recall": m["recall"],
            "f1": m["f1"],
            "roc_auc": m["roc_auc"],
            "log_loss": m["log_loss"],
            "ece": round(expected_calibration_error(self.labels, self.p_dog), 6),
            # Named cells rather than a nested list: self-describing, and DVC diffs numbers.
            "confusion_matrix": {
                "actual_cat": {"predicted_cat": m["tn"], "predicted_dog": m["fp"]},
                "actual_dog": {"predicted_cat": m["fn"], "predicted_dog": m["tp"]},
            },
        }

    def to_json(self, *, model: dict[str, Any], data: str) -> dict[str, Any]:
        """The report `catdog evaluate` prints: flat metrics first, so DVC can diff them."""
        return {
            **self.scores(),
            "refused_count": len(self.refused),
            "refused": [vars(r) for r in self.refused],
            "unlabelled_count": len(self.unlabelled),
            "model": model,
            "data": data,
        }


def iter_batches(
    photo_set: PhotoSet, preprocessing: Preprocessing, batch_size: int, refused: list[Refusal]
) -> Iterator[tuple[np.ndarray, list[LabelledPhoto]]]:
    """Decode and preprocess photos into batches (arrays and the photos they came from);
    files that cannot be decoded are appended to `refused`."""
    reader = RawReader(photo_set.root)
    arrays: list[np.ndarray] = []
    batch: list[LabelledPhoto] = []
    try:
        for photo in photo_set.photos:
            try:
                data = reader.read(photo.source, MAX_FILE_BYTES)
            except READ_ERRORS as exc:
                refused.append(Refusal(photo.source, "unreadable", f"cannot read the file: {exc}"))
                continue
            if len(data) > MAX_FILE_BYTES:
                too_big = f"more than the limit of {MAX_FILE_BYTES:,} bytes"
                refused.append(Refusal(photo.source, "too_many_bytes", too_big))
                continue
            try:
                arrays.append(preprocessing(data))
            except ImageError as exc:
                refused.append(Refusal(photo.source, exc.reason, exc.detail))
                continue
            batch.append(photo)
            if len(arrays) == batch_size:
                yield np.stack(arrays), batch
                arrays, batch = [], []
        if arrays:
            yield np.stack(arrays), batch
    finally:
        reader.close()


def evaluate(
    scorer: Scorer,
    photo_set: PhotoSet,
    *,
    batch_size: int = 32,
    description: str = "evaluating",
) -> Evaluation:
    """Score every labelled photo; metrics treat dog as the positive class."""
    classes = scorer.preprocessing.classes
    if sorted(classes) != ["cat", "dog"]:
        raise ModelError(f"the model's classes are {list(classes)}, expected cat and dog")
    dog = classes.index("dog")
    refused: list[Refusal] = []
    scored: list[LabelledPhoto] = []
    p_dog: list[np.ndarray] = []
    pets: list[np.ndarray] = []
    with progress() as bar:
        task = bar.add_task(description, total=len(photo_set.photos))
        for batch, photos in iter_batches(photo_set, scorer.preprocessing, batch_size, refused):
            rows = scorer.predict_batch(batch)
            p_dog.append(rows[:, dog])
            if rows.shape[1] > len(classes):  # the pet score rides after the probabilities
                pets.append(rows[:, -1])
            scored += photos
            bar.update(task, completed=len(scored) + len(refused))
    if not scored:
        raise DataError(f"none of the {len(photo_set.photos)} photos in {photo_set.root} decoded")
    y = np.asarray([1 if photo.label == "dog" else 0 for photo in scored])
    p = np.concatenate(p_dog)
    return Evaluation(
        classification_metrics(y, p),
        [photo.source for photo in scored],
        y,
        p,
        refused,
        photo_set.unlabelled,
        np.concatenate(pets) if pets else None,
    )


def evaluate_model(
    spec: str | None, data: Path, *, batch_size: int, raw: Path | None = None
) -> tuple[Evaluation, dict[str, Any]]:
    """Evaluate what `--model` names (ONNX, export folder, registry URI, `.pt`, or the default)
    and describe which model that turned out to be."""
    photos = find_photos(data, raw)
    if spec is not None and spec.endswith(".pt"):
        scorer = CheckpointScorer(Path(spec))
        described: dict[str, Any] = {
            "spec": spec,
            "name": "checkpoint",
            "version": f"epoch {scorer.epoch}",
            "sha256": sha256_of(Path(spec)),
            "architecture": scorer.arch,
            "runtime": "pytorch",
        }
        return evaluate(scorer, photos, batch_size=batch_size), described
    with tempfile.TemporaryDirectory(prefix="catdog-evaluate-") as tmp:
        resolved = resolve(spec, cache_dir=Path(tmp))
        classifier = OnnxClassifier(resolved.path)
        card = classifier.card
        described = {
            "spec": resolved.spec,
            "name": card.get("name", "catdog"),
            "version": resolved.version,
            "sha256": resolved.sha256,
            "architecture": card.get("architecture"),
            "quantized": card.get("quantized", False),
            "runtime": "onnxruntime",
        }
        return evaluate(classifier, photos, batch_size=batch_size), described


def write_plots(evaluation: Evaluation, folder: Path) -> None:
    """Per-photo predictions (DVC's confusion template) and the ROC curve, as CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ("cat", "dog")
    with (folder / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "actual", "predicted", "p_dog"])
        for source, label, p in zip(
            evaluation.sources, evaluation.labels, evaluation.p_dog, strict=True
        ):
            writer.writerow([source, names[label], names[int(p >= 0.5)], f"{p:.6f}"])
    fpr, tpr = roc_curve(evaluation.labels, evaluation.p_dog)
    with (folder / "roc.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["fpr", "tpr"])
        writer.writerows((f"{x:.6f}", f"{y:.6f}") for x, y in zip(fpr, tpr, strict=True))


def load_arrays(photo_set: PhotoSet, preprocessing: Preprocessing) -> np.ndarray:
    """All decodable photos of a (small) set as one array: parity and calibration inputs."""
    refused: list[Refusal] = []
    batches = [batch for batch, _ in iter_batches(photo_set, preprocessing, 64, refused)]
    if not batches:
        raise DataError(f"none of the {len(photo_set.photos)} photos in {photo_set.root} decoded")
    return np.concatenate(batches)


def expected_calibration_error(labels: np.ndarray, p_dog: np.ndarray, bins: int = 15) -> float:
    """ECE of the predicted class's confidence: the mean |confidence - accuracy| over equal-width
    confidence bins, weighted by the photos in each (Guo et al., 2017)."""
    labels = np.asarray(labels)
    p_dog = np.asarray(p_dog, dtype=np.float64)
    predicted = (p_dog >= 0.5).astype(int)
    confidence = np.where(predicted == 1, p_dog, 1 - p_dog)
    correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = which == b
        if chosen.any():
            total += chosen.sum() * abs(confidence[chosen].mean() - correct[chosen].mean())
    return float(total / max(1, len(labels)))
