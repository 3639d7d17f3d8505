"""`manifest.csv`: one row per input file, kept or refused, with the reason. Nothing is left out.

It is also the memory of the split: the next run reads the splits it recorded, so that adding
photos never moves one that is already in train, val or test.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path

from catdog.data.params import SPLITS
from catdog.errors import DataError

MANIFEST_NAME = "manifest.csv"

# Why a file is refused, as the `reason` column says it.
REFUSAL_REASONS: dict[str, str] = {
    "no_label": "not inside a cat/ or dog/ class folder (README, licence, Thumbs.db ...)",
    "empty_file": "zero bytes",
    "not_an_image": "not a recognised image format",
    "unsupported_format": "a document (PDF, HTML, SVG) with an image extension",
    "truncated": "the image data ends early",
    "undecodable": "the image data is corrupt",
    "too_many_pixels": "more pixels than data.max_pixels (decompression bomb)",
    "too_many_bytes": "a file larger than data.max_file_bytes",
    "unreadable": "the file cannot be read (permissions, broken zip member)",
    "duplicate": "an exact copy (same sha256) of a kept photo, named in `detail`",
    "split_conflict": "a new near-duplicate of photos already in two different splits",
    "label_conflict": "an exact or near copy of a photo filed under the other label (all refused)",
}


@dataclass(frozen=True)
class ManifestRow:
    """One input file. `split`, `group` and `output_path` are empty when they do not apply."""

    source_path: str
    sha256: str
    label: str
    split: str
    width: int | None
    height: int | None
    status: str  # "kept" or "refused"
    reason: str
    detail: str
    group: str  # duplicate group id, shared by exact and near copies
    phash: str  # 64-bit perceptual hash, 16 hex digits
    output_path: str  # relative to the output folder
    split_rule: str  # fingerprint of the split parameters that placed this photo


def output_path(split: str, label: str, sha256: str) -> str:
    """Where a kept photo lives in the data set (the `output_path` column). Workers write photos
    there and the manifest records it: one function, so the two cannot drift apart."""
    return f"{split}/{label}/{sha256}.jpg"


MANIFEST_COLUMNS: tuple[str, ...] = tuple(column.name for column in fields(ManifestRow))
# A row's values in column order in one C call, not 13 getattr calls: 8,000 rows in 26 ms, not 36.
_VALUES = attrgetter(*MANIFEST_COLUMNS)


def write_manifest(path: Path, rows: list[ManifestRow]) -> None:
    """Write the rows, sorted by source path, so that the same inputs give the same bytes."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(map(_VALUES, sorted(rows, key=attrgetter("source_path"))))


def read_previous_splits(path: Path, split_rule: str) -> dict[str, str]:
    """sha256 -> split of the photos a previous run kept under the same split rule."""
    if not path.exists():
        return {}
    splits: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"sha256", "split", "status", "split_rule"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(
                f"{path} lacks the columns {sorted(missing)}: it is not a catdog manifest; "
                "move it away to start a fresh split"
            )
        for line, row in enumerate(reader, start=2):
            if row["status"] != "kept" or row["split_rule"] != split_rule:
                continue
            if row["split"] not in SPLITS:
                raise DataError(f"{path}:{line}: unknown split {row['split']!r}")
            splits[row["sha256"]] = row["split"]
    return splits
