"""A minimal HTTP/1.1 keep-alive client: what `catdog simulate` and the serving benchmarks send.

On 2 cores the load generator shares the CPU with the server it measures, so it must cost as
little as possible: requests are built once as bytes and replayed; a response is read only as far
as its status and body. A general client (httpx) spends several times more CPU per request, which
would be taken from the server and counted against it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

BOUNDARY = "catdog-bench-7MA4YWxkTrZu0gW"


def build_upload(
    host: str, port: int, path: str, *, field: str, filename: str, data: bytes
) -> bytes:
    """A complete multipart/form-data POST carrying one file, as a browser or curl -F sends it."""
    body = b"".join(
        [
            f"--{BOUNDARY}\r\n".encode(),
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: image/jpeg\r\n\r\n",
            data,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    )
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: catdog-bench\r\n"
        "Accept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def build_json_post(
    host: str, port: int, path: str, payload: dict[str, Any], *, token: str | None = None
) -> bytes:
    """A JSON POST (feedback), with a bearer token when given."""
    body = json.dumps(payload).encode()
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "User-Agent: catdog-simulate\r\n"
        "Accept: application/json\r\n"
        "Content-Type: application/json\r\n"
        f"{auth}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


@dataclass(frozen=True)
class Response:
    """What the load client keeps of an answer."""

    status: int
    body: bytes


class Connection:
    """One TCP connection to the server, opened on first use and reopened after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> Response:
        """Send one pre-built request and read its whole response; closes the socket on error.

        A kept-alive socket may have been closed by the server while idle (uvicorn does after
        5 s): such a request is sent again once on a new socket, as every HTTP client does.
        """
        reused = self._writer is not None
        try:
            return await self._exchange(raw)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
        return await self._exchange(raw)

    async def _exchange(self, raw: bytes) -> Response:
        try:
            if self._reader is None or self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._writer.write(raw)
            await self._writer.drain()
            response, keep_alive = await _read_response(self._reader)
        except BaseException:
            self.close()
            raise
        if not keep_alive:
            self.close()
        return response

    def close(self) -> None:
        """Drop the socket; the next request opens a new one."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """Status line, headers, then a Content-Length or chunked body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip().lower()
    if headers.get("transfer-encoding") == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(status, body), headers.get("connection") != "close"


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
