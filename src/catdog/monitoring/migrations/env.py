"""Alembic's environment: migrations run on the connection `PredictionStore.migrate` passes."""

from __future__ import annotations

from alembic import context

from catdog.monitoring.store import Base

connection = context.config.attributes["connection"]
# Batch mode lets later migrations alter SQLite tables (which have no ALTER COLUMN).
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
