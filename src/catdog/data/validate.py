"""Checking one raw file: read, hash, decode in full, make it upright RGB, resize, fingerprint.

This runs in worker processes, so what it returns is small (hashes, sizes, a reason). The resized
photo itself is written where it will most likely stay: `<split>/<label>/<sha256>.jpg` of the data
set being built, with the split its own content hash gives. Only a photo whose near-duplicate group
goes elsewhere, or that is refused after all, is moved or deleted once every file is checked: a few
files, instead of renaming every photo out of a staging folder at the end.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image

from catdog.data.dedup import perceptual_hash
from catdog.data.manifest import output_path
from catdog.data.params import SPLITS, SplitParams
from catdog.data.sources import RawFile, RawReader
from catdog.data.split import bucket
from catdog.errors import ImageError
from catdog.preprocess import CLASSES, Preprocessing, decode

_NO_LABEL = "not inside a class folder (cat, cats, dog or dogs, any case, at any depth)"


@dataclass(frozen=True)
class CheckSettings:
    """What every worker needs to check files of one run (sent once per chunk, so kept small)."""

    raw: Path
    out: Path  # the data set being built
    split: SplitParams
    image_size: int
    resample: str
    jpeg_quality: int
    max_pixels: int
    max_file_bytes: int


@dataclass(frozen=True)
class Checked:
    """The verdict on one file: `reason` is None for a good photo, else why it is refused."""

    source: str
    label: str | None
    sha256: str = ""
    width: int | None = None
    height: int | None = None
    phash: int | None = None
    reason: str | None = None
    detail: str = ""
    written: str = ""  # the resized photo, relative to the data set being built

    @property
    def ok(self) -> bool:
        """True when the file decoded into a photo that can be kept."""
        return self.reason is None


class Checker:
    """Checks files one by one and writes the resized photos as `<split>/<label>/<sha256>.jpg`."""

    def __init__(self, settings: CheckSettings) -> None:
        self.settings = settings
        self._reader = RawReader(settings.raw)
        self._preprocessing = Preprocessing(size=settings.image_size, resample=settings.resample)
        for split in SPLITS:
            for cls in CLASSES:
                (settings.out / split / cls).mkdir(parents=True, exist_ok=True)

    def close(self) -> None:
        """Release the input (an open zip archive)."""
        self._reader.close()

    def check(self, raw_file: RawFile) -> Checked:
        """Decode one file in full and say whether it is a usable photo, and if not, why."""
        source, label = raw_file.source, raw_file.label
        limit = self.settings.max_file_bytes
        if label is None:
            return Checked(source, label, reason="no_label", detail=_NO_LABEL)
        if raw_file.size > limit:
            detail = f"{raw_file.size:,} bytes is over the limit of {limit:,}"
            return Checked(source, label, reason="too_many_bytes", detail=detail)
        try:
            data = self._reader.read(source, limit)
        except (OSError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
            return Checked(
                source, label, reason="unreadable", detail=f"cannot read the file: {exc}"
            )
        if len(data) > limit:
            detail = f"more than the limit of {limit:,} bytes once read"
            return Checked(source, label, reason="too_many_bytes", detail=detail)
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            image, width, height = decode(
                data,
                max_pixels=self.settings.max_pixels,
                draft_size=self._preprocessing.decode_size,
            )
        except ImageError as exc:
            return Checked(source, label, sha256, reason=exc.reason, detail=exc.detail)
        except Exception as exc:  # a decoder bug must refuse one file, not stop a 25,000-photo run
            detail = f"cannot decode the image: {type(exc).__name__}: {exc}"
            return Checked(source, label, sha256, reason="undecodable", detail=detail)
        resized = self._preprocessing.resize(image)
        written = self._write(
            output_path(bucket(sha256, self.settings.split), label, sha256), resized
        )
        phash = perceptual_hash(resized)
        return Checked(source, label, sha256, width, height, phash, written=written)

    def _write(self, path: str, image: Image.Image) -> str:
        try:
            handle = (self.settings.out / path).open("xb")
        except FileExistsError:  # an exact copy of the same class: the first one's file serves
            return path
        with handle:  # straight into the file: no in-memory copy of every photo
            image.save(handle, format="JPEG", quality=self.settings.jpeg_quality)
        return path


@cache
def _worker_checker(settings: CheckSettings) -> Checker:
    """One Checker per worker process and run, so a zip archive is opened once, not per chunk."""
    return Checker(settings)


def check_chunk(settings: CheckSettings, files: list[RawFile]) -> list[Checked]:
    """Worker-process entry point: check a chunk of files."""
    checker = _worker_checker(settings)
    return [checker.check(raw_file) for raw_file in files]
