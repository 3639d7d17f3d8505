"""POST /feedback: the true label of an answered photo, for live accuracy and retraining.

Guarded by the admin token (CATDOG_API_TOKEN): labels steer retraining, so only the shelter's
own systems may send them. The answer is sent only after the store committed the label.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request

from catdog.errors import StoreError
from catdog.monitoring.prediction_log import PredictionLog
from catdog.monitoring.records import utcnow
from catdog.monitoring.store import FeedbackOutcome
from catdog.serving.deps import AdminDep, ServiceDep
from catdog.serving.schemas import ErrorOut, FeedbackIn, FeedbackOut

router = APIRouter(tags=["monitoring"], dependencies=[AdminDep])

# A prediction answered a moment ago may still be queued for the log.
PENDING_WAIT_S = 5.0

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No bearer token."},
    403: {"model": ErrorOut, "description": "Wrong token, or no CATDOG_API_TOKEN set."},
    404: {"model": ErrorOut, "description": "Unknown prediction id, or older than retention."},
    422: {"model": ErrorOut, "description": "Malformed body, or a label the model does not know."},
    503: {"model": ErrorOut, "description": "The prediction store is down: send it again later."},
}


async def _record(log: PredictionLog, body: FeedbackIn, retention_days: float) -> FeedbackOutcome:
    # A row still queued cannot be found yet (nor, at start-up, can the store before its
    # migration): wait for the writer to store it, or drop it.
    deadline = time.monotonic() + PENDING_WAIT_S
    while log.is_pending(body.prediction_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return await asyncio.to_thread(
        log.store.record_feedback,
        body.prediction_id,
        body.label,
        now=utcnow(),
        retention_days=retention_days,
    )


@router.post("/feedback", responses=_REFUSALS)
async def feedback(body: FeedbackIn, request: Request, service: ServiceDep) -> FeedbackOut:
    """Record the true label of a prediction (`prediction_id` from its answer). Sending
    another label for the same id replaces the first; it is counted once."""
    log: PredictionLog = request.app.state.prediction_log
    outcome = await _record(log, body, service.settings.retention_days)
    correct = outcome.predicted == outcome.label
    metrics = service.metrics
    if outcome.first:
        outcome_label = "correct" if correct else "wrong"
        metrics.feedback.labels(model_version=outcome.model_version, outcome=outcome_label).inc()
    try:
        window = await asyncio.to_thread(
            log.store.recent_labelled, outcome.model_version, service.settings.accuracy_window
        )
    except StoreError:
        window = []  # the label is stored; the gauge catches up with the next one
    if window:
        right = sum(predicted == true for predicted, true in window)
        version = outcome.model_version
        metrics.live_accuracy.labels(model_version=version).set(right / len(window))
        metrics.live_labelled.labels(model_version=version).set(len(window))
    request.state.log.update(
        prediction_id=outcome.prediction_id, feedback=outcome.label, correct=correct
    )
    return FeedbackOut(
        prediction_id=outcome.prediction_id,
        label=outcome.label,
        predicted=outcome.predicted,
        correct=correct,
        model_version=outcome.model_version,
        replaced=not outcome.first,
    )
