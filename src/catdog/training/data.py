"""Decode the original photos once into uint8 tensors that stay on the training device.

Each photo is decoded and resized from its original bytes exactly as serving does it
(`Preprocessing`: same decode, same draft scale, same filter, same size), once per run; epochs
then only index, augment and normalise tensors, on the GPU when there is one. With a data stage's
`manifest.csv` the photos are its kept originals, split as it split them: the prepared copies
(resized and re-encoded for browsing) never reach a model. A photo that cannot be decoded is
listed with its reason, never dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from catdog.data.sources import RawReader, label_for_path
from catdog.errors import ImageError, TrainingError
from catdog.preprocess import CLASSES, Preprocessing, load_rgb

MANIFEST = "manifest.csv"
MAX_FILE_BYTES = 50 * 1024 * 1024

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class PhotoTensors:
    """One split: photos as uint8 [N, 3, S, S], labels (0 = cat, 1 = dog), where each came from."""

    images: torch.Tensor
    labels: torch.Tensor
    sources: tuple[str, ...]
    refused: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return int(self.labels.numel())

    def to(self, device: torch.device) -> PhotoTensors:
        """The same photos on another device (the uint8 form is 4x smaller than float)."""
        return PhotoTensors(
            self.images.to(device), self.labels.to(device), self.sources, self.refused
        )

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels.cpu(), minlength=len(CLASSES)).tolist()
        return dict(zip(CLASSES, counts, strict=True))


def _files(root: Path) -> list[Path]:
    """Every file under `root`, following symlinked folders (each real folder once)."""
    found: list[Path] = []
    seen: set[Path] = set()
    pending = [root]
    while pending:
        folder = pending.pop()
        real = folder.resolve()
        if real in seen:
            continue
        seen.add(real)
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append(entry)
            elif entry.is_file():
                found.append(entry)
    return sorted(found)


def list_photos(root: Path) -> list[tuple[Path, int]]:
    """Every file under a class-named folder (cat/cats/dog/dogs, any case, any depth), sorted.
    Symlinked folders are followed: a data set assembled from links reads like a copy."""
    photos = []
    for path in _files(root):
        label = label_for_path(path.relative_to(root.parent))
        if label is not None:
            photos.append((path, CLASSES.index(label)))
    return photos


@dataclass(frozen=True)
class SplitPhotos:
    """Where one split's photos are: files relative to `root`, each with its label."""

    root: Path
    items: tuple[tuple[str, int], ...]


def manifest_split(data: Path, raw: Path, split: str) -> SplitPhotos:
    """The originals the data stage kept in `split` (manifest.csv rows), under the raw root."""
    items: list[tuple[str, int]] = []
    with (data / MANIFEST).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["status"] == "kept" and row["split"] == split:
                items.append((row["source_path"], CLASSES.index(row["label"])))
    return SplitPhotos(raw, tuple(sorted(items)))


def folder_split(folder: Path) -> SplitPhotos:
    """A class-folder tree's photos, relative to the folder."""
    return SplitPhotos(
        folder, tuple((str(p.relative_to(folder)), label) for p, label in list_photos(folder))
    )


def _decode(reader: RawReader, source: str, preprocessing: Preprocessing) -> np.ndarray | str:
    """An HWC uint8 array, as `Preprocessing.__call__` computes it before normalising, or the
    reason the photo was refused."""
    try:
        data = reader.read(source, MAX_FILE_BYTES)
        if len(data) > MAX_FILE_BYTES:
            return "too_many_bytes"
        image = preprocessing.resize(load_rgb(data, draft_size=preprocessing.decode_size))
    except ImageError as exc:
        return exc.reason
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return np.asarray(image, dtype=np.uint8)


def decode_photos(
    photos: SplitPhotos | Path,
    preprocessing: Preprocessing,
    *,
    limit: int | None = None,
    workers: int = 2,
    on_decoded: Callable[[int], None] | None = None,
) -> PhotoTensors:
    """Decode a split (or a class-folder tree); `limit` keeps a fixed, class-mixed subset."""
    split = folder_split(photos) if isinstance(photos, Path) else photos
    items = list(split.items)
    if limit is not None and limit < len(items):
        keep = np.random.default_rng(0).permutation(len(items))[:limit]
        items = [items[i] for i in sorted(keep)]
    if not items:
        raise TrainingError(
            f"no photos under cat/ or dog/ folders in {split.root}", reason="no_data"
        )
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    refused: list[tuple[str, str]] = []
    reader = RawReader(split.root)
    try:
        # Pillow decodes without the GIL: threads share the cores.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            decoded = pool.map(lambda item: _decode(reader, item[0], preprocessing), items)
            for (source, label), result in zip(items, decoded, strict=True):
                if isinstance(result, str):
                    refused.append((source, result))
                else:
                    arrays.append(result)
                    labels.append(label)
                    sources.append(source)
                if on_decoded is not None:
                    on_decoded(1)
    finally:
        reader.close()
    if not arrays:
        raise TrainingError(
            f"none of the {len(items)} photos in {split.root} decoded", reason="no_data"
        )
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return PhotoTensors(images, torch.tensor(labels), tuple(sources), tuple(refused))


def split_folders(data: Path, splits: Sequence[str] = SPLITS) -> dict[str, Path]:
    """The split folders present under a prepared data set; train and val are required."""
    if not data.is_dir():
        raise TrainingError(
            f"no prepared data at {data}; run `catdog data prepare` first", reason="no_data"
        )
    found = {split: data / split for split in splits if (data / split).is_dir()}
    missing = [split for split in ("train", "val") if split in splits and split not in found]
    if missing:
        raise TrainingError(
            f"{data} has no {' or '.join(missing)} folder; expected the output of "
            "`catdog data prepare` (train/, val/, test/ each with cat/ and dog/)",
            reason="no_data",
        )
    return found


def training_splits(data: Path, raw: Path | None) -> dict[str, SplitPhotos]:
    """The photos of each split: the data stage's originals when `data` has its manifest and
    `raw` says where the originals are, else the class folders under `data`."""
    if raw is not None and (data / MANIFEST).is_file():
        if not raw.exists():
            raise TrainingError(
                f"the original photos {raw} (train.raw) do not exist", reason="no_data"
            )
        found = {split: manifest_split(data, raw, split) for split in SPLITS}
        missing = [split for split in ("train", "val") if not found[split].items]
        if missing:
            raise TrainingError(
                f"{data / MANIFEST} keeps no photos in {' or '.join(missing)}", reason="no_data"
            )
        return {split: photos for split, photos in found.items() if photos.items}
    return {split: folder_split(folder) for split, folder in split_folders(data).items()}


def data_hash(data: Path) -> str:
    """SHA-256 of the data stage's manifest.csv, else of the sorted list of files and sizes."""
    manifest = data / "manifest.csv"
    digest = hashlib.sha256()
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    else:
        for path in sorted(p for p in data.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(data).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def normalise(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    """uint8 or 0-255 float [N, 3, S, S] to model input: Preprocessing.to_array's arithmetic."""
    shift = torch.tensor(preprocessing.mean, dtype=torch.float32) * 255.0
    scale = torch.tensor(preprocessing.std, dtype=torch.float32) * 255.0
    device = images.device
    return (images.float() - shift.to(device).view(1, 3, 1, 1)) / scale.to(device).view(1, 3, 1, 1)
