"""`catdog data prepare|download`: options reach the stage, errors become reason and exit code."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

from petfiles import MakeRaw, PetServer
from PIL import Image
from typer.testing import CliRunner

from catdog.cli import app

CATDOG = Path(sys.executable).parent / "catdog"
runner = CliRunner()


def output_sizes(out: Path) -> set[tuple[int, int]]:
    return {Image.open(path).size for path in out.glob("*/*/*.jpg")}


def test_prepare_reads_params_and_prints_a_summary(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path]
) -> None:
    raw = make_raw(sample_photos[::20])
    params = tmp_path / "params.yaml"
    params.write_text("data:\n  image_size: 48\n  workers: 1\n  split: {salt: cli}\n")
    out = tmp_path / "prepared"
    command = ["data", "prepare", "--raw", str(raw), "--out", str(out), "--params", str(params)]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "catdog data prepare" in result.output
    assert "kept" in result.output and "train" in result.output
    assert output_sizes(out) == {(48, 48)}
    with (out / "manifest.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 10

    overrides = ["--image-size", "40", "--workers", "2"]
    again = runner.invoke(app, [*command, *overrides])
    assert again.exit_code == 0, again.output
    assert output_sizes(out) == {(40, 40)}
    assert "splits kept from the previous run" in again.output


def run_catdog(*args: str) -> tuple[int, str]:
    """Exit code and stderr (its line breaks, made by the terminal width, undone)."""
    done = subprocess.run(
        [str(CATDOG), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert "Traceback" not in done.stdout + done.stderr
    return done.returncode, " ".join(done.stderr.split())


def test_errors_are_a_reason_and_an_exit_code_not_a_traceback(tmp_path: Path) -> None:
    code, message = run_catdog("data", "prepare", "--raw", str(tmp_path / "no"), "--out", "x")
    assert code == 4
    assert "error (bad_data)" in message and "does not exist" in message
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  image_sise: 64\n")
    code, message = run_catdog("data", "prepare", "--raw", ".", "--out", "x", "--params", str(bad))
    assert code == 2
    assert "error (bad_config)" in message and "image_sise" in message


def test_download_with_overridden_constants(pet_server: PetServer, tmp_path: Path) -> None:
    payload = pet_server.behaviour.payload
    host, port = pet_server.server_address[:2]
    url = f"http://{host!s}:{port}/kagglecatsanddogs.zip"
    sha256 = hashlib.sha256(payload).hexdigest()
    options = ["--url", url, "--sha256", sha256.upper(), "--size", str(len(payload))]
    result = runner.invoke(app, ["data", "download", "--dest", str(tmp_path), *options])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kagglecatsanddogs_5340.zip").read_bytes() == payload
    assert "catdog data prepare --raw" in result.output


def test_download_copies_a_local_source_and_prepare_reads_a_folder_holding_one_zip(
    tmp_path: Path, make_raw: MakeRaw, sample_photos: list[Path]
) -> None:
    raw = make_raw(sample_photos[::25])
    dest = tmp_path / "data" / "raw"
    dest.mkdir(parents=True)
    (dest / "stale.jpg").write_bytes(b"from an earlier source")
    result = runner.invoke(app, ["data", "download", "--source", str(raw), "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(dest) for p in dest.rglob("*.jpg")) == sorted(
        p.relative_to(raw) for p in raw.rglob("*.jpg")
    )
    # The Microsoft zip lands alone in data/raw: prepare reads it as the zip it is.
    archive = tmp_path / "zipped"
    subprocess.run(
        [sys.executable, "-m", "zipfile", "-c", str(tmp_path / "pets.zip"), str(raw / "PetImages")],
        check=True,
    )
    result = runner.invoke(
        app, ["data", "download", "--source", str(tmp_path / "pets.zip"), "--dest", str(archive)]
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in archive.iterdir()] == ["pets.zip"]
    out = tmp_path / "prepared"
    done = runner.invoke(app, ["data", "prepare", "--raw", str(archive), "--out", str(out)])
    assert done.exit_code == 0, done.output
    with (out / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(sample_photos[::25])
    assert all(row["source_path"].startswith("PetImages/") for row in rows)
