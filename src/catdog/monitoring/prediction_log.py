"""The prediction log's writer: answers are queued on the request path and stored by a thread.

The request path only does `put_nowait` on a bounded queue: a slow or dead database can neither
slow an answer down nor fail it. A full queue or a store that is down drops the row and counts
it (catdog_prediction_log_dropped_total); the writer keeps retrying the store and /health says
`degraded` meanwhile. A photo's statistics come from the runner that decoded it for the model
(`Answered.look`): this process never decodes a photo.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import structlog

from catdog.errors import StoreError
from catdog.monitoring.baseline import load_baseline_beside
from catdog.monitoring.records import Answered, utcnow
from catdog.monitoring.stats import STATISTICS
from catdog.monitoring.store import PredictionStore
from catdog.serving.metrics import ServiceMetrics

log = structlog.get_logger("catdog.monitoring")

StoreState = Literal["starting", "ok", "degraded"]
BATCH_ROWS = 256
RETRY_S = 5.0
PRUNE_EVERY_S = 3600.0
_STOP = object()


class PredictionLog:
    """A bounded queue and the thread that drains it into the store."""

    def __init__(
        self,
        store: PredictionStore,
        metrics: ServiceMetrics,
        *,
        queue_size: int,
        retention_days: float,
        max_queued_bytes: int = 256 * 1024 * 1024,
        keep_photos: Path | None = None,
        model_path: Callable[[], Path | None] = lambda: None,
    ) -> None:
        """`model_path`: the served model's file, whose drift baseline the metrics show."""
        self.store = store
        self.metrics = metrics
        self.retention_days = retention_days
        self.keep_photos = keep_photos
        self._model_path = model_path
        self._baseline_of: Path | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._migrated = False
        self._next_try = 0.0
        self._next_prune = 0.0
        self.state: StoreState = "starting"

    # -- the request path ----------------------------------------------------------------------

    def submit(self, answered: Answered, is_pet: bool | None = None) -> None:
        """Queue one answer for the log; never blocks, never raises."""
        if is_pet is False:
            self.metrics.not_a_pet.inc()
        size = len(answered.photo)
        with self._lock:
            if self._queued_bytes + size > self._max_queued_bytes:
                self.metrics.log_dropped.labels(reason="queue_full").inc()
                return
            try:
                self._queue.put_nowait(answered)
            except queue.Full:
                self.metrics.log_dropped.labels(reason="queue_full").inc()
                return
            self._queued_bytes += size
            self._pending.add(answered.prediction_id)
        self.metrics.log_queue_depth.inc()

    def is_pending(self, prediction_id: str) -> bool:
        """Queued and not yet stored (or dropped)."""
        with self._lock:
            return prediction_id in self._pending

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the writer thread (it migrates the store first, retrying while it is down)."""
        self._thread = threading.Thread(target=self._run, name="catdog-prediction-log", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Store what is queued, then end the thread."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        self._thread = None
        self.store.close()

    # -- the writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        self._connect()
        while True:
            batch: list[Answered] = []
            try:
                item = self._queue.get(timeout=1.0)
            except queue.Empty:
                self._housekeeping()
                continue
            stopping = item is _STOP
            if not stopping:
                batch.append(item)
            while len(batch) < BATCH_ROWS and not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            if stopping:
                return
            self._housekeeping()

    def _connect(self) -> bool:
        """Migrate the store once it answers; False (and `degraded`) while it does not."""
        if time.monotonic() < self._next_try:
            return False
        if self._migrated:
            return True
        try:
            self.store.migrate_apart()  # Alembic stays out of this long-lived process
        except StoreError as exc:
            self._degrade(exc)
            return False
        self._migrated = True
        self._set_state("ok")
        log.info("prediction_store_ready", store=self.store.describe())
        return True

    def _write(self, batch: list[Answered]) -> None:
        rows = [self._row(answered) for answered in batch]
        stored = False
        if self._connect():
            try:
                self.store.add(rows)
                stored = True
            except StoreError as exc:
                self._degrade(exc)
        if stored:
            self._set_state("ok")
            self.metrics.log_written.inc(len(rows))
        else:
            self.metrics.log_dropped.labels(reason="store_down").inc(len(rows))
        with self._lock:
            self._pending.difference_update(a.prediction_id for a in batch)
            self._queued_bytes -= sum(len(a.photo) for a in batch)
        self.metrics.log_queue_depth.dec(len(batch))

    def _row(self, answered: Answered) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": answered.prediction_id,
            "created_at": answered.created_at,
            "model_version": answered.model_version,
            "label": answered.label,
            "confidence": answered.confidence,
            "probabilities": answered.probabilities,
            "pet_score": answered.pet_score,
            "sha256": hashlib.sha256(answered.photo).hexdigest(),
            "bytes": len(answered.photo),
            "width": None,
            "height": None,
            **dict.fromkeys(STATISTICS),
        }
        if answered.look is not None:  # measured by the runner that decoded it; else none
            row.update(answered.look.columns())
            for statistic in STATISTICS:
                self.metrics.input_stats[statistic].observe(row[statistic])
        if self.keep_photos is not None:
            self._keep(row["sha256"], answered.photo)
        return row

    def _keep(self, sha256: str, photo: bytes) -> None:
        """Opt-in (CATDOG_KEEP_PHOTOS): the photo's bytes, once per distinct photo."""
        assert self.keep_photos is not None
        path = self.keep_photos / sha256[:2] / sha256
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial")
            partial.write_bytes(photo)
            partial.replace(path)
        except OSError as exc:
            log.warning("photo_not_kept", sha256=sha256, error=str(exc))

    def _housekeeping(self) -> None:
        """Retention (hourly, in batches) and the served model's drift baseline gauges."""
        self._show_baseline()
        if time.monotonic() < self._next_prune or not self._connect():
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        try:
            removed = self.store.prune(utcnow() - timedelta(days=self.retention_days))
        except StoreError as exc:
            self._degrade(exc)
            return
        if removed:
            log.info("prediction_log_pruned", rows=removed, retention_days=self.retention_days)

    def _show_baseline(self) -> None:
        path = self._model_path()
        if path is None or path == self._baseline_of:
            return
        self._baseline_of = path
        baseline = load_baseline_beside(path)
        if baseline is None:
            return
        for statistic, summary in baseline.statistics.items():
            self.metrics.baseline_mean.labels(statistic=statistic).set(summary.mean)
            self.metrics.baseline_stddev.labels(statistic=statistic).set(summary.stddev)

    def _degrade(self, exc: StoreError) -> None:
        if self.state != "degraded":
            log.error("prediction_store_down", store=self.store.describe(), error=exc.detail)
        self._next_try = time.monotonic() + RETRY_S
        self._set_state("degraded")

    def _set_state(self, state: StoreState) -> None:
        self.state = state
        self.metrics.store_up.set(1 if state == "ok" else 0)
