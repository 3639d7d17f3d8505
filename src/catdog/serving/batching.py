"""Dynamic micro-batching and admission control.

Requests decode their own upload in a thread pool, then hand the ready array to one batch worker
that groups whatever is waiting (up to `max_batch`, or until `max_wait_s` after the first) into a
single model run in a thread of its own: ONNX Runtime releases the GIL, so decoding, the event
loop and the model all make progress at once. `Admission` bounds the images held at any moment,
so overload is answered with an immediate 503 instead of a queue that grows without end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from time import perf_counter
from typing import NamedTuple

import numpy as np

from catdog.errors import ModelError, ServiceUnavailableError
from catdog.predictor import OnnxClassifier
from catdog.serving.metrics import ServiceMetrics
from catdog.serving.priority import lower_this_thread


def overloaded(detail: str) -> ServiceUnavailableError:
    """The 503 a caller gets when this worker holds all the images it may hold."""
    return ServiceUnavailableError(detail, reason="overloaded")


class Admission:
    """Counts images from acceptance to answer and refuses what would exceed `capacity`.

    Lives on the event loop only, so a plain counter is race-free.
    """

    def __init__(self, capacity: int, metrics: ServiceMetrics) -> None:
        self.capacity = capacity
        self._held = 0
        self._metrics = metrics

    @property
    def full(self) -> bool:
        """True when not even one more image would be admitted."""
        return self._held >= self.capacity

    @contextlib.contextmanager
    def admit(self, images: int = 1) -> Iterator[None]:
        """Hold `images` slots for the duration of the block, or raise a 503 at once."""
        if self._held + images > self.capacity:
            raise overloaded(
                f"{self._held} images in progress, limit {self.capacity} (CATDOG_QUEUE_SIZE)"
            )
        self._held += images
        self._metrics.in_flight.set(self._held)
        try:
            yield
        finally:
            self._held -= images
            self._metrics.in_flight.set(self._held)


class Scored(NamedTuple):
    """One image's probabilities and the size of the batch it ran in."""

    probabilities: np.ndarray
    batch_size: int


@dataclass(eq=False)
class _Job:
    model: OnnxClassifier
    image: np.ndarray
    future: asyncio.Future[Scored] = field(repr=False)


class MicroBatcher:
    """Groups concurrent images into model runs. Each job names its model, so a reload never
    mixes models in one batch and jobs admitted before a swap finish on the model they were
    preprocessed for."""

    def __init__(
        self, *, max_batch: int, max_wait_s: float, capacity: int, metrics: ServiceMetrics
    ) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=capacity)
        self._metrics = metrics
        self._runner = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="catdog-model", initializer=lower_this_thread
        )
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the batch worker on the running event loop."""
        self._worker = asyncio.create_task(self._run(), name="catdog-batcher")

    async def stop(self) -> None:
        """Stop the worker; jobs still queued (none after a graceful drain) get a 503."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(
                    ServiceUnavailableError("the service is shutting down", reason="shutting_down")
                )
        self._runner.shutdown(wait=True)

    async def submit(self, model: OnnxClassifier, image: np.ndarray) -> Scored:
        """Queue one preprocessed image for `model` and wait for its probabilities."""
        job = _Job(model, image, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise overloaded("the model queue is full") from None
        self._metrics.queue_depth.set(self._queue.qsize())
        return await job.future

    async def _run(self) -> None:
        while True:
            jobs = await self._collect()
            self._metrics.queue_depth.set(self._queue.qsize())
            # A job whose caller timed out or went away is not worth a model run.
            live = [job for job in jobs if not job.future.done()]
            for model in dict.fromkeys(job.model for job in live):
                await self._run_batch(model, [job for job in live if job.model is model])

    async def _collect(self) -> list[_Job]:
        """Wait for one job, then gather more until the batch is full or the wait is over."""
        jobs = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(jobs) < self.max_batch:
            if not self._queue.empty():
                jobs.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    jobs.append(await self._queue.get())
            except TimeoutError:
                break
        return jobs

    async def _run_batch(self, model: OnnxClassifier, jobs: list[_Job]) -> None:
        batch = np.stack([job.image for job in jobs])
        started = perf_counter()
        try:
            rows = await asyncio.get_running_loop().run_in_executor(
                self._runner, model.predict_batch, batch
            )
        except Exception as exc:  # ONNX Runtime's errors are untyped; fail this batch only
            error = ModelError(f"the model failed on a batch of {len(jobs)}: {exc}")
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self._metrics.inference.observe(perf_counter() - started)
        self._metrics.batch_size.observe(len(jobs))
        for job, row in zip(jobs, rows, strict=True):
            if not job.future.done():
                job.future.set_result(Scored(row, len(jobs)))
