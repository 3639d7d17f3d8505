"""Where raw photos come from: every file of a folder tree or a zip, and the class of its folder.

Nothing is filtered here: README files, `Thumbs.db` and PDFs are listed like photos, so that the
manifest can say why each one was refused instead of dropping it silently.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from catdog.errors import DataError
from catdog.preprocess import CLASSES

# Folder names that give a photo its class, lower-cased: cat, cats, dog, dogs.
CLASS_FOLDERS: dict[str, str] = {name: cls for cls in CLASSES for name in (cls, f"{cls}s")}


def label_for_path(path: str | PurePath) -> str | None:
    """The class of a photo from its nearest class-named folder (`PetImages/Cat/1.jpg` -> cat).

    Folder names match case-insensitively at any depth; the file name itself never counts, so
    `misc/cat.1.jpg` has no label. The nearest folder wins: `dogs/Cat/1.jpg` is a cat.
    """
    for folder in reversed(PurePath(path).parts[:-1]):
        label = CLASS_FOLDERS.get(folder.lower())
        if label is not None:
            return label
    return None


@dataclass(frozen=True)
class RawFile:
    """One input file: its path as the manifest shows it, its class if any, its size in bytes."""

    source: str
    label: str | None
    size: int


def raw_root(raw: Path) -> Path:
    """The zip inside `raw` when `raw` is a folder that holds one zip and nothing else (what the
    pipeline's download stage leaves in data/raw), else `raw` itself."""
    if raw.is_dir():
        entries = list(raw.iterdir())
        if len(entries) == 1 and entries[0].is_file() and zipfile.is_zipfile(entries[0]):
            return entries[0]
    return raw


def list_files(raw: Path, *, exclude: Path | None = None) -> list[RawFile]:
    """Every file of `raw` (a folder or a zip) sorted by path; `exclude` skips a folder inside."""
    if raw.is_dir():
        return _list_folder(raw, exclude)
    if raw.is_file():
        if not zipfile.is_zipfile(raw):
            raise DataError(f"{raw} is neither a folder nor a zip archive")
        return _list_zip(raw)
    raise DataError(f"the raw data {raw} does not exist")


def _list_folder(raw: Path, exclude: Path | None) -> list[RawFile]:
    files = []
    skip = str(exclude)
    # Symlinked folders are followed (a data set assembled from links reads like a copy); each
    # real folder is listed once, so a link back up the tree cannot loop.
    seen: set[str] = set()
    # Plain strings, and one label per folder: listing 25,000 files takes a fraction of a second.
    pending = [(str(raw), "")]
    while pending:
        folder, prefix = pending.pop()
        real = os.path.realpath(folder)
        if real in seen:
            continue
        seen.add(real)
        # The root's own name counts, so that `--raw PetImages/Cat` still means cats.
        label = label_for_path(f"{raw.name}/{prefix}file")
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    if entry.path != skip:
                        pending.append((entry.path, f"{prefix}{entry.name}/"))
                    continue
                try:
                    size = entry.stat().st_size
                except OSError:  # a dangling link: listed, and refused as unreadable when read
                    size = 0
                files.append(RawFile(source=prefix + entry.name, label=label, size=size))
    return sorted(files, key=lambda raw_file: raw_file.source)


def _list_zip(raw: Path) -> list[RawFile]:
    with zipfile.ZipFile(raw) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
    return sorted(
        (
            RawFile(
                source=info.filename,
                label=label_for_path(PurePosixPath(info.filename)),
                size=info.file_size,
            )
            for info in members
        ),
        key=lambda raw_file: raw_file.source,
    )


class RawReader:
    """Reads input files by their manifest path, keeping a zip archive open across reads."""

    def __init__(self, raw: Path) -> None:
        self._root = raw
        self._archive = zipfile.ZipFile(raw) if raw.is_file() else None

    def read(self, source: str, limit: int) -> bytes:
        """Up to `limit` + 1 bytes of one input file (more means too big: a zip member can lie
        about its size). OSError or zipfile.BadZipFile when it cannot be read."""
        if self._archive is not None:
            with self._archive.open(source) as member:
                return member.read(limit + 1)
        with (self._root / source).open("rb") as handle:
            # read(limit + 1) alone would allocate limit + 1 bytes for every 20 KB photo: ask for
            # what the file holds, then for the rest in case it grew meanwhile.
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(min(size, limit) + 1)
            if len(data) > size:
                data += handle.read(limit + 1 - len(data))
            return data

    def close(self) -> None:
        """Release the zip archive, if any."""
        if self._archive is not None:
            self._archive.close()
