"""Fixtures for the data stage: real sample photos, and awkward files made from them on the fly."""

from __future__ import annotations

import io
import shutil
import threading
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from petfiles import SAMPLE, Behaviour, Handler, MakeRaw, PetServer, encode, png_header_only
from PIL import Image

from catdog.data.params import DataParams


@pytest.fixture(scope="session")
def sample_photos() -> list[Path]:
    """The 200 bundled real photos, cats first."""
    photos = sorted(SAMPLE.glob("*/*.jpg"))
    assert len(photos) == 200
    return photos


@pytest.fixture
def fast_params() -> DataParams:
    """Defaults, with small outputs and one process: the logic under test, in little time."""
    return DataParams(image_size=64, workers=1)


@pytest.fixture
def make_raw(tmp_path: Path) -> MakeRaw:
    """Copy photos into `tmp_path/raw/PetImages/<Cat|Dog>/`, the Microsoft layout."""

    def make(photos: Iterable[Path]) -> Path:
        raw = tmp_path / "raw"
        for photo in photos:
            target = raw / "PetImages" / photo.parent.name / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photo, target)
        return raw

    return make


@pytest.fixture(scope="session")
def refused_files(sample_photos: list[Path]) -> dict[str, tuple[bytes, str]]:
    """File name -> (bytes, the reason it must be refused with). Each kind the spec names."""
    real = sample_photos[0].read_bytes()
    return {
        "empty.jpg": (b"", "empty_file"),
        "truncated_half.jpg": (real[: len(real) // 2], "truncated"),
        "truncated_no_end.jpg": (real[:-2], "truncated"),
        "notes.jpg": (b"just some text, saved with a photo's name\n" * 20, "not_an_image"),
        "page.jpg": (
            b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
            "unsupported_format",
        ),
        "scan.jpg": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "unsupported_format"),
        "drawing.png": (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>',
            "unsupported_format",
        ),
        "bomb.png": (png_header_only(100_000, 100_000), "too_many_pixels"),
        "noise.jpg": (np.random.default_rng(0).bytes(4096), "not_an_image"),
        "Thumbs.db": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 1024, "not_an_image"),
    }


@pytest.fixture(scope="session")
def awkward_photos(sample_photos: list[Path]) -> dict[str, bytes]:
    """File name -> bytes of real photos in every awkward mode and format that must be kept."""
    photo = Image.open(sample_photos[1]).convert("RGB")
    grey = photo.convert("L")
    alpha = photo.convert("RGBA")
    alpha.putalpha(128)
    transparent_palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    transparent_palette.info["transparency"] = 0
    sixteen = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)
    first, second = photo.copy(), photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    animated = io.BytesIO()
    first.save(animated, format="GIF", save_all=True, append_images=[second], duration=100)
    return {
        "grey.png": encode(grey, "PNG"),
        "grey_alpha.png": encode(grey.convert("LA"), "PNG"),
        "palette.gif": encode(photo.convert("P"), "GIF"),
        "palette_transparent.png": encode(transparent_palette, "PNG"),
        "rgba.png": encode(alpha, "PNG"),
        "cmyk.jpg": encode(photo.convert("CMYK"), "JPEG"),
        "sixteen_bit.png": encode(sixteen, "PNG"),
        "animated.gif": animated.getvalue(),
        "bilevel.png": encode(grey.convert("1"), "PNG"),
        "photo.webp": encode(photo, "WEBP"),
        "photo.tiff": encode(photo, "TIFF"),
    }


@pytest.fixture(scope="session")
def pet_zip(tmp_path_factory: pytest.TempPathFactory, sample_photos: list[Path]) -> bytes:
    """A small zip in the Microsoft layout, with the Microsoft zip's oddities."""
    path = tmp_path_factory.mktemp("zip") / "pets.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for photo in sample_photos[:3] + sample_photos[100:103]:
            archive.write(photo, f"PetImages/{photo.parent.name}/{photo.name}")
        archive.writestr("PetImages/Cat/666.jpg", b"")
        archive.writestr("PetImages/Dog/Thumbs.db", b"\xd0\xcf\x11\xe0" + b"\0" * 100)
        archive.writestr("readme[1].txt", "Kaggle Cats and Dogs Dataset")
    return path.read_bytes()


@pytest.fixture
def pet_server(pet_zip: bytes) -> Iterator[PetServer]:
    """A local HTTP server of `pet_zip` at /kagglecatsanddogs.zip, with Range support."""
    httpd = PetServer(("127.0.0.1", 0), Handler)
    httpd.behaviour = Behaviour(payload=pet_zip)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)
