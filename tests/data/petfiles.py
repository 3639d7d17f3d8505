"""What the data tests build on: the sample's path, photos re-encoded in any format, a PNG that
lies about its size, and a local HTTP server with Range support that can drop its connection."""

from __future__ import annotations

import io
import re
import socket
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from catdog.data.dedup import perceptual_hash
from catdog.data.params import DataParams
from catdog.preprocess import Preprocessing, load_rgb

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "petimages"

# Copies photos into a raw folder and returns it (the `make_raw` fixture).
MakeRaw = Callable[[Iterable[Path]], Path]


def stage_phash(data: bytes, params: DataParams) -> int:
    """The perceptual hash the data stage records for a file: of the decoded photo, resized to
    `params.image_size` with `params.resample`."""
    resize = Preprocessing(size=params.image_size, resample=params.resample).resize
    return perceptual_hash(resize(load_rgb(data, draft_size=params.image_size)))


def hamming(first: int, second: int) -> int:
    """Bits in which two hashes differ."""
    return (first ^ second).bit_count()


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """An image as file bytes in the given format."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels in a few dozen bytes: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@dataclass
class Behaviour:
    """What the test server does: its file, whether it honours Range, when it drops."""

    payload: bytes
    honour_range: bool = True
    drop_after: int = 0  # bytes of a response sent before the connection is cut...
    drops: int = 0  # ...in this many responses
    ranges: list[str | None] = field(default_factory=list)


class PetServer(ThreadingHTTPServer):
    behaviour: Behaviour


class Handler(BaseHTTPRequestHandler):
    server: PetServer

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        if self.path != "/kagglecatsanddogs.zip":
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        behaviour.ranges.append(requested)
        size, start = len(behaviour.payload), 0
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        if match and behaviour.honour_range:
            start = int(match.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        body = behaviour.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour.drops:
            behaviour.drops -= 1
            self.wfile.write(body[: behaviour.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test output is not the place for an access log."""
