"""Whatever a photo does to the decoder inside a runner process is the photo's fault: a 4xx with
the upload refusals' reasons, never a 5xx model fault (which pages whoever watches errors).

The runner's own function (`runner._run`) is fed every cut and many corruptions of real photos
in six formats, with a real ONNX model; the service is asked with the header-only JPEG that
used to answer 503.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image
from serving_support import RED, SAMPLES, encode, metric, serving, solid

from catdog.errors import IMAGE_REASONS, ImageError
from catdog.predictor import OnnxClassifier
from catdog.serving.child import _answer, decode_failure
from catdog.serving.protocol import Ran, Run
from catdog.serving.settings import Settings

PHOTO = (SAMPLES / "Cat" / "cat.1136.jpg").read_bytes()
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF")


def header_only_jpeg(photo: bytes) -> bytes:
    """SOI, APP0 and part of the quantisation tables, then nothing: what a client that
    disconnects mid-upload leaves behind (Pillow: "Truncated File Read", an OSError raised
    while the file is opened, which used to escape as a model fault)."""
    return photo[: photo.index(b"\xff\xdb") + 40]


def small_photo(fmt: str) -> bytes:
    """The sample photo, 96 px wide, as a file in `fmt`."""
    img = Image.open(io.BytesIO(PHOTO)).convert("RGB")
    img.thumbnail((96, 96))
    return encode(img, fmt)


def outcomes_in_runner(model: OnnxClassifier, uploads: list[bytes]) -> list[object]:
    """What a runner process answers for one batch of `uploads` (its own code, in process)."""
    reply = _answer({"m": model}, Run("m", uploads, 40_000_000))
    assert isinstance(reply, Ran), f"the runner failed the whole batch: {reply!r}"
    return list(reply.outcomes)


def assert_photo_faults_only(outcomes: list[object], what: str) -> None:
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, tuple):  # scores, as plain floats
            continue
        assert isinstance(outcome, ImageError), f"{what} #{i}: {outcome!r}"
        assert outcome.reason in IMAGE_REASONS, f"{what} #{i}: {outcome.reason}"
        assert 400 <= outcome.http_status < 500, f"{what} #{i}: {outcome!r}"


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> OnnxClassifier:
    from serving_support import write_tiny_model  # noqa: PLC0415

    return OnnxClassifier(write_tiny_model(tmp_path_factory.mktemp("tiny")), spinning=False)


def test_the_header_only_jpeg_fails_alone_as_truncated(tiny_classifier: OnnxClassifier) -> None:
    cut = header_only_jpeg(PHOTO)
    bad, good = outcomes_in_runner(tiny_classifier, [cut, solid(RED)])
    assert isinstance(bad, ImageError)
    assert (bad.reason, bad.http_status) == ("truncated", 422)
    assert isinstance(good, tuple) and all(isinstance(p, float) for p in good)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_cut_of_a_real_photo_is_a_4xx_in_the_runner(
    tiny_classifier: OnnxClassifier, fmt: str
) -> None:
    whole = small_photo(fmt)
    cuts = sorted({*range(1, min(len(whole), 600), 7), *range(600, len(whole), 97)})
    outcomes = outcomes_in_runner(tiny_classifier, [whole[:cut] for cut in cuts])
    assert_photo_faults_only(outcomes, f"{fmt} cut")
    refused = sum(isinstance(o, ImageError) for o in outcomes)
    assert refused > len(cuts) // 2, f"{fmt}: most cuts must be refused, {refused}/{len(cuts)}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_corrupted_headers_of_a_real_photo_are_a_4xx_in_the_runner(
    tiny_classifier: OnnxClassifier, fmt: str
) -> None:
    whole = small_photo(fmt)
    rng = random.Random(fmt)  # the same corruptions every run
    corrupted = []
    for _ in range(60):
        data = bytearray(whole)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(min(len(data), 256))] = rng.randrange(256)
        corrupted.append(bytes(data))
    assert_photo_faults_only(outcomes_in_runner(tiny_classifier, corrupted), f"{fmt} corrupted")


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (OSError("Truncated File Read"), "truncated"),
        (OSError("broken data stream when reading image file"), "undecodable"),
        (ValueError("tile cannot extend outside image"), "undecodable"),
        (IndexError("list index out of range"), "undecodable"),
        (ZeroDivisionError(), "undecodable"),
    ],
)
def test_any_decoder_exception_becomes_an_image_refusal(exc: Exception, reason: str) -> None:
    refusal = decode_failure(exc)
    assert (refusal.reason, refusal.http_status) == (reason, 422)
    assert refusal.detail.startswith("cannot decode the image")


@pytest.mark.anyio
async def test_the_header_only_jpeg_is_a_422_and_no_server_error(tiny_model: Path) -> None:
    cut = header_only_jpeg(PHOTO)
    async with serving(Settings(model=str(tiny_model))) as client:
        alone = await client.post("/predict", files={"file": ("cut.jpg", cut)})
        batch = await client.post(
            "/predict/batch", files=[("files", ("cut.jpg", cut)), ("files", ("r.jpg", solid(RED)))]
        )
        text = (await client.get("/metrics")).text
    assert alone.status_code == 422, alone.text
    assert alone.json()["error"] == "truncated"
    assert batch.status_code == 200
    first, second = batch.json()["results"]
    assert (first["error"], first["status"]) == ("truncated", 422)
    assert second["label"] == "cat"
    assert metric(text, "catdog_requests_total", route="/predict", method="POST", status="422")
    for status in ("500", "503"):
        assert not metric(
            text, "catdog_requests_total", route="/predict", method="POST", status=status
        )
