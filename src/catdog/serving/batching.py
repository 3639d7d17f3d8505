"""Dynamic micro-batching and admission control.

The event loop only queues an upload's bytes and awaits its answer. A runner thread per runner
process does the rest: one at a time, a thread gathers what is waiting (up to `max_batch`, or
until `max_wait_s` after the first; with no wait, at most its runner's share of what is in
flight) and, while the next thread gathers, hands its batch to its runner process to decode and
run (catdog.serving.runner), waiting on the pipe without the GIL.
Several runs side by side use a small CPU better than one run split across its cores, and every
batch costs the loop one wake-up. `Admission` bounds the images held at any moment, so overload
is answered with an immediate 503 instead of a queue that grows without end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from time import monotonic, sleep
from typing import NamedTuple

import structlog

from catdog.errors import DEFAULT_MAX_PIXELS, CatdogError, ImageError, ServiceUnavailableError
from catdog.monitoring.stats import Look
from catdog.prediction import ServedModel
from catdog.serving.metrics import ServiceMetrics
from catdog.serving.protocol import Load, Run, Scores
from catdog.serving.runner import RunnerProcess, RunnerStoppedError

log = structlog.get_logger("catdog.serving")

# How long `stop` waits for the runner threads to finish the batches in their hands.
STOP_GRACE_S = 5.0
# How often a runner thread whose runner is down looks whether it is back.
RUNNER_DOWN_POLL_S = 0.02


def overloaded(detail: str) -> ServiceUnavailableError:
    """The 503 a caller gets when this worker holds all the images it may hold."""
    return ServiceUnavailableError(detail, reason="overloaded")


def shutting_down() -> ServiceUnavailableError:
    """The 503 of an image still queued when the service stops (none after a graceful drain)."""
    return ServiceUnavailableError("the service is shutting down", reason="shutting_down")


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
    """One image's scores (probabilities, then the pet score), the size of the batch it ran in,
    and its look."""

    scores: Scores
    batch_size: int
    look: Look | None = None


@dataclass(eq=False)
class _Job:
    model: ServedModel
    data: bytes = field(repr=False)
    future: asyncio.Future[Scored] = field(repr=False)
    request_id: str | None = None
    crashes: int = 0  # batches of this job whose runner crashed or hung under them

    @property
    def alone(self) -> bool:
        """After a crash a job runs alone, so a second crash names the photo that causes it."""
        return self.crashes > 0


def poison(job: _Job) -> CatdogError:
    """The 422 of a photo that stopped a runner twice: never tried a third time."""
    digest = hashlib.sha256(job.data).hexdigest()
    log.error("poison_photo", sha256=digest, bytes=len(job.data), request_id=job.request_id)
    # A reason of the service's own (the data stage never runs a decoder it can lose).
    return ImageError(
        f"decoding this photo stopped a runner twice (sha256 {digest}); it is not retried",
        reason="crashes_decoder",
        http_status=422,
    )


# What a runner thread hands back to the loop for one job: its answer or its own error.
_Outcome = tuple["asyncio.Future[Scored]", "Scored | CatdogError"]


class MicroBatcher:
    """Groups concurrent uploads into model runs on a few runner processes. Each job names its
    model, so a reload never mixes models in one batch, and jobs admitted before a swap finish on
    the model they were admitted for: a replaced model stays loaded until its last job is done."""

    def __init__(
        self,
        *,
        max_batch: int,
        max_wait_s: float,
        metrics: ServiceMetrics,
        runners: list[RunnerProcess],
        ort_threads: int = 1,
        ort_spinning: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_pixels = max_pixels
        self.ort_threads = ort_threads
        self.ort_spinning = ort_spinning
        self.runners = runners
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._gathering = threading.Lock()  # one runner thread gathers a batch at a time
        self._metrics = metrics
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._holding: Counter[str] = Counter()  # jobs not yet answered, by model key
        self._unanswered = 0  # their total (written on the loop, read by the runner threads)
        self._retired: set[str] = set()  # replaced models, dropped once nothing holds them
        self._drops: set[asyncio.Task[None]] = set()
        self._on_dropped: dict[str, Callable[[str], None]] = {}
        self._carry: list[_Job] = []  # a job to run alone, taken by the next gather
        self._stopping = False

    @property
    def runners_up(self) -> int:
        """Runner processes alive now (the supervisors restart the others at once)."""
        return sum(runner.running for runner in self.runners)

    def start(self) -> None:
        """Start the runner processes and their threads; answers go back to the running loop."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        for runner in self.runners:
            runner.on_restart = self._count_restart
            runner.start()
        self._metrics.runners_up.set(self.runners_up)
        self._threads = [
            threading.Thread(target=self._work, args=(runner,), name=runner.name, daemon=True)
            for runner in self.runners
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        """Stop after the batches in hand; what is still queued gets a 503; runners exit. A
        hung runner is killed, not waited for past the grace period."""
        self._stopping = True
        self._jobs.put(None)  # each runner thread passes the stop on to the next
        await asyncio.to_thread(self._join, STOP_GRACE_S)
        await asyncio.to_thread(self._close_runners)
        await asyncio.to_thread(self._join, 1.0)
        left = [*self._carry]
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                left.append(job)
        for job in left:
            if not job.future.done():
                job.future.set_exception(shutting_down())

    def _join(self, grace_s: float) -> None:
        deadline = monotonic() + grace_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - monotonic()))

    def _count_restart(self, cause: str) -> None:
        self._metrics.runner_restarts.labels(cause=cause).inc()
        self._metrics.runners_up.set(self.runners_up)

    def _close_runners(self) -> None:
        for runner in self.runners:
            runner.close()

    async def load(self, model: ServedModel, *, serving: bool = True) -> None:
        """Load and warm `model` in every runner: one after the other while the service is
        `serving`, so the rest keep answering, else all at once. If one cannot, none keeps it
        and its ModelError is raised."""
        message = Load(model.key, str(model.path), self.ort_threads, self.ort_spinning)
        try:
            if serving:
                for runner in self.runners:
                    await asyncio.to_thread(runner.load, message)
            else:
                await asyncio.gather(
                    *(asyncio.to_thread(runner.load, message) for runner in self.runners)
                )
        except CatdogError:
            await self._drop(model.key)
            raise

    def retire(self, model: ServedModel, on_dropped: Callable[[str], None] | None = None) -> None:
        """`model` is no longer served: drop it from the runners once its last job is done,
        then call `on_dropped` with its key."""
        self._retired.add(model.key)
        if on_dropped is not None:
            self._on_dropped[model.key] = on_dropped
        if not self._holding[model.key]:
            self._schedule_drop(model.key)

    async def submit(
        self, model: ServedModel, data: bytes, request_id: str | None = None
    ) -> Scored:
        """Queue one upload for `model` and wait for its probabilities (or its ImageError).
        `Admission` bounds what is queued: the queue itself needs no limit."""
        job = _Job(model, data, asyncio.get_running_loop().create_future(), request_id)
        self._holding[model.key] += 1
        self._unanswered += 1
        self._jobs.put(job)
        self._metrics.queue_depth.set(self._jobs.qsize())
        try:
            return await job.future
        finally:
            # The future holds the error raised here, whose traceback holds this frame: drop
            # the job, or the cycle keeps the upload's bytes until a full garbage collection.
            del job
            self._unanswered -= 1
            self._holding[model.key] -= 1
            if not self._holding[model.key]:
                del self._holding[model.key]
                if model.key in self._retired:
                    self._schedule_drop(model.key)

    def _schedule_drop(self, key: str) -> None:
        self._retired.discard(key)
        task = asyncio.get_running_loop().create_task(self._drop(key), name="catdog-drop")
        self._drops.add(task)
        task.add_done_callback(self._drops.discard)

    async def _drop(self, key: str) -> None:
        for runner in self.runners:
            with contextlib.suppress(CatdogError):  # a runner that died forgot it anyway
                await asyncio.to_thread(runner.drop, key)
        dropped = self._on_dropped.pop(key, None)
        if dropped is not None:
            dropped(key)

    def _work(self, runner: RunnerProcess) -> None:
        while True:
            while not runner.running and not self._stopping:  # its supervisor restarts it
                sleep(RUNNER_DOWN_POLL_S)
            with self._gathering:
                jobs = self._gather()
            if jobs is None:
                return
            outcomes = self._process(runner, jobs)
            if outcomes and self._loop is not None:
                self._loop.call_soon_threadsafe(_deliver, outcomes)
            del jobs, outcomes  # not kept (with their uploads) while waiting for the next

    def _gather(self) -> list[_Job] | None:
        """Wait for one job, then gather more until the batch is full or the wait is over.
        None once the service stops (a batch gathered by then is still processed). A job
        retried after a crash runs alone."""
        first = self._carry.pop() if self._carry else self._jobs.get()
        if first is None:
            self._jobs.put(None)
            return None
        jobs = [first]
        deadline = monotonic() + self.max_wait_s
        while not first.alone and len(jobs) < self._batch_limit():
            try:
                job = self._jobs.get(timeout=max(0.0, deadline - monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._jobs.put(None)
                break
            if job.alone:
                self._carry.append(job)
                break
            jobs.append(job)
        self._metrics.queue_depth.set(self._jobs.qsize())
        return jobs

    def _batch_limit(self) -> int:
        """`max_batch`; with no wait, also this runner's share of the images in flight. A runner
        that took everything queued would leave the others idle until its long batch is done:
        at concurrency 8 on 2 runners, shares of 4 served ~10% more images/s than batches of up
        to 8 (README, Benchmarks). A wait means batches are wanted full (an accelerator)."""
        if self.max_wait_s:
            return self.max_batch
        return min(self.max_batch, -(-self._unanswered // len(self.runners)))

    def _process(self, runner: RunnerProcess, jobs: list[_Job]) -> list[_Outcome]:
        """One run per model among the live jobs (a caller that timed out is not worth one)."""
        groups: dict[ServedModel, list[_Job]] = {}
        for job in jobs:
            if not job.future.done():
                groups.setdefault(job.model, []).append(job)
        outcomes: list[_Outcome] = []
        for model, group in groups.items():
            message = Run(model.key, [job.data for job in group], self.max_pixels)
            try:
                ran = runner.run(message)
            except RunnerStoppedError as exc:  # the runner died or hung: run the batch again
                outcomes += self._retry(runner, group, exc)
                continue
            except CatdogError as exc:  # the model failed: this batch only
                outcomes += [(job.future, exc) for job in group]
                continue
            size = sum(not isinstance(outcome, CatdogError) for outcome in ran.outcomes)
            if size:
                self._metrics.inference.observe(ran.seconds)
                self._metrics.batch_size.observe(size)
            for job, outcome, seen in zip(group, ran.outcomes, ran.looks, strict=True):
                answer = (
                    outcome if isinstance(outcome, CatdogError) else Scored(outcome, size, seen)
                )
                outcomes.append((job.future, answer))
        return outcomes

    def _retry(
        self, runner: RunnerProcess, group: list[_Job], exc: RunnerStoppedError
    ) -> list[_Outcome]:
        """Queue a dead runner's jobs again (inference is idempotent). After a crash the batch
        may have caused (not a SIGKILL from outside), each runs alone; a job whose runner
        crashed under it alone already is a poison pill, refused for good."""
        log.warning(
            "batch_retried",
            runner=runner.name,
            reason=exc.reason,
            suspect=exc.suspect,
            detail=exc.detail,
            request_ids=sorted({job.request_id or "" for job in group}),
        )
        refused: list[_Outcome] = []
        for job in group:
            if exc.suspect:
                if job.alone:
                    refused.append((job.future, poison(job)))
                    continue
                job.crashes += 1
            if self._stopping:
                refused.append((job.future, shutting_down()))
            else:
                self._jobs.put(job)
        return refused


def _deliver(outcomes: list[_Outcome]) -> None:
    """On the event loop: hand each waiting caller its answer (one loop wake-up per batch)."""
    for future, outcome in outcomes:
        if future.done():
            continue
        if isinstance(outcome, CatdogError):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
