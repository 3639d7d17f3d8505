"""POST /predict and /predict/batch: photos in, labels out.

Both routes parse their own uploads (catdog.serving.uploads) and write their JSON themselves:
FastAPI's form parsing and response validation cost the event loop more per photo than the
rest of the request. The pydantic schemas still define the answers and the OpenAPI docs.
"""

from __future__ import annotations

import uuid
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from catdog.errors import CatdogError, image_error
from catdog.serving.deps import ServiceDep
from catdog.serving.schemas import BatchOut, ErrorOut, FileError, FilePrediction, PredictionOut
from catdog.serving.service import Answer
from catdog.serving.uploads import Upload, files_in, multipart_schema

router = APIRouter(tags=["predict"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "Too many bytes, pixels or files."},
    415: {"model": ErrorOut, "description": "Not a photo format (SVG, PDF, HTML)."},
    422: {"model": ErrorOut, "description": "Missing field, not an image, truncated, undecodable."},
    503: {"model": ErrorOut, "description": "Overloaded, timed out or not ready: see Retry-After."},
}


async def _uploads(request: Request, name: str, max_files: int, limit_hint: str) -> list[Upload]:
    """The files of field `name`; UploadGuardMiddleware has bounded and read the body already."""
    body = await request.body()
    content_type = request.headers.get("content-type")
    return files_in(body, content_type, name, max_files=max_files, limit_hint=limit_hint)


def _within(upload: Upload, limit: int) -> bytes:
    """The upload's bytes, if it is not over the per-file limit."""
    if len(upload.data) > limit:
        name = upload.filename or "the file"
        raise image_error(
            "too_many_bytes", f"{name} is over {limit:,} bytes (CATDOG_MAX_UPLOAD_MB)"
        )
    return upload.data


def _json(answer: BaseModel) -> Response:
    return Response(answer.model_dump_json(), media_type="application/json")


def _elapsed_ms(request: Request) -> float:
    started: float = request.state.started
    return round((perf_counter() - started) * 1000, 2)


def _prediction_fields(answer: Answer, pet_threshold: float | None) -> dict[str, Any]:
    """The answer's fields; CATDOG_PET_THRESHOLD, when set, overrides the card's threshold."""
    prediction = answer.prediction
    is_pet = prediction.is_pet
    if pet_threshold is not None and prediction.pet_score is not None:
        is_pet = prediction.pet_score >= pet_threshold
    return {
        "label": prediction.label,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
        "is_pet": is_pet,
        "pet_score": prediction.pet_score,
        "prediction_id": uuid.uuid4().hex,
        "model_version": answer.model_version,
        "batch_size": answer.batch_size,
    }


@router.post(
    "/predict",
    response_model=PredictionOut,
    responses=_REFUSALS,
    openapi_extra=multipart_schema(
        "file", "A photo: JPEG, PNG, WebP, GIF, BMP, TIFF...", many=False
    ),
)
async def predict(request: Request, service: ServiceDep) -> Response:
    """Classify one photo (multipart field `file`) as cat or dog."""
    (upload,) = await _uploads(request, "file", 1, "several photos go to /predict/batch")
    answer = await service.classify(_within(upload, service.settings.max_upload_bytes))
    fields = _prediction_fields(answer, service.settings.pet_threshold)
    request.state.log.update({k: v for k, v in fields.items() if k != "probabilities"})
    return _json(PredictionOut(**fields, latency_ms=_elapsed_ms(request)))


@router.post(
    "/predict/batch",
    response_model=BatchOut,
    responses=_REFUSALS,
    openapi_extra=multipart_schema("files", "Several photos, in the order wanted.", many=True),
)
async def predict_batch(request: Request, service: ServiceDep) -> Response:
    """Classify several photos (multipart field `files`, up to CATDOG_MAX_BATCH_FILES); each
    gets its prediction or its own refusal, in order."""
    limit = service.settings.max_batch_files
    files = await _uploads(request, "files", limit, "CATDOG_MAX_BATCH_FILES")
    uploads: list[bytes | CatdogError] = []
    for upload in files:
        try:
            uploads.append(_within(upload, service.settings.max_upload_bytes))
        except CatdogError as exc:
            uploads.append(exc)
    readable = [data for data in uploads if isinstance(data, bytes)]
    answers = iter(await service.classify_many(readable) if readable else [])
    results: list[FilePrediction | FileError] = []
    for upload, data in zip(files, uploads, strict=True):
        outcome = next(answers) if isinstance(data, bytes) else data
        if isinstance(outcome, Answer):
            results.append(
                FilePrediction(
                    **_prediction_fields(outcome, service.settings.pet_threshold),
                    filename=upload.filename,
                    latency_ms=_elapsed_ms(request),
                )
            )
        else:
            service.metrics.refusals.labels(reason=outcome.reason).inc()
            results.append(
                FileError(
                    filename=upload.filename,
                    error=outcome.reason,
                    detail=outcome.detail,
                    status=outcome.http_status,
                )
            )
    request.state.log.update(
        files=len(files),
        labels=[r.label if isinstance(r, FilePrediction) else r.error for r in results],
    )
    return _json(BatchOut(results=results, latency_ms=_elapsed_ms(request)))
