"""Fixtures: every store test runs on the embedded SQLite AND on this machine's real PostgreSQL
(127.0.0.1:5432, database `test`), each test in a schema of its own that is dropped after."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from catdog.monitoring.store import PredictionStore

POSTGRES = os.environ.get("CATDOG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("CATDOG_") and key != "CATDOG_TEST_POSTGRES":
            monkeypatch.delenv(key)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store's URL on each back-end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'predictions.db'}"
        return
    schema = f"catdog_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        POSTGRES.replace("postgresql://", "postgresql+psycopg2://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[PredictionStore]:
    """A migrated store."""
    opened = PredictionStore(store_url)
    opened.migrate()
    yield opened
    opened.close()
