"""Fetching the Microsoft "Kaggle Cats and Dogs Dataset" zip: resumable, verified, never half-kept.

The file streams to `<dest>/<name>.part`; an interrupted download resumes where it stopped (HTTP
Range), within the same run after a dropped connection or in the next run. Only a file of the
expected size and SHA-256 gets its final name; a mismatch deletes the .part, so no corrupt
archive is ever left behind to be prepared.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from catdog import __version__
from catdog.errors import DownloadError
from catdog.terminal import progress

_MIB = 1024 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch and what it must be once fetched."""

    url: str
    name: str
    size: int
    sha256: str


# Size and SHA-256 as published with the archive's mirrors (gomlx's dogsvscats example pins the
# same SHA-256; wget logs of the Microsoft URL show the size). Override them with the CLI options.
KAGGLE_CATS_AND_DOGS = RemoteFile(
    url=(
        "https://download.microsoft.com/download/3/E/1/"
        "3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
    ),
    name="kagglecatsanddogs_5340.zip",
    size=824_887_076,
    sha256="b7974bd00a84a99921f36ee4403f089853777b5ae8d151c76a86e64900334af9",
)


def copy_local(source: Path, dest: Path) -> Path:
    """Copy a local data set (a folder of class folders, or a zip) into `dest`, replacing it:
    how the pipeline's download stage brings in the bundled sample instead of the Microsoft zip."""
    if not source.exists():
        raise DownloadError(f"the source {source} does not exist")
    shutil.rmtree(dest, ignore_errors=True)
    if source.is_dir():
        shutil.copytree(source, dest)
        return dest
    dest.mkdir(parents=True)
    return Path(shutil.copy2(source, dest / source.name))


def download_file(
    remote: RemoteFile,
    dest: Path,
    *,
    attempts: int = 5,
    timeout_s: float = 30.0,
    retry_wait_s: float = 2.0,
    chunk_bytes: int = _MIB,
    show_progress: bool = True,
) -> Path:
    """Download `remote` into `dest` (resuming a previous .part) and return the verified file."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / remote.name
    if target.exists():
        _verify(target, remote, delete=False)
        return target
    part = target.with_name(f"{remote.name}.part")
    with progress() as bar:
        task = bar.add_task(f"{remote.name} (MiB)", total=remote.size / _MIB, visible=show_progress)

        def show(done: int) -> None:
            bar.update(task, completed=done / _MIB)

        errors: list[str] = []
        while _size(part) < remote.size:
            if len(errors) == attempts:
                raise DownloadError(
                    f"{remote.url}: interrupted {attempts} times (last: {errors[-1]}); "
                    f"run again to resume from {_size(part):,} bytes"
                )
            if errors:
                time.sleep(retry_wait_s)
            try:
                _fetch(remote, part, timeout_s, chunk_bytes, show)
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    raise DownloadError(f"{remote.url}: HTTP {exc.code} {exc.reason}") from exc
                errors.append(f"HTTP {exc.code}")
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                errors.append(str(exc) or type(exc).__name__)
            else:
                if _size(part) < remote.size:
                    errors.append("the connection closed before the end of the file")
    _verify(part, remote, delete=True)
    part.replace(target)
    return target


def _fetch(
    remote: RemoteFile,
    part: Path,
    timeout_s: float,
    chunk_bytes: int,
    show: Callable[[int], None],
) -> None:
    """Append to `part` what the server sends from its current size on."""
    offset = _size(part)
    headers = {"User-Agent": f"catdog/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(remote.url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(f"{remote.url}: asked for bytes {offset}- but got {start}-")
        else:  # 200: the whole file, whether or not a range was asked for
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is not None and total != remote.size:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{remote.url} is {total:,} bytes, expected {remote.size:,}: not the expected file",
                reason="size_mismatch",
            )
        done = offset
        with part.open("ab" if offset else "wb") as handle:
            while chunk := response.read(chunk_bytes):
                handle.write(chunk)
                done += len(chunk)
                show(done)


def _content_range(header: str) -> tuple[int, int | None]:
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise DownloadError(
            f"the server answered a range without a valid Content-Range: {header!r}"
        )
    total = match.group(2)
    return int(match.group(1)), None if total == "*" else int(total)


def _verify(path: Path, remote: RemoteFile, *, delete: bool) -> None:
    """Raise DownloadError unless `path` has the expected size and SHA-256; optionally delete it."""
    size = path.stat().st_size
    problem = ""
    if size != remote.size:
        problem = f"is {size:,} bytes, expected {remote.size:,}"
    else:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while block := handle.read(_MIB):
                digest.update(block)
        if digest.hexdigest() != remote.sha256:
            problem = f"has SHA-256 {digest.hexdigest()}, expected {remote.sha256}"
    if not problem:
        return
    if delete:
        path.unlink()
        raise DownloadError(
            f"{remote.url} {problem}; the download was deleted", reason="checksum_mismatch"
        )
    raise DownloadError(
        f"{path} {problem}; delete it to download again", reason="checksum_mismatch"
    )


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
