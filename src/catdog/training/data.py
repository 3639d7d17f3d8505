"""Decode a class-folder data set once into uint8 tensors that stay on the training device.

Each photo is decoded and resized exactly as serving does it (`catdog.preprocess`), once per run;
epochs then only index, augment and normalise tensors, on the GPU when there is one. A photo that
cannot be decoded is listed with its reason, never dropped silently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from catdog.data.sources import label_for_path
from catdog.errors import ImageError, TrainingError
from catdog.preprocess import CLASSES, Preprocessing, load_rgb

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


def list_photos(root: Path) -> list[tuple[Path, int]]:
    """Every file under a class-named folder (cat/cats/dog/dogs, any case, any depth), sorted."""
    photos = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        label = label_for_path(path.relative_to(root.parent))
        if label is not None:
            photos.append((path, CLASSES.index(label)))
    return photos


def _decode(path: Path, preprocessing: Preprocessing) -> np.ndarray | str:
    """An HWC uint8 array, or the reason the photo was refused."""
    try:
        image = preprocessing.resize(load_rgb(path, draft_size=preprocessing.size))
    except ImageError as exc:
        return exc.reason
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    return np.asarray(image, dtype=np.uint8)


def decode_photos(
    root: Path,
    preprocessing: Preprocessing,
    *,
    limit: int | None = None,
    workers: int = 2,
    on_decoded: Callable[[int], None] | None = None,
) -> PhotoTensors:
    """Decode a class-folder tree; `limit` keeps a fixed, class-mixed subset (quick runs)."""
    photos = list_photos(root)
    if limit is not None and limit < len(photos):
        keep = np.random.default_rng(0).permutation(len(photos))[:limit]
        photos = [photos[i] for i in sorted(keep)]
    if not photos:
        raise TrainingError(f"no photos under cat/ or dog/ folders in {root}", reason="no_data")
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    sources: list[str] = []
    refused: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # Pillow decodes without the GIL
        decoded = pool.map(lambda item: _decode(item[0], preprocessing), photos)
        for (path, label), result in zip(photos, decoded, strict=True):
            if isinstance(result, str):
                refused.append((str(path), result))
            else:
                arrays.append(result)
                labels.append(label)
                sources.append(str(path.relative_to(root)))
            if on_decoded is not None:
                on_decoded(1)
    if not arrays:
        raise TrainingError(f"none of the {len(photos)} photos in {root} decoded", reason="no_data")
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
