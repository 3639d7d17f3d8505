"""The upload routes' own multipart parsing: what real clients send is read whole and in order;
everything else is refused with a reason, never dropped in silence or answered with a 5xx."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from serving_support import RED, SAMPLES, serving, solid

from catdog.errors import RequestRefusedError
from catdog.serving.settings import Settings
from catdog.serving.uploads import MAX_OTHER_PARTS, files_in

PHOTO = (SAMPLES / "Dog" / "dog.1081.jpg").read_bytes()


def encoded(
    files: list[tuple[str, tuple[str, bytes]]], data: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """A multipart body and its Content-Type, exactly as httpx would send them."""
    request = httpx.Request("POST", "http://test/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def refusal(body: bytes, content_type: str | None, name: str = "file") -> RequestRefusedError:
    with pytest.raises(RequestRefusedError) as caught:
        files_in(body, content_type, name, max_files=2, limit_hint="the test's limit")
    return caught.value


def test_files_come_back_whole_in_order_with_their_names() -> None:
    body, content_type = encoded(
        [("file", ("dog.jpg", PHOTO)), ("other", ("x.bin", b"skip me")), ("file", ("b.bin", b"x"))],
        data={"note": "a plain field beside the files"},
    )
    uploads = files_in(body, content_type, "file", max_files=2, limit_hint="")
    assert [(u.filename, u.data) for u in uploads] == [("dog.jpg", PHOTO), ("b.bin", b"x")]


def test_a_quoted_boundary_and_more_parameters_are_understood() -> None:
    body, content_type = encoded([("file", ("dog.jpg", PHOTO))])
    boundary = content_type.split("boundary=")[1]
    quoted = f'multipart/form-data; boundary="{boundary}"; charset=utf-8'
    (upload,) = files_in(body, quoted, "file", max_files=1, limit_hint="")
    assert upload.data == PHOTO


def test_an_empty_file_and_a_unicode_filename_are_kept() -> None:
    body, content_type = encoded([("file", ("chat noir é.jpg", b""))])
    (upload,) = files_in(body, content_type, "file", max_files=1, limit_hint="")
    assert upload.filename == "chat noir é.jpg"
    assert upload.data == b""


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"", None, "missing_field"),
        (b'{"file": "cat.jpg"}', "application/json", "invalid_request"),
        (b"file=cat.jpg", "application/x-www-form-urlencoded", "invalid_request"),
        (b"--x\r\n", "multipart/form-data", "invalid_request"),  # no boundary given
    ],
)
def test_what_is_not_a_multipart_upload_is_refused(
    body: bytes, content_type: str | None, reason: str
) -> None:
    error = refusal(body, content_type)
    assert (error.reason, error.http_status) == (reason, 422)
    assert "file" in error.detail


def test_a_missing_field_a_plain_value_and_too_many_files_are_refused() -> None:
    assert refusal(*encoded([("photo", ("dog.jpg", PHOTO))])).reason == "missing_field"
    plain = refusal(*encoded([("photo", ("dog.jpg", PHOTO))], data={"file": "not a file"}))
    assert (plain.reason, plain.http_status) == ("invalid_request", 422)
    three = refusal(*encoded([("file", (f"{i}.jpg", PHOTO)) for i in range(3)]))
    assert (three.reason, three.http_status) == ("too_many_files", 413)
    assert "the test's limit" in three.detail


def test_a_body_cut_short_or_malformed_is_refused_not_read_in_part() -> None:
    body, content_type = encoded([("file", ("dog.jpg", PHOTO))])
    cut = refusal(body[: len(body) // 2], content_type)
    assert (cut.reason, cut.http_status) == ("invalid_request", 422)
    assert "closing boundary" in cut.detail
    boundary = content_type.split("boundary=")[1].encode()
    garbled = b"--" + boundary + b"\r\nno colon in this header line\r\n\r\ndata\r\n"
    assert refusal(garbled, content_type).reason == "invalid_request"


def test_a_flood_of_parts_is_refused_before_it_is_all_held() -> None:
    fields = {f"f{i}": "x" for i in range(2 + MAX_OTHER_PARTS + 1)}
    error = refusal(*encoded([("file", ("dog.jpg", PHOTO))], data=fields))
    assert (error.reason, error.http_status) == ("too_many_files", 413)


@pytest.mark.anyio
async def test_the_routes_answer_these_refusals_as_json(tiny_model: Path) -> None:
    body, content_type = encoded([("file", ("dog.jpg", PHOTO))])
    async with serving(Settings(model=str(tiny_model))) as client:
        two = await client.post(
            "/predict", files=[("file", ("a.jpg", solid(RED))), ("file", ("b.jpg", solid(RED)))]
        )
        cut = await client.post(
            "/predict", content=body[:-20], headers={"Content-Type": content_type}
        )
        as_json = await client.post("/predict/batch", json={"files": ["a.jpg"]})
        fine = await client.post("/predict", content=body, headers={"Content-Type": content_type})
    assert two.status_code == 413
    assert two.json()["error"] == "too_many_files"
    assert "/predict/batch" in two.json()["detail"]
    assert cut.status_code == 422
    assert cut.json()["error"] == "invalid_request"
    assert as_json.status_code == 422
    assert as_json.json()["error"] == "invalid_request"
    assert fine.status_code == 200


@pytest.mark.anyio
async def test_the_docs_still_describe_a_file_upload(tiny_model: Path) -> None:
    async with serving(Settings(model=str(tiny_model))) as client:
        openapi = (await client.get("/openapi.json")).json()
    for path, name in (("/predict", "file"), ("/predict/batch", "files")):
        body = openapi["paths"][path]["post"]["requestBody"]
        schema = body["content"]["multipart/form-data"]["schema"]
        assert body["required"] and schema["required"] == [name]
        field = schema["properties"][name]
        file = field["items"] if path.endswith("batch") else field
        assert file["contentMediaType"] == "application/octet-stream"
    single = openapi["paths"]["/predict"]["post"]["responses"]["200"]["content"]
    assert single["application/json"]["schema"]["$ref"].endswith("/PredictionOut")
