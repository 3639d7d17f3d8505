"""Decode-once data: the originals as serving sees them, labels from folders, refusals listed."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from photo_sets import sample_photos, write_prepared

from catdog.data.params import DataParams
from catdog.data.prepare import prepare_dataset
from catdog.errors import TrainingError
from catdog.preprocess import Preprocessing, load_rgb
from catdog.training.data import (
    data_hash,
    decode_photos,
    list_photos,
    normalise,
    split_folders,
    training_splits,
)
from catdog.training.models import input_normalisation


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The data stage run for real on 40 bundled photos: (prepared folder, raw folder)."""
    root = tmp_path_factory.mktemp("pipeline")
    raw = root / "raw"
    for photo, label in sample_photos(20):
        (raw / label.title()).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, raw / label.title() / photo.name)
    out = root / "prepared"
    prepare_dataset(raw, out, DataParams(image_size=64, workers=1), show_progress=False)
    return out, raw


def test_training_sees_exactly_what_serving_computes_from_the_original_bytes(
    prepared: tuple[Path, Path],
) -> None:
    """prepare -> the splits training decodes -> normalised tensors, against the service's
    preprocessing of each original file's bytes: equal within float rounding, photo for photo."""
    out, raw = prepared
    mean, std = input_normalisation("efficientnet_lite0")
    preprocessing = Preprocessing(size=80, mean=mean, std=std)
    splits = training_splits(out, raw)
    seen = 0
    for photos in splits.values():
        decoded = decode_photos(photos, preprocessing)
        ours = normalise(decoded.images, preprocessing).numpy()
        served = np.stack([preprocessing((raw / s).read_bytes()) for s in decoded.sources])
        np.testing.assert_allclose(ours, served, rtol=0, atol=1e-5)
        seen += len(decoded)
    assert seen == 40
    assert {split for split in splits} >= {"train", "val"}


def test_the_prepared_copies_are_not_what_serving_sees(prepared: tuple[Path, Path]) -> None:
    """Why training reads the originals: the data stage's resized JPEG copies differ."""
    out, raw = prepared
    preprocessing = Preprocessing(size=64)
    with (out / "manifest.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "train"]
    assert rows
    for row in rows:
        copy = preprocessing((out / row["output_path"]).read_bytes())
        original = preprocessing((raw / row["source_path"]).read_bytes())
        assert float(np.abs(copy - original).mean()) > 0.005, row["source_path"]


def test_a_manifest_without_raw_photos_is_a_clear_error(prepared: tuple[Path, Path]) -> None:
    out, raw = prepared
    with pytest.raises(TrainingError, match="do not exist"):
        training_splits(out, raw.parent / "elsewhere")


def test_symlinked_class_folders_are_followed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    for photo, label in sample_photos(2):
        (store / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, store / label / photo.name)
    data = tmp_path / "data"
    data.mkdir()
    (data / "Cat").symlink_to(store / "cat", target_is_directory=True)
    (data / "Dog").symlink_to(store / "dog", target_is_directory=True)
    (data / "loop").symlink_to(data, target_is_directory=True)  # a cycle is read once
    found = sorted((p.relative_to(data).as_posix(), label) for p, label in list_photos(data))
    assert [label for _, label in found] == [0, 0, 1, 1]
    assert all(path.startswith(("Cat/", "Dog/")) for path, _ in found)


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
