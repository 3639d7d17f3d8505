"""The differential check of the upload glue (catdog.serving.uploads) against Starlette's own
form parser, which fuzz_uploads.py drives with atheris.

Each input is a multipart body (boundary `catdog`). Both parsers read it; the service's parser
must either return exactly the files Starlette finds in field `file`, in order, byte for byte,
or refuse with a RequestRefusedError. It refuses more than Starlette, on purpose, and only in the
cases `expected_refusal` names: a body that ends before its closing boundary (Starlette keeps
the part read so far: a photo cut in half), a plain value where a file belongs, too many
parts. Anything else is a disagreement.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from catdog.errors import RequestRefusedError
from catdog.serving.uploads import files_in

CONTENT_TYPE = "multipart/form-data; boundary=catdog"
FIELD = "file"
MAX_FILES = 4
# The service's own refusals that Starlette does not make (see the module's docstring).
STRICTER = ("the multipart body ends before", "a plain form value", "more than")


def starlette_files(body: bytes) -> list[tuple[str | None, bytes]] | None:
    """The files Starlette's parser finds in FIELD, or None if it refuses the body."""

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    async def parse() -> list[tuple[str | None, bytes]] | None:
        headers = Headers({"content-type": CONTENT_TYPE})
        try:
            form = await MultiPartParser(headers, stream(), max_part_size=len(body) + 1).parse()
        except MultiPartException:
            return None
        found = []
        for value in form.getlist(FIELD):
            if isinstance(value, UploadFile):
                found.append((value.filename, await value.read()))
                await value.close()
            else:
                found.append((None, value.encode("utf-8", "surrogateescape")))
        return found

    return asyncio.run(parse())


def expected_refusal(refusal: RequestRefusedError, theirs: list[tuple[str | None, bytes]]) -> bool:
    """True for the refusals the service makes on purpose where Starlette reads on."""
    if refusal.reason == "missing_field":
        return not theirs
    if refusal.reason == "too_many_files":
        return len(theirs) > MAX_FILES or refusal.detail.startswith("more than")
    return any(reason in refusal.detail for reason in STRICTER)


def check_one(body: bytes) -> None:
    """Raise AssertionError if the two parsers disagree on `body` in a way not intended."""
    theirs = starlette_files(body)
    try:
        ours = files_in(body, CONTENT_TYPE, FIELD, max_files=MAX_FILES, limit_hint="fuzz")
    except RequestRefusedError as refusal:
        if theirs is None or expected_refusal(refusal, theirs):
            return
        raise AssertionError(
            f"refused ({refusal.reason}: {refusal.detail}); Starlette read {theirs!r}"
        ) from None
    assert theirs is not None, f"Starlette refused what the service read: {ours!r}"
    got = [(upload.filename, upload.data) for upload in ours]
    assert got == theirs, (got, theirs)
