"""Time the service's own multipart parsing (catdog.serving.uploads) against Starlette's form
parser on the same body: one real sample photo in field `file`, the usual request.

    .venv/bin/python -m benchmarks.serving.upload_parsing

The figure decides whether the upload glue is worth its fuzzing (README, Reliability).
"""

from __future__ import annotations

import asyncio
import os
import timeit
from collections.abc import AsyncGenerator
from pathlib import Path

import httpx
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartParser

from benchmarks.serving.results import result_path, write_json
from catdog.serving.uploads import files_in

os.environ.setdefault("DO_NOT_TRACK", "1")
PHOTO = Path(__file__).resolve().parents[2] / "samples" / "petimages" / "Cat" / "cat.1136.jpg"
RUNS = 3000


def main() -> None:
    photo = {"file": ("cat.jpg", PHOTO.read_bytes())}
    request = httpx.Request("POST", "http://catdog/", files=photo)
    body, content_type = request.read(), request.headers["content-type"]
    loop = asyncio.new_event_loop()

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    async def starlette_form() -> None:
        form = await MultiPartParser(Headers({"content-type": content_type}), stream()).parse()
        upload = form["file"]
        assert not isinstance(upload, str)
        await upload.read()
        await upload.close()

    def ours() -> None:
        files_in(body, content_type, "file", max_files=1, limit_hint="")

    def theirs() -> None:
        loop.run_until_complete(starlette_form())

    figures = {}
    for name, parse in (("catdog_ms", ours), ("starlette_ms", theirs)):
        best = min(timeit.repeat(parse, number=RUNS, repeat=5)) / RUNS
        figures[name] = round(best * 1000, 4)
    figures["body_bytes"] = len(body)
    figures["saved_ms"] = round(figures["starlette_ms"] - figures["catdog_ms"], 4)
    print(
        f"one {len(body):,}-byte upload: catdog {figures['catdog_ms']} ms, "
        f"Starlette {figures['starlette_ms']} ms per request (saves {figures['saved_ms']} ms)"
    )
    write_json(result_path("upload_parsing", quick=False), figures)


if __name__ == "__main__":
    main()
