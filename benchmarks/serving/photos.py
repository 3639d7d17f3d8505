"""Real photos for the load tests, read into memory once so that no run waits on the disk."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from pathlib import Path

from catdog.errors import ImageError
from catdog.preprocess import load_rgb

# The full data set on the project's machines, else the 200 photos bundled with the repo.
FULL_DATASET = Path("/work/shared/datasets/petimages-8k")
BUNDLED_SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "petimages"
DEFAULT_PHOTOS = 400


@dataclass(frozen=True)
class Photo:
    """One JPEG as uploaded: its file name and its bytes."""

    name: str
    data: bytes


def default_photo_dir() -> Path:
    """petimages-8k where it exists, else the bundled sample."""
    return FULL_DATASET if FULL_DATASET.is_dir() else BUNDLED_SAMPLE


def load_photos(root: Path, limit: int = DEFAULT_PHOTOS) -> list[Photo]:
    """Up to `limit` decodable JPEGs, classes alternating, in a fixed order (runs are comparable).

    Photos that cannot be decoded are skipped: the benchmark measures classification, and a
    refused upload (422) would be cheaper than a real one and flatter the figures.
    """
    folders = sorted({p.parent for p in root.rglob("*.jpg")})
    per_folder = [sorted(f.glob("*.jpg"), key=lambda p: p.name) for f in folders]
    photos: list[Photo] = []
    for path in itertools.chain.from_iterable(itertools.zip_longest(*per_folder)):
        if len(photos) >= limit:
            break
        if path is None:
            continue
        data = path.read_bytes()
        try:
            load_rgb(data)
        except ImageError:
            continue
        photos.append(Photo(path.name, data))
    if not photos:
        raise FileNotFoundError(f"no decodable .jpg photos under {root}")
    return photos


def add_photo_arguments(parser: argparse.ArgumentParser) -> None:
    """--photos and --limit-photos, the same in every benchmark script."""
    parser.add_argument(
        "--photos",
        type=Path,
        default=None,
        help=f"photo folder (default: {FULL_DATASET} if present, else the bundled sample)",
    )
    parser.add_argument(
        "--limit-photos",
        type=int,
        default=DEFAULT_PHOTOS,
        help="photos read into memory and cycled (default: %(default)s)",
    )


def photos_from_args(args: argparse.Namespace) -> tuple[Path, list[Photo]]:
    """The folder the flags name and its photos, loaded."""
    root: Path = args.photos or default_photo_dir()
    return root, load_photos(root, args.limit_photos)
