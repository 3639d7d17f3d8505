"""The files of a multipart upload, parsed from the body the upload guard has already read.

FastAPI's `UploadFile` parameters cost the event loop about 0.2 ms per request: Starlette's form
parser copies each part into a spooled temporary file, awaits every write, and FastAPI then
validates the form against a generated model. The service holds the whole body in memory anyway
(`UploadGuardMiddleware` bounds it), so the upload routes parse it here in one pass of the same
python-multipart parser and keep each file as bytes. Refusals keep the shape FastAPI gave them:
422 `missing_field` or `invalid_request`, and 413 `too_many_files`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from catdog.errors import RequestRefusedError
from catdog.serving.heap import TRIM_AFTER_BYTES, release_free_memory

# Form fields besides the files that a client may send (a browser form's submit button...).
MAX_OTHER_PARTS = 16


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name its sender gave it, and its bytes."""

    filename: str | None
    data: bytes


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)


def files_in(
    body: bytes | list[bytes],
    content_type: str | None,
    name: str,
    *,
    max_files: int,
    limit_hint: str,
) -> list[Upload]:
    """Every file sent as form field `name`, in the order sent. `body`: the whole body, or
    its chunks as they arrived, which are fed to the parser one by one and let go of (the list
    is emptied), so a large body is never held twice.

    A request with no body or no such field is `missing_field`; anything but a well-formed
    multipart/form-data body, or a plain form value where a file belongs, is `invalid_request`;
    more than `max_files` files is `too_many_files`, with `limit_hint` saying what sets the limit.
    Nothing sent is dropped without a refusal.
    """
    chunks = [body] if isinstance(body, bytes) else body
    if not any(chunks):
        raise RequestRefusedError(
            f"{name}: Field required (no body was sent)", reason="missing_field"
        )
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise RequestRefusedError(
            f"{name}: send the photo as multipart/form-data "
            f"(got {(content_type or 'no Content-Type')[:60]!r})",
            reason="invalid_request",
        )
    files: list[Upload] = []
    for part in _parts(chunks, boundary, max_parts=max_files + MAX_OTHER_PARTS):
        _, disposition = parse_options_header(part.headers.get(b"content-disposition"))
        if b"name" not in disposition:  # as Starlette: a part must say which field it is
            raise RequestRefusedError(
                "a multipart part has no Content-Disposition name", reason="invalid_request"
            )
        if disposition[b"name"].decode("latin-1") != name:
            continue
        filename = disposition.get(b"filename")
        if filename is None:
            raise RequestRefusedError(
                f"{name}: a plain form value was sent where a file belongs",
                reason="invalid_request",
            )
        # One chunk (the usual case) is joined without a copy; the pieces go once joined, and
        # a large file's pieces are handed back at once: the freed pieces of every file would
        # otherwise stay resident beside their joined copies, twice the body.
        files.append(Upload(_decoded(filename), b"".join(part.chunks)))
        part.chunks.clear()
        if len(files[-1].data) > TRIM_AFTER_BYTES:
            release_free_memory()
    if not files:
        raise RequestRefusedError(f"{name}: Field required", reason="missing_field")
    if len(files) > max_files:
        raise RequestRefusedError(
            f"{len(files)} files sent as {name!r}, at most {max_files} ({limit_hint})",
            reason="too_many_files",
            http_status=413,
        )
    return files


def _decoded(filename: bytes) -> str:
    """A filename as Starlette decodes it: UTF-8, or Latin-1 when it is not UTF-8."""
    try:
        return filename.decode("utf-8")
    except UnicodeDecodeError:
        return filename.decode("latin-1")


def _parts(chunks: list[bytes], boundary: bytes, *, max_parts: int) -> list[_Part]:
    """The parts of a whole multipart body; one that ends early or runs past `max_parts`
    parts is refused rather than read in part."""
    parts: list[_Part] = []
    header = [bytearray(), bytearray()]
    ended = False

    def on_part_begin() -> None:
        if len(parts) == max_parts:
            raise RequestRefusedError(
                f"more than {max_parts} parts in one request",
                reason="too_many_files",
                http_status=413,
            )
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1].headers[bytes(header[0]).lower()] = bytes(header[1])
        header[0].clear()
        header[1].clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].chunks.append(data[start:end])

    def on_end() -> None:
        nonlocal ended
        ended = True

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_end": on_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        chunks.reverse()
        while chunks:
            parser.write(chunks.pop())
    except FormParserError as exc:  # a malformed body, or a boundary over 256 bytes
        detail = f"malformed multipart body: {exc}"
        raise RequestRefusedError(detail, reason="invalid_request") from None
    if not ended:
        detail = "the multipart body ends before its closing boundary"
        raise RequestRefusedError(detail, reason="invalid_request")
    return parts


def multipart_schema(name: str, description: str, *, many: bool) -> dict[str, Any]:
    """The OpenAPI request body FastAPI writes for an `UploadFile` parameter, so /docs still
    offers a file picker for routes that parse their own uploads."""
    file = {"type": "string", "contentMediaType": "application/octet-stream"}
    prop = {"type": "array", "items": file} if many else file
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {name: {**prop, "description": description}},
                        "required": [name],
                    }
                }
            },
        }
    }
