"""POST /admin/reload: serve another model without dropping a request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from catdog.errors import ModelError, RequestRefusedError
from catdog.serving.deps import AdminDep, ServiceDep
from catdog.serving.schemas import ErrorOut, ReloadIn, ReloadOut

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No bearer token."},
    403: {"model": ErrorOut, "description": "Wrong token, or admin disabled (no token set)."},
    422: {"model": ErrorOut, "description": "The model cannot be found, loaded or run."},
}


@router.post("/reload", responses=_REFUSALS)
async def reload(body: ReloadIn, request: Request, service: ServiceDep) -> ReloadOut:
    """Load and warm another model, then swap it in; requests in flight finish on the old one."""
    try:
        model, previous = await service.models.reload(body.model)
    except ModelError as exc:
        raise RequestRefusedError(exc.detail, reason="bad_model") from exc
    shared = service.settings.reload_file is not None
    request.state.log.update(model_version=model.version, model=body.model)
    return ReloadOut(
        model_version=model.version,
        previous_version=previous.version if previous else None,
        model=body.model,
        workers="the other workers follow within about 1 s" if shared else "one worker: done",
    )
