"""Every awkward-file kind: refused with its reason, or kept as an upright RGB photo."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from petfiles import encode
from PIL import Image

from catdog.data.manifest import REFUSAL_REASONS
from catdog.data.params import SplitParams
from catdog.data.sources import RawFile
from catdog.data.validate import Checked, Checker, CheckSettings
from catdog.errors import IMAGE_REASONS, ImageError
from catdog.preprocess import load_rgb


def settings_for(raw: Path, out: Path, **overrides: int) -> CheckSettings:
    values = {"image_size": 64, "max_pixels": 40_000_000, "max_file_bytes": 50_000_000}
    values |= overrides
    return CheckSettings(
        raw=raw,
        out=out,
        split=SplitParams(),
        image_size=values["image_size"],
        resample="bilinear",
        jpeg_quality=95,
        max_pixels=values["max_pixels"],
        max_file_bytes=values["max_file_bytes"],
    )


def check_bytes(tmp_path: Path, name: str, data: bytes, **overrides: int) -> tuple[Checked, Path]:
    raw = tmp_path / "raw"
    (raw / "Cat").mkdir(parents=True, exist_ok=True)
    (raw / "Cat" / name).write_bytes(data)
    checker = Checker(settings_for(raw, tmp_path / "out", **overrides))
    try:
        result = checker.check(RawFile(source=f"Cat/{name}", label="cat", size=len(data)))
    finally:
        checker.close()
    return result, tmp_path / "out" / result.written


def test_every_image_reason_is_documented() -> None:
    assert set(IMAGE_REASONS) <= set(REFUSAL_REASONS)


def test_awkward_files_are_refused_with_their_reason(
    tmp_path: Path, refused_files: dict[str, tuple[bytes, str]]
) -> None:
    for name, (data, reason) in refused_files.items():
        result, written = check_bytes(tmp_path / name, name, data)
        assert (name, result.reason) == (name, reason)
        assert result.detail, name
        assert result.written == "", name
        assert not [path for path in written.rglob("*") if path.is_file()], name
        if data:
            assert len(result.sha256) == 64


def test_truncated_real_jpeg_is_caught_by_the_reduced_scale_decode(
    sample_photos: list[Path],
) -> None:
    data = sample_photos[0].read_bytes()
    full_size = Image.open(sample_photos[0]).size
    # The draft decode really works at reduced scale...
    assert load_rgb(data, draft_size=64).size[0] < full_size[0] // 2
    # ...and still reads every byte: a cut anywhere in the scan data is caught.
    for cut in (len(data) // 3, len(data) - 100, len(data) - 2):
        with pytest.raises(ImageError) as caught:
            load_rgb(data[:cut], draft_size=64)
        assert caught.value.reason == "truncated"


def test_pixel_limit_from_params(tmp_path: Path, sample_photos: list[Path]) -> None:
    data = sample_photos[0].read_bytes()
    result, _ = check_bytes(tmp_path, "big.jpg", data, max_pixels=10_000)
    assert result.reason == "too_many_pixels"
    assert "10,000" in result.detail


def test_byte_limit_from_params(tmp_path: Path, sample_photos: list[Path]) -> None:
    data = sample_photos[0].read_bytes()
    result, _ = check_bytes(tmp_path, "heavy.jpg", data, max_file_bytes=1000)
    assert result.reason == "too_many_bytes"


def test_file_outside_class_folders_is_refused_without_reading(tmp_path: Path) -> None:
    checker = Checker(settings_for(tmp_path, tmp_path / "out"))
    result = checker.check(RawFile(source="license.pdf", label=None, size=10))
    assert (result.reason, result.sha256) == ("no_label", "")


def test_unreadable_zip_member_is_refused(tmp_path: Path, sample_photos: list[Path]) -> None:
    archive = tmp_path / "pets.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Cat/1.jpg", sample_photos[0].read_bytes())
    corrupt = bytearray(archive.read_bytes())
    corrupt[60:70] = b"\xff" * 10  # inside the compressed data: bad CRC or bad stream
    archive.write_bytes(bytes(corrupt))
    checker = Checker(settings_for(archive, tmp_path / "out"))
    try:
        result = checker.check(RawFile(source="Cat/1.jpg", label="cat", size=1))
    finally:
        checker.close()
    assert result.reason == "unreadable"


def test_every_mode_becomes_an_rgb_photo(tmp_path: Path, awkward_photos: dict[str, bytes]) -> None:
    for name, data in awkward_photos.items():
        result, written = check_bytes(tmp_path / name, name, data)
        assert result.ok, (name, result.reason, result.detail)
        with Image.open(written) as out:
            assert (name, out.format, out.mode, out.size) == (name, "JPEG", "RGB", (64, 64))
        assert result.phash is not None


def test_sixteen_bit_is_rescaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (64, 1))
    result, written = check_bytes(tmp_path, "ramp.png", encode(Image.fromarray(ramp), "PNG"))
    assert result.ok
    out = np.asarray(Image.open(written), dtype=np.float32)
    assert out[:, :4].mean() < 20 and out[:, -4:].mean() > 235


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    clear = Image.new("RGBA", (64, 64), (255, 0, 0, 0))
    result, written = check_bytes(tmp_path, "clear.png", encode(clear, "PNG"))
    assert result.ok
    assert np.asarray(Image.open(written)).min() > 245


def test_animated_gif_gives_its_first_frame(tmp_path: Path) -> None:
    red, blue = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))
    data = encode(red, "GIF", save_all=True, append_images=[blue])
    result, written = check_bytes(tmp_path, "anim.gif", data)
    assert result.ok
    pixel = np.asarray(Image.open(written), dtype=int).mean(axis=(0, 1))
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied(tmp_path: Path, sample_photos: list[Path]) -> None:
    photo = Image.open(sample_photos[2]).convert("RGB")
    width, height = photo.size
    assert width != height
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned 90 degrees clockwise
    result, written = check_bytes(tmp_path, "sideways.jpg", encode(photo, "JPEG", exif=exif))
    assert result.ok
    assert (result.width, result.height) == (height, width)
    upright = np.asarray(photo.transpose(Image.Transpose.ROTATE_270).resize((64, 64)), dtype=float)
    as_stored = np.asarray(photo.resize((64, 64)), dtype=float)
    out = np.asarray(Image.open(written), dtype=float)
    assert np.abs(out - upright).mean() < 8 < np.abs(out - as_stored).mean()


def test_good_photo_keeps_its_size_and_hashes(tmp_path: Path, sample_photos: list[Path]) -> None:
    data = sample_photos[3].read_bytes()
    result, written = check_bytes(tmp_path, "good.jpg", data)
    assert result.ok and written.exists()
    assert (result.width, result.height) == Image.open(sample_photos[3]).size
    assert 0 <= (result.phash or 0) < 2**64


def test_zip_member_lying_about_its_size_is_not_read_past_the_limit(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Cat/zeros.jpg", b"\0" * 5_000_000)  # 5 MB in about 5 KB
    checker = Checker(settings_for(archive, tmp_path / "out", max_file_bytes=1_000_000))
    try:
        # As if the zip directory claimed 10 bytes: the read itself stops at the limit.
        result = checker.check(RawFile(source="Cat/zeros.jpg", label="cat", size=10))
    finally:
        checker.close()
    assert result.reason == "too_many_bytes"
