"""Computing the drift baseline at export: the training photos' statistics, and the model's
predicted classes and confidences on them (`catdog.monitoring.baseline` is the file)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from catdog.errors import CatdogError, MonitorError
from catdog.monitoring.appearance import look_of
from catdog.monitoring.baseline import Baseline, Summary, write_baseline
from catdog.monitoring.stats import STATISTICS

# Enough for KS tests and PSI bins, small enough for a JSON file beside the model.
MAX_VALUES = 2000


def summarise(values: Sequence[float]) -> Summary:
    """The mean, spread and a sorted sample (at most MAX_VALUES, seeded) of one quantity."""
    array = np.asarray(values, dtype=np.float64)
    if array.size > MAX_VALUES:
        array = np.random.default_rng(0).choice(array, MAX_VALUES, replace=False)
    return Summary(
        mean=float(array.mean()),
        stddev=float(array.std()),
        values=[round(float(v), 5) for v in np.sort(array)],
    )


def _aspect_ratios_from_manifest(manifest: Path, split: str) -> dict[str, float]:
    """sha256 -> width / height of the ORIGINAL photos: the data stage squares its outputs,
    so their own aspect ratio says nothing about what users upload."""
    if not manifest.exists():
        return {}
    ratios = {}
    with manifest.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("split") == split and row.get("width") and row.get("height"):
                ratios[row["sha256"]] = int(row["width"]) / int(row["height"])
    return ratios


def compute_baseline(
    photos: Sequence[Path],
    probabilities: np.ndarray,
    classes: Sequence[str],
    *,
    model_version: str,
    source: str,
    manifest: Path | None = None,
) -> Baseline:
    """The baseline of `photos` and the model's `probabilities` on them (rows in that order).

    Photos named by their sha256 (the data stage's output) take their aspect ratio from the
    manifest when there is one.
    """
    if len(photos) == 0 or len(photos) != len(probabilities):
        raise MonitorError(f"{len(photos)} photos but {len(probabilities)} rows of probabilities")
    original = _aspect_ratios_from_manifest(manifest, "train") if manifest else {}
    columns: dict[str, list[float]] = {name: [] for name in STATISTICS}
    for path in photos:
        try:
            seen = look_of(path)
        except CatdogError:
            continue
        for name in STATISTICS:
            columns[name].append(getattr(seen, name))
        if path.stem in original:
            columns["aspect_ratio"][-1] = original[path.stem]
    # A model with a not-a-pet head scores one more column (pet_score) after its classes.
    probabilities = probabilities[:, : len(classes)]
    predicted = np.argmax(probabilities, axis=1)
    return Baseline(
        model_version=model_version,
        photos=len(photos),
        source=source,
        statistics={name: summarise(values) for name, values in columns.items()},
        predicted_ratio={c: float(np.mean(predicted == i)) for i, c in enumerate(classes)},
        confidence=summarise(probabilities.max(axis=1).tolist()),
    )


PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
MAX_PHOTOS = 1000
BATCH = 64


def export_baseline(model_path: Path, photos_dir: Path, manifest: Path | None = None) -> Path:
    """Compute a model's baseline on (up to MAX_PHOTOS of) a photo folder and save it beside
    the model: what `catdog export` calls with the training split."""
    from catdog.predictor import OnnxClassifier  # noqa: PLC0415

    found = sorted(p for p in photos_dir.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    if not found:
        raise MonitorError(f"no photos under {photos_dir} for the drift baseline")
    picks = np.linspace(0, len(found) - 1, num=min(MAX_PHOTOS, len(found))).round().astype(int)
    classifier = OnnxClassifier(model_path)
    kept: list[Path] = []
    rows: list[np.ndarray] = []
    for start in range(0, len(picks), BATCH):
        chunk = [found[i] for i in picks[start : start + BATCH]]
        prepared: list[np.ndarray | CatdogError] = []
        for path in chunk:
            try:
                prepared.append(classifier.prepare(path))
            except CatdogError as exc:
                prepared.append(exc)
        for path, scored in zip(chunk, classifier.score_each(prepared), strict=True):
            if isinstance(scored, np.ndarray):
                kept.append(path)
                rows.append(scored)
    baseline = compute_baseline(
        kept,
        np.stack(rows),
        classifier.classes,
        model_version=classifier.version,
        source=photos_dir.name,
        manifest=manifest,
    )
    return write_baseline(baseline, model_path)
