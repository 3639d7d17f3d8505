"""The download against a real local HTTP server: resume after a drop, refuse a wrong checksum."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from petfiles import PetServer

from catdog.data.download import RemoteFile, download_file
from catdog.data.params import DataParams
from catdog.data.prepare import prepare_dataset
from catdog.errors import DownloadError


def remote_for(
    pet_server: PetServer, *, sha256: str | None = None, size: int | None = None
) -> RemoteFile:
    payload = pet_server.behaviour.payload
    host, port = pet_server.server_address[:2]
    return RemoteFile(
        url=f"http://{host!s}:{port}/kagglecatsanddogs.zip",
        name="kagglecatsanddogs.zip",
        size=len(payload) if size is None else size,
        sha256=hashlib.sha256(payload).hexdigest() if sha256 is None else sha256,
    )


def fetch(pet_server: PetServer, dest: Path, **overrides: object) -> Path:
    remote = remote_for(pet_server)
    options: dict[str, object] = {"retry_wait_s": 0.0, "chunk_bytes": 4096, "show_progress": False}
    options |= overrides
    return download_file(remote, dest, **options)  # type: ignore[arg-type]


def test_resumes_after_a_dropped_connection(pet_server: PetServer, tmp_path: Path) -> None:
    payload = pet_server.behaviour.payload
    cut = len(payload) // 2
    pet_server.behaviour.drop_after, pet_server.behaviour.drops = cut, 1
    path = fetch(pet_server, tmp_path)
    assert path.read_bytes() == payload
    assert pet_server.behaviour.ranges == [None, f"bytes={cut}-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kagglecatsanddogs.zip"]
    # The downloaded archive is an input the data stage takes as it is.
    report = prepare_dataset(
        path, tmp_path / "prepared", DataParams(image_size=32, workers=1)
    ).report
    assert (report["files"], report["kept"]) == (9, 6)
    assert report["refusals"] == {"empty_file": 1, "no_label": 1, "not_an_image": 1}


def test_resumes_a_part_left_by_an_earlier_run(pet_server: PetServer, tmp_path: Path) -> None:
    payload = pet_server.behaviour.payload
    (tmp_path / "kagglecatsanddogs.zip.part").write_bytes(payload[:1000])
    path = fetch(pet_server, tmp_path)
    assert path.read_bytes() == payload
    assert pet_server.behaviour.ranges == ["bytes=1000-"]


def test_checksum_mismatch_fails_clearly_and_keeps_no_file(
    pet_server: PetServer, tmp_path: Path
) -> None:
    # Resumed, then found wrong: the .part goes too.
    pet_server.behaviour.drop_after, pet_server.behaviour.drops = 5000, 1
    remote = remote_for(pet_server, sha256="0" * 64)
    with pytest.raises(DownloadError) as caught:
        download_file(remote, tmp_path, retry_wait_s=0.0, show_progress=False)
    assert caught.value.reason == "checksum_mismatch"
    assert "SHA-256" in caught.value.detail and "0" * 64 in caught.value.detail
    assert list(tmp_path.iterdir()) == []


def test_wrong_size_is_refused_before_downloading(pet_server: PetServer, tmp_path: Path) -> None:
    remote = remote_for(pet_server, size=824_887_076)
    with pytest.raises(DownloadError) as caught:
        download_file(remote, tmp_path, retry_wait_s=0.0, show_progress=False)
    assert caught.value.reason == "size_mismatch"
    assert list(tmp_path.iterdir()) == []


def test_server_without_range_support_starts_over(pet_server: PetServer, tmp_path: Path) -> None:
    pet_server.behaviour.honour_range = False
    pet_server.behaviour.drop_after, pet_server.behaviour.drops = 3000, 1
    path = fetch(pet_server, tmp_path)
    assert path.read_bytes() == pet_server.behaviour.payload
    assert pet_server.behaviour.ranges == [None, "bytes=3000-"]


def test_gives_up_after_repeated_drops_and_keeps_the_part(
    pet_server: PetServer, tmp_path: Path
) -> None:
    pet_server.behaviour.drop_after, pet_server.behaviour.drops = 2000, 100
    with pytest.raises(DownloadError, match="interrupted 3 times") as caught:
        fetch(pet_server, tmp_path, attempts=3)
    assert "run again to resume" in caught.value.detail
    assert (tmp_path / "kagglecatsanddogs.zip.part").stat().st_size == 3 * 2000


def test_http_error_is_clear_and_not_retried(pet_server: PetServer, tmp_path: Path) -> None:
    remote = remote_for(pet_server)
    missing = RemoteFile(remote.url.replace(".zip", "-gone.zip"), remote.name, 1, remote.sha256)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_file(missing, tmp_path, retry_wait_s=0.0, show_progress=False)


def test_a_verified_file_is_not_downloaded_again(pet_server: PetServer, tmp_path: Path) -> None:
    (tmp_path / "kagglecatsanddogs.zip").write_bytes(pet_server.behaviour.payload)
    fetch(pet_server, tmp_path)
    assert pet_server.behaviour.ranges == []
    (tmp_path / "kagglecatsanddogs.zip").write_bytes(b"something else")
    with pytest.raises(DownloadError, match="delete it to download again"):
        fetch(pet_server, tmp_path)
