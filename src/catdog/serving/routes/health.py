"""Liveness, readiness, the model card and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from catdog.errors import ServiceUnavailableError
from catdog.serving.deps import ServiceDep
from catdog.serving.schemas import ErrorOut, ModelCard, StatusOut

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health(request: Request) -> StatusOut:
    """Liveness: the process answers. Restart it when this fails, not when /ready does. `store`
    says whether the prediction log is being written (a store that is down fails nothing)."""
    return StatusOut(status="ok", store=request.app.state.prediction_log.state)


@router.get(
    "/ready",
    responses={503: {"model": ErrorOut, "description": "Not ready yet."}},
    response_model_exclude_none=True,
)
async def ready(service: ServiceDep) -> StatusOut:
    """Readiness: 200 once a warmed model serves and a runner process is up; 503 (reason
    `not_ready`, or `runners_down` while every runner is being replaced) otherwise."""
    model = service.models.current
    up = service.batcher.runners_up
    service.metrics.runners_up.set(up)
    if not up:
        raise ServiceUnavailableError(
            "no runner process is up (they are being restarted)", reason="runners_down"
        )
    return StatusOut(status="ready", model_version=model.version)


@router.get("/model", responses={503: {"model": ErrorOut, "description": "Not ready yet."}})
async def model_card(service: ServiceDep) -> ModelCard:
    """The card of the model being served: version, metrics, preprocessing, provenance."""
    card: dict[str, Any] = service.models.current.card
    return card


@router.get("/metrics", response_class=Response)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text format (all workers' series when there are several)."""
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
