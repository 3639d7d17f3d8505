"""POST /predict and /predict/batch: photos in, labels out."""

from __future__ import annotations

import uuid
from time import perf_counter
from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile

from catdog.errors import CatdogError, RequestRefusedError, image_error
from catdog.serving.deps import ServiceDep
from catdog.serving.schemas import BatchOut, ErrorOut, FileError, FilePrediction, PredictionOut
from catdog.serving.service import Answer

router = APIRouter(tags=["predict"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "Too many bytes, pixels or files."},
    415: {"model": ErrorOut, "description": "Not a photo format (SVG, PDF, HTML)."},
    422: {"model": ErrorOut, "description": "Missing field, not an image, truncated, undecodable."},
    503: {"model": ErrorOut, "description": "Overloaded, timed out or not ready: see Retry-After."},
}


async def _read(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes; a file over the limit is refused without reading it all."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        name = upload.filename or "the file"
        raise image_error(
            "too_many_bytes", f"{name} is over {limit:,} bytes (CATDOG_MAX_UPLOAD_MB)"
        )
    return data


def _elapsed_ms(request: Request) -> float:
    started: float = request.state.started
    return round((perf_counter() - started) * 1000, 2)


def _prediction_fields(answer: Answer) -> dict[str, Any]:
    return {
        "label": answer.prediction.label,
        "confidence": answer.prediction.confidence,
        "probabilities": answer.prediction.probabilities,
        "prediction_id": uuid.uuid4().hex,
        "model_version": answer.model_version,
        "batch_size": answer.batch_size,
    }


@router.post("/predict", responses=_REFUSALS)
async def predict(
    request: Request,
    service: ServiceDep,
    file: Annotated[UploadFile, File(description="A photo: JPEG, PNG, WebP, GIF, BMP, TIFF...")],
) -> PredictionOut:
    """Classify one photo as cat or dog."""
    answer = await service.classify(await _read(file, service.settings.max_upload_bytes))
    fields = _prediction_fields(answer)
    request.state.log.update({k: v for k, v in fields.items() if k != "probabilities"})
    return PredictionOut(**fields, latency_ms=_elapsed_ms(request))


@router.post("/predict/batch", responses=_REFUSALS)
async def predict_batch(
    request: Request,
    service: ServiceDep,
    files: Annotated[list[UploadFile], File(description="Several photos, in the order wanted.")],
) -> BatchOut:
    """Classify several photos; each gets its prediction or its own refusal, in order."""
    limit = service.settings.max_batch_files
    if len(files) > limit:
        refusal = RequestRefusedError(
            f"{len(files)} files sent, at most {limit} (CATDOG_MAX_BATCH_FILES)",
            reason="too_many_files",
        )
        refusal.http_status = 413
        raise refusal
    uploads: list[bytes | CatdogError] = []
    for upload in files:
        try:
            uploads.append(await _read(upload, service.settings.max_upload_bytes))
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
                    **_prediction_fields(outcome),
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
    return BatchOut(results=results, latency_ms=_elapsed_ms(request))
