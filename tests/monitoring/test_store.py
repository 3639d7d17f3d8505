"""The prediction store on both back-ends: migrations, rows, feedback rules, retention."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from catdog.errors import RequestRefusedError, StoreError
from catdog.monitoring.records import issued_at, new_prediction_id, utcnow
from catdog.monitoring.store import PredictionStore


def row(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": new_prediction_id(),
        "created_at": utcnow(),
        "model_version": "v1",
        "label": "cat",
        "confidence": 0.9,
        "probabilities": {"cat": 0.9, "dog": 0.1},
        "pet_score": None,
        "sha256": "ab" * 32,
        "bytes": 1234,
        "width": 640,
        "height": 480,
        "brightness": 0.5,
        "contrast": 0.2,
        "colourfulness": 0.1,
        "aspect_ratio": 640 / 480,
    }
    return {**base, **overrides}


def test_migrations_create_the_schema_and_run_again_harmlessly(store: PredictionStore) -> None:
    store.migrate()
    tables = set(inspect(store.engine).get_table_names())
    assert {"predictions", "alembic_version"} <= tables
    columns = {c["name"] for c in inspect(store.engine).get_columns("predictions")}
    assert {"sha256", "brightness", "pet_score", "feedback_label"} <= columns
    assert "photo" not in columns  # never the bytes


def test_the_service_migrates_in_a_child_and_never_loads_alembic(store_url: str) -> None:
    """What the prediction log's writer does at start-up, on both back-ends (PostgreSQL's URL
    goes to the child on stdin, never in its arguments)."""
    code = (
        "import sys\n"
        "from catdog.monitoring.store import PredictionStore\n"
        "store = PredictionStore(sys.argv[1])\n"
        "store.migrate_apart()\n"
        "print(store.count(), 'alembic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, store_url], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "False"]


def test_a_migration_that_fails_apart_says_why() -> None:
    down = PredictionStore("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(StoreError, match=r"cannot migrate the store .*127\.0\.0\.1:1"):
        down.migrate_apart()


def test_rows_round_trip_within_a_window(store: PredictionStore) -> None:
    now = utcnow()
    old = row(created_at=now - timedelta(days=3), model_version="v0")
    new = row(pet_score=0.97)
    store.add([old, new])
    assert store.count() == 2
    recent = store.predictions(since=now - timedelta(days=1))
    assert [r.id for r in recent] == [new["id"]]
    assert recent[0].pet_score == pytest.approx(0.97)
    assert recent[0].probabilities == {"cat": 0.9, "dog": 0.1}
    assert [r.id for r in store.predictions(model_version="v0")] == [old["id"]]


def test_feedback_last_answer_wins_and_is_first_once(store: PredictionStore) -> None:
    r = row()
    store.add([r])
    first = store.record_feedback(r["id"], "dog", now=utcnow(), retention_days=30)
    again = store.record_feedback(r["id"], "cat", now=utcnow(), retention_days=30)
    assert (first.first, again.first) == (True, False)
    assert (first.predicted, first.label) == ("cat", "dog")
    (stored,) = store.predictions()
    assert stored.feedback_label == "cat"
    assert store.recent_labelled("v1", 10) == [("cat", "cat")]


def test_feedback_refusals(store: PredictionStore) -> None:
    r = row()
    stale = row(created_at=utcnow() - timedelta(days=40))
    store.add([r, stale])
    with pytest.raises(RequestRefusedError) as unknown:
        store.record_feedback(new_prediction_id(), "dog", now=utcnow(), retention_days=30)
    assert (unknown.value.reason, unknown.value.http_status) == ("unknown_prediction", 404)
    with pytest.raises(RequestRefusedError) as bad:
        store.record_feedback(r["id"], "hamster", now=utcnow(), retention_days=30)
    assert (bad.value.reason, bad.value.http_status) == ("bad_label", 422)
    with pytest.raises(RequestRefusedError) as old:
        store.record_feedback(stale["id"], "dog", now=utcnow(), retention_days=30)
    assert (old.value.reason, old.value.http_status) == ("too_old", 404)
    assert "retention" in old.value.detail


def test_an_id_issued_before_retention_is_too_old_even_once_pruned(store: PredictionStore) -> None:
    pruned_id = new_prediction_id(now_s=time.time() - 90 * 86400)
    issued = issued_at(pruned_id)
    assert issued is not None
    assert utcnow() - issued > timedelta(days=89)
    with pytest.raises(RequestRefusedError) as refused:
        store.record_feedback(pruned_id, "dog", now=utcnow(), retention_days=30)
    assert refused.value.reason == "too_old"


def test_prune_deletes_old_rows_in_batches(store: PredictionStore) -> None:
    now = utcnow()
    old = [row(created_at=now - timedelta(days=31, minutes=i)) for i in range(25)]
    fresh = [row() for _ in range(3)]
    store.add(old + fresh)
    assert store.prune(now - timedelta(days=30), batch_size=7) == 25
    assert store.count() == 3
    assert store.prune(now - timedelta(days=30), batch_size=7) == 0


def test_a_store_that_is_down_raises_store_errors() -> None:
    down = PredictionStore("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(StoreError):
        down.migrate()
    with pytest.raises(StoreError):
        down.add([row()])


def test_a_sqlite_folder_that_cannot_be_made_leaves_the_store_down_not_raising(
    tmp_path: Path,
) -> None:
    """A read-only file system (a container's root) must not stop the service: the store is
    made, reports StoreErrors, and the prediction log counts its rows as dropped."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = PredictionStore(f"sqlite:///{blocker / 'data' / 'predictions.db'}")
    try:
        with pytest.raises(StoreError):
            store.migrate()
    finally:
        store.close()
