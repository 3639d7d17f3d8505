"""Finding files and their classes: every file listed, class folders matched at any depth."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from catdog.data.sources import RawReader, label_for_path, list_files
from catdog.errors import DataError
from catdog.preprocess import CLASSES


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("Cat/1.jpg", "cat"),
        ("cat/1.jpg", "cat"),
        ("CATS/1.jpg", "cat"),
        ("Dog/1.jpg", "dog"),
        ("dogs/1.jpg", "dog"),
        ("PetImages/Cat/1.jpg", "cat"),
        ("kagglecatsanddogs_5340/PetImages/Dog/12499.jpg", "dog"),
        ("shelter/2024/march/Dogs/intake/1.jpg", "dog"),
        ("dogs/Cat/1.jpg", "cat"),  # the nearest class folder wins
        ("/home/dogs/data/cats/1.jpg", "cat"),
        ("misc/cat.1.jpg", None),  # the file name is not a folder
        ("catalogue/1.jpg", None),
        ("hotdogs/1.jpg", None),
        ("readme.txt", None),
        ("PetImages/readme[1].txt", None),
    ],
)
def test_label_for_path_matches_class_folders_case_insensitively(
    path: str, label: str | None
) -> None:
    assert label_for_path(path) == label
    assert label_for_path(PurePosixPath(path)) == label


def test_every_class_has_folder_names() -> None:
    assert {label_for_path(f"{cls}/x.jpg") for cls in CLASSES} == set(CLASSES)


def test_list_files_lists_everything_sorted_with_labels(tmp_path: Path) -> None:
    for name in ["PetImages/Cat/1.jpg", "PetImages/Cat/Thumbs.db", "PetImages/Dog/2.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 3)
    (tmp_path / "readme[1].txt").write_text("hello")
    (tmp_path / ".hidden").write_text("")
    files = list_files(tmp_path)
    assert [(f.source, f.label, f.size) for f in files] == [
        (".hidden", None, 0),
        ("PetImages/Cat/1.jpg", "cat", 3),
        ("PetImages/Cat/Thumbs.db", "cat", 3),
        ("PetImages/Dog/2.jpg", "dog", 3),
        ("readme[1].txt", None, 5),
    ]


def test_list_files_uses_the_root_folder_name(tmp_path: Path) -> None:
    (tmp_path / "Cat").mkdir()
    (tmp_path / "Cat" / "1.jpg").write_bytes(b"x")
    assert [f.label for f in list_files(tmp_path / "Cat")] == ["cat"]


def test_list_files_skips_the_excluded_folder(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.jpg").write_bytes(b"x")
    (tmp_path / "prepared" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "prepared" / "train" / "cat" / "old.jpg").write_bytes(b"x")
    assert [f.source for f in list_files(tmp_path, exclude=tmp_path / "prepared")] == ["cat/1.jpg"]


def test_dangling_link_is_listed_not_dropped(tmp_path: Path) -> None:
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    files = list_files(tmp_path)
    assert [(f.source, f.size) for f in files] == [("dog/gone.jpg", 0)]
    reader = RawReader(tmp_path)
    with pytest.raises(OSError):
        reader.read("dog/gone.jpg", 100)


def test_list_and_read_a_zip(tmp_path: Path) -> None:
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("PetImages/", "")
        zf.writestr("PetImages/Cat/1.jpg", b"cat bytes")
        zf.writestr("PetImages/Dog/1.jpg", b"dog bytes!")
        zf.writestr("readme[1].txt", b"readme")
    files = list_files(archive)
    assert [(f.source, f.label, f.size) for f in files] == [
        ("PetImages/Cat/1.jpg", "cat", 9),
        ("PetImages/Dog/1.jpg", "dog", 10),
        ("readme[1].txt", None, 6),
    ]
    reader = RawReader(archive)
    try:
        assert reader.read("PetImages/Dog/1.jpg", 100) == b"dog bytes!"
        assert reader.read("PetImages/Dog/1.jpg", 3) == b"dog "  # the limit, and one byte more
    finally:
        reader.close()


def test_missing_or_unsupported_raw_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_files(tmp_path / "missing")
    (tmp_path / "photos.tar").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="neither a folder nor a zip"):
        list_files(tmp_path / "photos.tar")


def test_read_a_file_up_to_the_limit_and_one_byte_more(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "1.jpg").write_bytes(b"cat bytes")
    reader = RawReader(tmp_path)
    assert reader.read("cat/1.jpg", 100) == b"cat bytes"
    assert reader.read("cat/1.jpg", 9) == b"cat bytes"
    assert reader.read("cat/1.jpg", 3) == b"cat "  # over the limit: it shows


def test_a_file_that_grew_after_its_size_was_taken_is_read_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dog").mkdir()
    (tmp_path / "dog" / "1.jpg").write_bytes(b"0123456789")
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> os.stat_result:  # the size before a writer appended to it
        fields = list(real_fstat(fd))
        fields[stat.ST_SIZE] = 4
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", stale_fstat)
    reader = RawReader(tmp_path)
    assert reader.read("dog/1.jpg", 100) == b"0123456789"
    assert reader.read("dog/1.jpg", 6) == b"0123456"
