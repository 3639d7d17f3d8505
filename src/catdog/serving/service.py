"""One worker's inference service: uploads in, answers out, everything off the event loop.

Routes stay thin and call `classify`/`classify_many`; this is where admission, batching (decoding
included), the per-request timeout and the prediction metrics meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from dataclasses import dataclass

import structlog

from catdog.errors import CatdogError, ServiceUnavailableError
from catdog.monitoring.stats import Look
from catdog.prediction import Prediction
from catdog.serving.batching import Admission, MicroBatcher
from catdog.serving.metrics import ServiceMetrics
from catdog.serving.model_slot import ModelSlot
from catdog.serving.runner import RunnerProcess, runner_processes
from catdog.serving.settings import Settings


@dataclass(frozen=True)
class Answer:
    """One image's prediction and where it came from."""

    prediction: Prediction
    model_version: str
    batch_size: int
    look: Look | None = None  # for the prediction log, as the runner decoded the photo


class InferenceService:
    """Admission, batching and the served model of one worker process."""

    def __init__(
        self,
        settings: Settings,
        metrics: ServiceMetrics,
        runners: list[RunnerProcess] | None = None,
    ) -> None:
        """`runners`: this worker's runner processes, if the caller started them early."""
        self.settings = settings
        self.metrics = metrics
        ort_threads, count = settings.threads_per_worker()
        self.admission = Admission(settings.queue_size, metrics)
        self.batcher = MicroBatcher(
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000,
            metrics=metrics,
            runners=runners or runner_processes(count, call_timeout_s=settings.runner_deadline_s),
            ort_threads=ort_threads,
            ort_spinning=settings.ort_spinning,
            max_pixels=settings.max_pixels,
        )
        self.models = ModelSlot(
            settings.model, batcher=self.batcher, metrics=metrics, reload_file=settings.reload_file
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start batching and load the model in the background: /health answers at once and
        /ready turns 200 when the model is warm."""
        self.batcher.start()
        self._tasks = [
            asyncio.create_task(self._load_and_freeze(), name="catdog-load"),
            asyncio.create_task(self.models.follow(), name="catdog-follow"),
        ]

    async def _load_and_freeze(self) -> None:
        await self.models.load_initial()
        # What exists now (libraries, the app, the model) lives as long as the process: keep it
        # out of the cyclic garbage collector's full passes, which otherwise pause the event
        # loop for tens of milliseconds under load.
        gc.collect()
        gc.freeze()

    async def stop(self) -> None:
        """Stop background work; called after the server drained the requests in flight."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.batcher.stop()
        self.models.close()

    async def classify(self, data: bytes) -> Answer:
        """Classify one upload, or raise a CatdogError (refused image, 503 overload/timeout)."""
        with self.admission.admit(1):
            return await self._classify_in_time(data)

    async def classify_many(self, uploads: list[bytes]) -> list[Answer | CatdogError]:
        """Classify several uploads together; each gets its answer or its own error, in order."""
        with self.admission.admit(len(uploads)):
            results = await asyncio.gather(
                *(self._classify_in_time(data) for data in uploads), return_exceptions=True
            )
        out: list[Answer | CatdogError] = []
        for result in results:
            if isinstance(result, Answer | CatdogError):
                out.append(result)
            else:
                raise result
        return out

    async def _classify_in_time(self, data: bytes) -> Answer:
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                return await self._classify(data)
        except TimeoutError:
            limit = self.settings.request_timeout_s
            raise ServiceUnavailableError(
                f"no answer within {limit:g} s (CATDOG_REQUEST_TIMEOUT_S)", reason="timeout"
            ) from None

    async def _classify(self, data: bytes) -> Answer:
        model = self.models.current
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        scored = await self.batcher.submit(model, data, request_id)
        prediction = model.to_prediction(scored.scores)
        self.metrics.predictions.labels(label=prediction.label).inc()
        self.metrics.confidence.labels(label=prediction.label).observe(prediction.confidence)
        return Answer(prediction, model.version, scored.batch_size, scored.look)
