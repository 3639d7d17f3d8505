"""Decode-once data: labels from folder names, refusals listed, serving-identical normalisation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from photo_sets import sample_photos, write_prepared

from catdog.errors import TrainingError
from catdog.preprocess import Preprocessing, load_rgb
from catdog.training.data import data_hash, decode_photos, list_photos, normalise, split_folders


def test_normalisation_on_the_device_equals_serving_preprocessing(tmp_path: Path) -> None:
    """Training evaluates exactly what serving computes, photo for photo (raw shelter photos)."""
    preprocessing = Preprocessing(size=72)
    for photo, label in sample_photos(6):
        (tmp_path / label).mkdir(exist_ok=True)
        shutil.copy(photo, tmp_path / label / photo.name)
    decoded = decode_photos(tmp_path, preprocessing)
    ours = normalise(decoded.images, preprocessing).numpy()
    theirs = np.stack([preprocessing(tmp_path / source) for source in decoded.sources])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    assert decoded.images.dtype == torch.uint8
    assert decoded.images.shape == (12, 3, 72, 72)


def test_labels_come_from_class_folders_in_any_case_and_depth(tmp_path: Path) -> None:
    photos = sample_photos(2)
    places = ["Cats/a.jpg", "deep/CAT/b.jpg", "Dog/c.jpg", "x/dogs/d.jpg", "notes/e.jpg"]
    for (photo, _), place in zip(photos, places[:4], strict=True):
        (tmp_path / place).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, tmp_path / place)
    (tmp_path / "notes").mkdir()
    shutil.copy(photos[0][0], tmp_path / places[4])
    found = {path.relative_to(tmp_path).as_posix(): label for path, label in list_photos(tmp_path)}
    assert found == {"Cats/a.jpg": 0, "deep/CAT/b.jpg": 0, "Dog/c.jpg": 1, "x/dogs/d.jpg": 1}


def test_an_undecodable_photo_is_listed_with_its_reason(tmp_path: Path) -> None:
    write_prepared(tmp_path, {"train": 3})
    (tmp_path / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (tmp_path / "train" / "dog" / "empty.jpg").write_bytes(b"")
    decoded = decode_photos(tmp_path / "train", Preprocessing(size=64))
    assert len(decoded) == 6
    reasons = {Path(path).name: reason for path, reason in decoded.refused}
    assert reasons == {"broken.jpg": "not_an_image", "empty.jpg": "empty_file"}


def test_limit_keeps_a_fixed_subset(tmp_path: Path) -> None:
    write_prepared(tmp_path, {"train": 10})
    first = decode_photos(tmp_path / "train", Preprocessing(size=64), limit=7)
    again = decode_photos(tmp_path / "train", Preprocessing(size=64), limit=7)
    assert len(first) == 7
    assert first.sources == again.sources


def test_missing_splits_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="catdog data prepare"):
        split_folders(tmp_path / "nothing")
    write_prepared(tmp_path, {"train": 1})
    with pytest.raises(TrainingError, match="no val folder"):
        split_folders(tmp_path)


def test_data_hash_prefers_the_manifest_and_follows_the_files(tmp_path: Path) -> None:
    write_prepared(tmp_path, {"train": 2, "val": 1})
    by_files = data_hash(tmp_path)
    (tmp_path / "val" / "cat" / "extra.jpg").write_bytes(b"x")
    assert data_hash(tmp_path) != by_files
    (tmp_path / "manifest.csv").write_text("source,split\na.jpg,train\n")
    by_manifest = data_hash(tmp_path)
    (tmp_path / "val" / "cat" / "extra.jpg").unlink()
    assert data_hash(tmp_path) == by_manifest


def test_decoded_photos_match_a_plain_decode(tmp_path: Path) -> None:
    write_prepared(tmp_path, {"train": 2}, size=64)
    decoded = decode_photos(tmp_path / "train", Preprocessing(size=48))
    first = tmp_path / "train" / decoded.sources[0]
    expected = np.asarray(Preprocessing(size=48).resize(load_rgb(first, draft_size=48)))
    np.testing.assert_array_equal(decoded.images[0].permute(1, 2, 0).numpy(), expected)
