"""The log writer's bounds: a full queue drops rows (counted), never blocks or fails."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from catdog.monitoring.prediction_log import PredictionLog
from catdog.monitoring.records import Answered, new_prediction_id, utcnow
from catdog.monitoring.stats import Look
from catdog.monitoring.store import PredictionStore
from catdog.serving.metrics import ServiceMetrics


def answered(photo: bytes = b"x") -> Answered:
    return Answered(
        new_prediction_id(), utcnow(), "v1", "cat", 0.9, {"cat": 0.9, "dog": 0.1}, None, photo
    )


def test_a_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    log = PredictionLog(store, metrics, queue_size=2, retention_days=30)
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
    log = PredictionLog(PredictionStore("sqlite://"), metrics, queue_size=10, retention_days=30)
    log.submit(answered(), is_pet=False)
    log.submit(answered(), is_pet=True)
    log.submit(answered(), is_pet=None)
    assert metrics.registry.get_sample_value("catdog_not_a_pet_predictions_total") == 1


def test_queued_photo_bytes_are_bounded_too(tmp_path: Path) -> None:
    """Each queued row holds its photo: the queue is bounded in bytes as well as in rows."""
    metrics = ServiceMetrics()
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    log = PredictionLog(store, metrics, queue_size=100, retention_days=30, max_queued_bytes=2500)
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


def test_rows_keep_the_runners_look_and_never_decode(tmp_path: Path) -> None:
    """Statistics come from the look a runner measured; an answer without one is still logged
    (its hash and size), never decoded here: this process has no decoder to spare."""
    metrics = ServiceMetrics()
    store = PredictionStore(f"sqlite:///{tmp_path / 'p.db'}")
    log = PredictionLog(store, metrics, queue_size=10, retention_days=30)
    seen = Look(width=400, height=300, brightness=0.5, contrast=0.25, colourfulness=0.125)
    with_look = replace(answered(b"not even a photo"), look=seen)
    without = answered(b"y" * 10)
    log.submit(with_look)
    log.submit(without)
    log.start()
    log.stop()
    rows = {row.id: row for row in PredictionStore(f"sqlite:///{tmp_path / 'p.db'}").predictions()}
    measured, bare = rows[with_look.prediction_id], rows[without.prediction_id]
    assert (measured.width, measured.height, measured.aspect_ratio) == (400, 300, 400 / 300)
    assert (measured.brightness, measured.contrast, measured.colourfulness) == (0.5, 0.25, 0.125)
    assert measured.sha256 == hashlib.sha256(b"not even a photo").hexdigest()
    assert (bare.sha256, bare.bytes) == (hashlib.sha256(b"y" * 10).hexdigest(), 10)
    assert bare.width is None and bare.brightness is None
    count = metrics.registry.get_sample_value("catdog_input_brightness_ratio_count")
    assert count == 1
