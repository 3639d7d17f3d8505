"""POST /predict and /predict/batch: photos in, labels out.

Both routes parse their own uploads (catdog.serving.uploads) and write their JSON themselves:
FastAPI's form parsing and response validation cost the event loop more per photo than the
rest of the request. The pydantic schemas still define the answers and the OpenAPI docs.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from catdog.errors import CatdogError, ServiceUnavailableError, image_error
from catdog.monitoring.records import Answered, new_prediction_id, utcnow
from catdog.serving.deps import ServiceDep
from catdog.serving.schemas import BatchOut, ErrorOut, FileError, FilePrediction, PredictionOut
from catdog.serving.service import Answer
from catdog.serving.uploads import Upload, files_in, multipart_schema

router = APIRouter(tags=["predict"])

_BODY_TIMEOUT = {"model": ErrorOut, "description": "The body did not arrive in time."}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    408: _BODY_TIMEOUT,
    413: {"model": ErrorOut, "description": "Too many bytes, pixels or files."},
    415: {"model": ErrorOut, "description": "Not a photo format (SVG, PDF, HTML)."},
    422: {"model": ErrorOut, "description": "Missing field, not an image, truncated, undecodable."},
    503: {"model": ErrorOut, "description": "Overloaded, timed out or not ready: see Retry-After."},
}
# A batch answers each file's own refusal inside its 200; only the request's refusals remain.
_BATCH_REFUSALS: dict[int | str, dict[str, Any]] = {
    408: _BODY_TIMEOUT,
    413: {"model": ErrorOut, "description": "Too many bytes or files."},
    422: {"model": ErrorOut, "description": "Missing field, or not a multipart body."},
    503: {
        "model": ErrorOut,
        "description": "Overloaded or not ready, or no file answered for the service's "
        "reasons (timeouts): see Retry-After.",
    },
}


# A body larger than this is parsed on a thread: on the loop it would stall every other request.
PARSE_ON_LOOP_BYTES = 256 * 1024


async def _uploads(request: Request, name: str, max_files: int, limit_hint: str) -> list[Upload]:
    """The files of field `name`; UploadGuardMiddleware has bounded and read the body already,
    and hands it over in the chunks it arrived in (no joined copy)."""
    chunks = [chunk async for chunk in request.stream() if chunk]
    content_type = request.headers.get("content-type")
    if sum(map(len, chunks)) > PARSE_ON_LOOP_BYTES:
        return await asyncio.to_thread(
            files_in, chunks, content_type, name, max_files=max_files, limit_hint=limit_hint
        )
    return files_in(chunks, content_type, name, max_files=max_files, limit_hint=limit_hint)


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


def _prediction_fields(
    request: Request, answer: Answer, photo: bytes, pet_threshold: float | None
) -> dict[str, Any]:
    """The answer's fields, also queued for the prediction log (never blocks);
    CATDOG_PET_THRESHOLD, when set, overrides the card's not-a-pet threshold."""
    prediction = answer.prediction
    is_pet = prediction.is_pet
    if pet_threshold is not None and prediction.pet_score is not None:
        is_pet = prediction.pet_score >= pet_threshold
    prediction_id = new_prediction_id()
    request.app.state.prediction_log.submit(
        Answered(
            prediction_id=prediction_id,
            created_at=utcnow(),
            model_version=answer.model_version,
            label=prediction.label,
            confidence=prediction.confidence,
            probabilities=prediction.probabilities,
            pet_score=prediction.pet_score,
            photo=photo,
            look=answer.look,
        ),
        is_pet=is_pet,
    )
    return {
        "label": prediction.label,
        "confidence": prediction.confidence,
        "probabilities": prediction.probabilities,
        "is_pet": is_pet,
        "pet_score": prediction.pet_score,
        "prediction_id": prediction_id,
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
    photo = _within(upload, service.settings.max_upload_bytes)
    answer = await service.classify(photo)
    fields = _prediction_fields(request, answer, photo, service.settings.pet_threshold)
    request.state.log.update({k: v for k, v in fields.items() if k != "probabilities"})
    return _json(PredictionOut(**fields, latency_ms=_elapsed_ms(request)))


@router.post(
    "/predict/batch",
    response_model=BatchOut,
    responses=_BATCH_REFUSALS,
    openapi_extra=multipart_schema("files", "Several photos, in the order wanted.", many=True),
)
async def predict_batch(request: Request, service: ServiceDep) -> Response:
    """Classify several photos (multipart field `files`, up to CATDOG_MAX_BATCH_FILES); each
    gets its prediction or its own refusal, in order (a 200 with Retry-After if some failed
    for the service's reasons; a 503 if all did)."""
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
    outcomes = [next(answers) if isinstance(data, bytes) else data for data in uploads]
    server_faults = [o for o in outcomes if isinstance(o, CatdogError) and o.http_status >= 500]
    if server_faults and len(server_faults) == len(outcomes):
        # Nothing answered, for the service's reasons only: a failure, and worth a retry.
        first = server_faults[0]
        raise ServiceUnavailableError(
            f"no file was classified: {first.detail}", reason=first.reason
        )
    results: list[FilePrediction | FileError] = []
    for upload, data, outcome in zip(files, uploads, outcomes, strict=True):
        if isinstance(outcome, Answer):
            assert isinstance(data, bytes)  # only readable uploads were classified
            results.append(
                FilePrediction(
                    **_prediction_fields(request, outcome, data, service.settings.pet_threshold),
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
    response = _json(BatchOut(results=results, latency_ms=_elapsed_ms(request)))
    if server_faults:  # some files may succeed if sent again
        response.headers["Retry-After"] = str(service.settings.retry_after_s)
    return response
