"""Real photos on the reference model: odd but valid encodings of a photo get the answer the
plain JPEG gets, and the service computes exactly what offline evaluation computes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Photo
from PIL import Image
from serving_support import SAMPLES, encode, serving

from catdog.predictor import OnnxClassifier
from catdog.preprocess import load_rgb
from catdog.serving.settings import Settings

pytestmark = pytest.mark.anyio

EXIF_ORIENTATION = 0x0112
PHONE_SIZE = (4000, 3000)  # 12 megapixels


def with_alpha(img: Image.Image) -> bytes:
    rgba = img.convert("RGBA")
    alpha = Image.new("L", img.size, 0)
    w, h = img.size
    alpha.paste(255, (w // 20, h // 20, w - w // 20, h - h // 20))
    rgba.putalpha(alpha)
    return encode(rgba, "PNG")


def sixteen_bit_png(img: Image.Image) -> bytes:
    gray = Image.fromarray(np.asarray(img.convert("L"), dtype=np.uint16) * 257)
    assert gray.mode == "I;16"
    return encode(gray, "PNG")


def animated_gif(img: Image.Image) -> bytes:
    frames = [img.convert("P", palette=Image.Palette.ADAPTIVE), img.rotate(10).convert("P")]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def phone_photo_rotated(img: Image.Image) -> bytes:
    """A 12-MP photo stored sideways with EXIF Orientation 6 ("rotate 90 clockwise to view")."""
    upright = img.resize(PHONE_SIZE, Image.Resampling.BICUBIC)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    return encode(stored, "JPEG", quality=90, exif=exif.tobytes())


ENCODINGS: dict[str, Callable[[Image.Image], bytes]] = {
    "png_with_alpha": with_alpha,
    "grayscale_png": lambda img: encode(img.convert("L"), "PNG"),
    "cmyk_jpeg": lambda img: encode(img.convert("CMYK"), "JPEG"),
    "16bit_png": sixteen_bit_png,
    "palette_gif": lambda img: encode(img.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
    "animated_gif": animated_gif,
    "webp": lambda img: encode(img, "WEBP", quality=90),
    "bmp": lambda img: encode(img, "BMP"),
    "tiff": lambda img: encode(img, "TIFF"),
    "phone_12mp_exif_rotated": phone_photo_rotated,
}


@pytest.fixture
def reference_settings(reference_model: Path) -> Settings:
    return Settings(model=str(reference_model))


async def test_odd_but_valid_images_get_the_right_answer(
    reference_settings: Settings, confident_photos: dict[str, Photo]
) -> None:
    wrong = {}
    async with serving(reference_settings) as client:
        for label, photo in confident_photos.items():
            img = Image.open(photo.path).convert("RGB")
            for name, make in ENCODINGS.items():
                response = await client.post("/predict", files={"file": (name, make(img))})
                assert response.status_code == 200, f"{name}: {response.text}"
                if response.json()["label"] != label:
                    wrong[f"{photo.path.name} as {name}"] = response.json()["probabilities"]
    assert not wrong, f"answers changed by re-encoding: {wrong}"


def test_exif_orientation_is_applied() -> None:
    img = Image.open(SAMPLES / "Cat" / "cat.1315.jpg").convert("RGB")
    assert img.width > img.height
    decoded = load_rgb(phone_photo_rotated(img))
    assert decoded.width > decoded.height, "the sideways phone photo was not turned upright"


async def test_service_answers_what_offline_evaluation_computes(
    reference_settings: Settings, reference_classifier: OnnxClassifier
) -> None:
    """Parity: same bytes -> same probabilities over HTTP and through OnnxClassifier.classify,
    which `catdog evaluate` and `catdog predict` use on files."""
    photos = sorted(Path(__file__).resolve().parents[2].glob("samples/petimages/*/*.jpg"))[::25]
    async with serving(reference_settings) as client:
        served = [
            (await client.post("/predict", files={"file": (p.name, p.read_bytes())})).json()
            for p in photos
        ]
    offline = reference_classifier.classify(photos)
    for path, http, local in zip(photos, served, offline, strict=True):
        assert http["label"] == local.label, path.name
        for name, p in local.probabilities.items():
            assert http["probabilities"][name] == pytest.approx(p, abs=1e-5), path.name


def test_upload_bytes_and_files_preprocess_identically(
    reference_classifier: OnnxClassifier,
) -> None:
    """The service prepares uploaded bytes; evaluation and the data stage prepare paths."""
    pre = reference_classifier.preprocessing
    for path in sorted(Path(__file__).resolve().parents[2].glob("samples/petimages/*/*.jpg"))[::40]:
        from_bytes = reference_classifier.prepare(io.BytesIO(path.read_bytes()).getvalue())
        from_path = pre(path)
        assert from_bytes.dtype == np.float32
        assert from_bytes.shape == (3, pre.size, pre.size)
        np.testing.assert_array_equal(from_bytes, from_path)
