"""The log writer's bounds: a full queue drops rows (counted), never blocks or fails."""

from __future__ import annotations

from pathlib import Path

from catdog.monitoring.prediction_log import PredictionLog
from catdog.monitoring.records import Answered, new_prediction_id, utcnow
from catdog.monitoring.store import PredictionStore
from catdog.serving.metrics import ServiceMetrics


def answered(photo: bytes = b"x") -> Answered:
    return Answered(
        new_prediction_id(), utcnow(), "v1", "cat", 0.9, {"cat": 0.9, "dog": 0.1}, None, photo
    )


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    log = PredictionLog(store, metrics, queue_size=2, retention_days=30, max_pixels=10**7)
    # The writer is not started: nothing drains the queue.
    for _ in range(5):
        log.submit(answered())
    registry = metrics.registry
    dropped = registry.get_sample_value(
        "catdog_prediction_log_dropped_total", {"reason": "queue_full"}
    )
    assert dropped == 3
    assert registry.get_sample_value("catdog_prediction_log_queue_depth") == 2
    log.start()
    log.stop()  # stores what is queued, then closes the store
    reopened = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    assert reopened.count() == 2
    assert registry.get_sample_value("catdog_prediction_log_queue_depth") == 0
    assert registry.get_sample_value("catdog_prediction_log_written_total") == 2


def test_not_a_pet_answers_are_counted() -> None:
    metrics = ServiceMetrics()
    log = PredictionLog(
        PredictionStore("sqlite://"), metrics, queue_size=10, retention_days=30, max_pixels=10**7
    )
    log.submit(answered(), is_pet=False)
    log.submit(answered(), is_pet=True)
    log.submit(answered(), is_pet=None)
    assert metrics.registry.get_sample_value("catdog_not_a_pet_predictions_total") == 1


def test_queued_photo_bytes_are_bounded_too(tmp_path: Path) -> None:
    """Each queued row holds its photo: the queue is bounded in bytes as well as in rows."""
    metrics = ServiceMetrics()
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    log = PredictionLog(
        store, metrics, queue_size=100, retention_days=30, max_pixels=10**7, max_queued_bytes=2500
    )
    for _ in range(4):
        log.submit(answered(b"x" * 1000))
    dropped = metrics.registry.get_sample_value(
        "catdog_prediction_log_dropped_total", {"reason": "queue_full"}
    )
    assert dropped == 2
    log.start()
    log.stop()
    log.submit(answered(b"x" * 1000))  # drained: room again
    assert metrics.registry.get_sample_value("catdog_prediction_log_queue_depth") == 1
