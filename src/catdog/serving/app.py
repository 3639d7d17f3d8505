"""The app factory: one FastAPI app per call, its state on `app.state`, nothing global.

`uvicorn --factory catdog.serving.app:create_app` (what `catdog serve --workers N` runs in each
worker) builds it from the CATDOG_* environment; tests pass their own Settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from catdog import __version__
from catdog.monitoring.prediction_log import PredictionLog
from catdog.monitoring.store import PredictionStore
from catdog.serving.error_handlers import install_error_handlers
from catdog.serving.log import configure_logging
from catdog.serving.metrics import ServiceMetrics
from catdog.serving.middleware import (
    BodyBudget,
    RequestContextMiddleware,
    UploadGuardMiddleware,
)
from catdog.serving.routes import admin, feedback, health, page, predict
from catdog.serving.runner import RunnerProcess
from catdog.serving.service import InferenceService
from catdog.serving.settings import Settings, load_settings

# Multipart framing around a file: boundaries, headers, the filename.
MULTIPART_OVERHEAD = 64 * 1024

DESCRIPTION = """Tells cats from dogs in photos. Every refusal is JSON:
`{"error": reason, "detail": ...}`; a 503 carries `Retry-After`."""


def create_app(
    settings: Settings | None = None, *, runners: list[RunnerProcess] | None = None
) -> FastAPI:
    """Build the service: routes, error handlers, middleware, and the lifespan that loads the
    model in the background and stops the batch worker after the server drained. `runners`:
    runner processes started before this module was imported (`catdog serve`), else new ones."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    metrics = ServiceMetrics()
    service = InferenceService(settings, metrics, runners)
    prediction_log = PredictionLog(
        PredictionStore(settings.store_url),
        metrics,
        queue_size=settings.log_queue_size,
        max_queued_bytes=int(settings.log_queue_mb * 1024 * 1024),
        retention_days=settings.retention_days,
        keep_photos=settings.keep_photos,
        model_path=lambda: service.models.current.path if service.models.ready else None,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        prediction_log.start()
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            # After the drain: every answered photo is queued; store them before exiting.
            prediction_log.stop()

    app = FastAPI(title="catdog", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.service = service
    app.state.prediction_log = prediction_log
    for module in (predict, feedback, health, admin, page):
        app.include_router(module.router)
    install_error_handlers(app, metrics=metrics, retry_after_s=settings.retry_after_s)
    one_file = settings.max_upload_bytes + MULTIPART_OVERHEAD
    budget = settings.body_budget_bytes  # a body larger than the whole budget never fits
    app.add_middleware(
        UploadGuardMiddleware,
        limits={
            "/predict": min(one_file, budget),
            "/predict/batch": min(one_file * settings.max_batch_files, budget),
        },
        admission=service.admission,
        budget=BodyBudget(budget, metrics),
        metrics=metrics,
        retry_after_s=settings.retry_after_s,
        body_timeout_s=settings.body_timeout_s,
    )
    # Added last, so outermost: it sees (and logs) the guard's refusals too.
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
