"""Bad input never gets a 5xx: every kind is refused with a 4xx and a JSON reason.

All files are made here: text, empty, truncated and corrupted JPEGs, oversized uploads (with
and without Content-Length), a decompression bomb, SVG, PDF and HTML.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from serving_support import RED, SAMPLES, encode, serving, solid

from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio

PHOTO = (SAMPLES / "Cat" / "cat.1136.jpg").read_bytes()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` pixels in a few bytes: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def corrupted_jpeg() -> bytes:
    """The sample photo with an impossible Huffman table: it opens, but cannot be decoded."""
    data = bytearray(PHOTO)
    table = data.index(b"\xff\xc4")
    data[table + 5 : table + 21] = b"\xff" * 16
    return bytes(data)


BAD_FILES = {
    "text": (b"just some notes, not a photo\n", 422, {"not_an_image"}),
    "empty": (b"", 422, {"empty_file"}),
    "truncated_jpeg": (PHOTO[: len(PHOTO) // 2], 422, {"truncated"}),
    "corrupted_jpeg": (corrupted_jpeg(), 422, {"undecodable"}),
    "jpeg_header_only": (PHOTO[:700], 422, {"truncated", "undecodable"}),
    "svg": (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10" fill="red"/></svg>',
        415,
        {"unsupported_format"},
    ),
    "pdf": (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n",
        415,
        {"unsupported_format"},
    ),
    "html": (b"<!doctype html><html><body>cat</body></html>", 415, {"unsupported_format"}),
    "decompression_bomb": (png_header_only(50_000, 50_000), 413, {"too_many_pixels"}),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
async def test_bad_files_are_refused_with_a_reason(tiny_model: Path, kind: str) -> None:
    data, status, reasons = BAD_FILES[kind]
    async with serving(Settings(model=str(tiny_model))) as client:
        response = await client.post("/predict", files={"file": (f"{kind}.bin", data)})
        still_fine = await client.post("/predict", files={"file": ("red.jpg", solid(RED))})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] in reasons
    assert body["detail"]
    assert still_fine.status_code == 200


async def test_too_many_pixels_follows_the_setting(tiny_model: Path) -> None:
    big = encode(Image.new("RGB", (1200, 1000), RED))
    async with serving(Settings(model=str(tiny_model), max_pixels=1_000_000)) as client:
        response = await client.post("/predict", files={"file": ("big.jpg", big)})
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_pixels"


async def test_missing_field_is_a_422_with_a_json_reason(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model))) as client:
        nothing = await client.post("/predict")
        wrong_field = await client.post("/predict", files={"photo": ("red.jpg", solid(RED))})
        as_text = await client.post("/predict", data={"file": "not a file"})
        batch = await client.post("/predict/batch")
    for response in (nothing, wrong_field, batch):
        assert response.status_code == 422
        assert response.json()["error"] == "missing_field"
        assert "file" in response.json()["detail"]
    assert as_text.status_code == 422
    assert as_text.json()["error"] == "invalid_request"


async def test_too_many_bytes_is_413_before_the_body_is_read(tiny_model: Path) -> None:
    limit_mb = 0.05
    too_big = b"\xff\xd8" + b"\x00" * int(limit_mb * 1024 * 1024 * 2)
    async with serving(Settings(model=str(tiny_model), max_upload_mb=limit_mb)) as client:
        response = await client.post("/predict", files={"file": ("big.jpg", too_big)})
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_bytes"


async def test_too_many_bytes_without_content_length_is_counted(tiny_model: Path) -> None:
    boundary = "catdogboundary"

    async def chunked_body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        for _ in range(64):
            yield b"\x00" * 16_384
        yield f"\r\n--{boundary}--\r\n".encode()

    async with serving(Settings(model=str(tiny_model), max_upload_mb=0.5)) as client:
        response = await client.post(
            "/predict",
            content=chunked_body(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"] == "too_many_bytes"


async def test_a_file_just_over_the_limit_is_413_and_one_under_is_read(tiny_model: Path) -> None:
    limit = 60_000
    settings = Settings(model=str(tiny_model), max_upload_mb=limit / 1024 / 1024)
    fits = encode(Image.effect_noise((160, 120), 64).convert("RGB"), "PNG")
    assert len(fits) < limit
    async with serving(settings) as client:
        over = await client.post("/predict", files={"file": ("x.jpg", b"\x00" * (limit + 1))})
        under = await client.post("/predict", files={"file": ("ok.png", fits)})
    assert over.status_code == 413
    assert over.json()["error"] == "too_many_bytes"
    assert under.status_code == 200


async def test_unknown_routes_and_methods_answer_json(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model))) as client:
        missing = await client.get("/nowhere")
        wrong_method = await client.get("/predict")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
