"""The prediction store: one table of answered photos, their statistics and their true labels.

SQLAlchemy 2 over SQLite (embedded default, WAL, every commit synced) or PostgreSQL (several
replicas writing to one database). The schema is Alembic's: `migrate()` brings any database to
the newest revision at start-up, so an upgraded service never runs on an old schema.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from catdog.errors import RequestRefusedError, StoreError
from catdog.monitoring.records import issued_at

MIGRATIONS = Path(__file__).with_name("migrations")
CONNECT_TIMEOUT_S = 3


class Base(DeclarativeBase):
    """The store's tables (what Alembic's migrations create)."""


class PredictionRow(Base):
    """One answered photo; `feedback_*` stay empty until someone confirms its true label."""

    __tablename__ = "predictions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    model_version: Mapped[str] = mapped_column(String(128), index=True)
    label: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float] = mapped_column(Float)
    probabilities: Mapped[dict[str, float]] = mapped_column(JSON)
    pet_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    brightness: Mapped[float | None] = mapped_column(Float, nullable=True)
    contrast: Mapped[float | None] = mapped_column(Float, nullable=True)
    colourfulness: Mapped[float | None] = mapped_column(Float, nullable=True)
    aspect_ratio: Mapped[float | None] = mapped_column(Float, nullable=True)
    feedback_label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    feedback_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True, index=True)


@dataclass(frozen=True)
class FeedbackOutcome:
    """What recording a true label did."""

    prediction_id: str
    model_version: str
    predicted: str
    label: str
    first: bool  # False when it replaced an earlier answer (counted once)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers and the writer work at once; FULL syncs every commit, so an
    acknowledged feedback survives a crash; a busy timeout makes workers wait, not fail."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for the store; SQLite's folder is created, PostgreSQL's connects time out fast."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # A folder that cannot be made (a read-only file system) leaves the store down, not
            # the service: connecting then fails, and the log counts its rows as dropped.
            with contextlib.suppress(OSError):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; catdog ships psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    postgres = parsed.get_backend_name() == "postgresql"
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if postgres else {}
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


# The child that `PredictionStore.migrate_apart` starts: the URL on stdin, the reason on stderr.
_STORE_ERROR_EXIT = 3
_MIGRATE_PROGRAM = (
    "import sys\n"
    "from catdog.errors import StoreError\n"
    "from catdog.monitoring.store import PredictionStore\n"
    "try:\n"
    "    PredictionStore(sys.stdin.read()).migrate()\n"
    "except StoreError as exc:\n"
    "    print(exc.detail, file=sys.stderr)\n"
    f"    sys.exit({_STORE_ERROR_EXIT})\n"
)
MIGRATE_TIMEOUT_S = 60.0


class PredictionStore:
    """Reads and writes of the prediction log; every database error becomes a StoreError."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def describe(self) -> str:
        """The URL without its password, for logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Bring the schema to Alembic's head (idempotent; safe on every start)."""
        from alembic import command  # noqa: PLC0415
        from alembic.config import Config  # noqa: PLC0415

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot migrate the store {self.describe()}: {exc}") from exc

    def migrate_apart(self, timeout_s: float = MIGRATE_TIMEOUT_S) -> None:
        """`migrate` in a short-lived child process: Alembic and its templates (10 MiB of RSS)
        then never load into the long-lived service. An in-memory SQLite database, which no
        child can reach, is migrated here."""
        parsed = make_url(self.url)
        if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
            self.migrate()
            return
        try:
            done = subprocess.run(
                [sys.executable, "-c", _MIGRATE_PROGRAM],
                input=self.url,  # not an argument: a password would show in the process list
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            detail = f"its migration took longer than {timeout_s:g} s"
            raise StoreError(f"cannot migrate the store {self.describe()}: {detail}") from None
        if done.returncode == _STORE_ERROR_EXIT:
            raise StoreError(done.stderr.strip())
        if done.returncode != 0:  # not a database error: the traceback's last line says what
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            raise StoreError(f"cannot migrate the store {self.describe()}: {lines[-1]}")

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert predictions in one transaction."""
        if not rows:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(PredictionRow), list(rows))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot write to {self.describe()}: {exc}") from exc

    def record_feedback(
        self, prediction_id: str, label: str, *, now: datetime, retention_days: float
    ) -> FeedbackOutcome:
        """Set a prediction's true label (the last answer wins); committed before returning.

        Raises RequestRefusedError: 404 `unknown_prediction` or `too_old`, 422 `bad_label`.
        """
        cutoff = now - timedelta(days=retention_days)
        issued = issued_at(prediction_id)
        if issued is not None and issued < cutoff:
            raise _too_old(prediction_id, retention_days)
        try:
            with self.engine.begin() as connection:
                row = connection.execute(
                    select(
                        PredictionRow.model_version,
                        PredictionRow.label,
                        PredictionRow.probabilities,
                        PredictionRow.created_at,
                        PredictionRow.feedback_label,
                    )
                    .where(PredictionRow.id == prediction_id)
                    .with_for_update()
                ).one_or_none()
                if row is None:
                    raise RequestRefusedError(
                        f"no prediction {prediction_id} in the log (never answered, or its log "
                        "row was dropped)",
                        reason="unknown_prediction",
                        http_status=404,
                    )
                if row.created_at < cutoff:
                    raise _too_old(prediction_id, retention_days)
                classes = sorted(row.probabilities)
                if label not in classes:
                    raise RequestRefusedError(
                        f"label must be one of {classes} (the classes of model "
                        f"{row.model_version}), not {label!r}",
                        reason="bad_label",
                        http_status=422,
                    )
                connection.execute(
                    update(PredictionRow)
                    .where(PredictionRow.id == prediction_id)
                    .values(feedback_label=label, feedback_at=now)
                )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot record feedback in {self.describe()}: {exc}") from exc
        return FeedbackOutcome(
            prediction_id, row.model_version, row.label, label, row.feedback_label is None
        )

    def recent_labelled(self, model_version: str, limit: int) -> list[tuple[str, str]]:
        """(predicted, true) of the `limit` predictions of a version labelled most recently."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    select(PredictionRow.label, PredictionRow.feedback_label)
                    .where(
                        PredictionRow.model_version == model_version,
                        PredictionRow.feedback_label.is_not(None),
                    )
                    .order_by(PredictionRow.feedback_at.desc())
                    .limit(limit)
                ).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {self.describe()}: {exc}") from exc
        return [(str(r[0]), str(r[1])) for r in rows]

    def predictions(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        model_version: str | None = None,
    ) -> list[PredictionRow]:
        """Every prediction in a window (oldest first), for reports."""
        query = select(PredictionRow).order_by(PredictionRow.created_at)
        if since is not None:
            query = query.where(PredictionRow.created_at >= since)
        if until is not None:
            query = query.where(PredictionRow.created_at < until)
        if model_version is not None:
            query = query.where(PredictionRow.model_version == model_version)
        try:
            with Session(self.engine) as session:
                return list(session.scalars(query))
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {self.describe()}: {exc}") from exc

    def prune(self, older_than: datetime, *, batch_size: int = 1000) -> int:
        """Delete predictions created before `older_than`, a batch per transaction (short locks,
        no giant WAL); returns how many went."""
        removed = 0
        try:
            while True:
                with self.engine.begin() as connection:
                    ids = (
                        connection.execute(
                            select(PredictionRow.id)
                            .where(PredictionRow.created_at < older_than)
                            .limit(batch_size)
                        )
                        .scalars()
                        .all()
                    )
                    if not ids:
                        return removed
                    connection.execute(delete(PredictionRow).where(PredictionRow.id.in_(ids)))
                removed += len(ids)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot prune {self.describe()}: {exc}") from exc

    def count(self) -> int:
        """Rows in the log."""
        try:
            with self.engine.connect() as connection:
                return int(connection.execute(select(func.count(PredictionRow.id))).scalar_one())
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {self.describe()}: {exc}") from exc

    def close(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _too_old(prediction_id: str, retention_days: float) -> RequestRefusedError:
    return RequestRefusedError(
        f"prediction {prediction_id} is older than the retention of {retention_days:g} days "
        "(CATDOG_RETENTION_DAYS): its log row is gone or about to go",
        reason="too_old",
        http_status=404,
    )
