"""POST /admin/reload: serve another model without dropping a request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from catdog.errors import ModelError, RequestRefusedError, ServiceUnavailableError
from catdog.model_store import REGISTRY_SCHEMES
from catdog.serving.deps import AdminDep, ServiceDep
from catdog.serving.runner import RunnerStoppedError
from catdog.serving.schemas import ErrorOut, ReloadIn, ReloadOut

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[AdminDep])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No bearer token (`WWW-Authenticate: Bearer`)."},
    403: {"model": ErrorOut, "description": "Wrong token, or admin disabled (no token set)."},
    422: {
        "model": ErrorOut,
        "description": "The model cannot be found, loaded or run, or is outside CATDOG_MODEL_ROOT.",
    },
    503: {"model": ErrorOut, "description": "A runner process failed during the reload."},
}


def check_allowed(spec: str | None, root: Path) -> None:
    """Refuse a model that is neither a registry URI nor under `root`, before anything reads
    it: a reload must not load, or say whether there is, any file the process can read."""
    if spec is None or spec.startswith(REGISTRY_SCHEMES):
        return
    try:
        inside = Path(spec).resolve().is_relative_to(root.resolve())
    except (OSError, ValueError):  # a NUL byte, a loop of links: not a path to load anyway
        inside = False
    if not inside:
        raise RequestRefusedError(
            f"{spec} is not under CATDOG_MODEL_ROOT; give a models:/ or runs:/ URI, or a path "
            "under it",
            reason="model_outside_root",
        )


@router.post("/reload", responses=_REFUSALS)
async def reload(body: ReloadIn, request: Request, service: ServiceDep) -> ReloadOut:
    """Load and warm another model, then swap it in; requests in flight finish on the old one."""
    check_allowed(body.model, service.settings.model_root)
    try:
        model, previous = await service.models.reload(body.model)
    except RunnerStoppedError as exc:  # the service's fault, not the model's: try again
        raise ServiceUnavailableError(exc.detail, reason=exc.reason) from exc
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
