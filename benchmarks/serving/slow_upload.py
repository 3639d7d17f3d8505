"""A client that sends a multipart body slowly over a raw socket, at a set byte rate: what httpx
cannot do, and what the service's body budget and body deadline are there for. The resilience
benchmark and the bounded-memory tests both use it."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

MIB = 1024 * 1024
BOUNDARY = "catdogslow"
HOST = "127.0.0.1"


def request_head(path: str, length: int) -> bytes:
    """The request line and headers of a multipart POST of `length` body bytes."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {length}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nConnection: close\r\n\r\n"
    ).encode()


def multipart_body(files: Sequence[bytes], field: str = "files") -> list[bytes]:
    """A multipart body's pieces: each of `files` as form field `field`, then the end."""
    parts: list[bytes] = []
    for i, data in enumerate(files):
        disposition = f'form-data; name="{field}"; filename="upload-{i}.jpg"'
        head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
        parts += [f"{head}Content-Type: image/jpeg\r\n\r\n".encode(), data, b"\r\n"]
    return [*parts, f"--{BOUNDARY}--\r\n".encode()]


def status_of(sock: socket.socket, timeout_s: float = 60.0) -> int | None:
    """The answer's status code, or None if the service closed without one."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return None
            data += chunk
    except OSError:
        return None
    return int(data.split(b" ", 2)[1])


def send_slowly(
    port: int, parts: Sequence[bytes], rate: float, path: str = "/predict/batch"
) -> int | None:
    """Send one body at about `rate` bytes/s, a MiB at a time; the answer's status. A service
    that refuses early answers and closes: the rest is not sent."""
    with socket.create_connection((HOST, port)) as sock:
        sock.sendall(request_head(path, sum(map(len, parts))))
        try:
            for part in parts:
                for start in range(0, len(part), MIB):
                    piece = part[start : start + MIB]
                    sock.sendall(piece)
                    time.sleep(len(piece) / rate)
        except OSError:
            pass
        return status_of(sock)
