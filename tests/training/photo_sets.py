"""Small prepared data sets built from the bundled real photos, for the training tests.

The layout is the data stage's output (split/class/photo.jpg, already resized), built here so
that these tests do not wait on the data stage.
"""

from __future__ import annotations

from pathlib import Path

from catdog.preprocess import Preprocessing, load_rgb
from catdog.training.params import AugmentParams

# Augmentation that leaves photos as they are: what the tests use when they check the rest.
NO_AUGMENT = AugmentParams(
    crop_scale=(1.0, 1.0),
    crop_ratio=(1.0, 1.0),
    hflip=False,
    brightness=0,
    contrast=0,
    saturation=0,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "petimages"


def sample_photos(per_class: int, *, skip: int = 0) -> list[tuple[Path, str]]:
    """The first `per_class` cat and dog photos of the bundled sample (after `skip`)."""
    chosen = []
    for folder, label in (("Cat", "cat"), ("Dog", "dog")):
        photos = sorted((SAMPLES / folder).glob("*.jpg"))[skip : skip + per_class]
        chosen += [(photo, label) for photo in photos]
    return chosen


def write_prepared(root: Path, splits: dict[str, int], *, size: int = 64) -> Path:
    """`root/{split}/{cat,dog}/*.jpg` at `size` px, `splits` photos per class, no overlap."""
    preprocessing = Preprocessing(size=size)
    skip = 0
    for split, per_class in splits.items():
        for photo, label in sample_photos(per_class, skip=skip):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            preprocessing.resize(load_rgb(photo)).save(folder / photo.name, quality=95)
        skip += per_class
    return root
