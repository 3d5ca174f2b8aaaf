"""Alembic environment: runs on the connection that `metadata.store.migrate` hands over."""

from __future__ import annotations

from alembic import context

from metadata.store.schema import metadata_obj

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `metadata db upgrade` (metadata.store.migrate)")
context.configure(connection=connection, target_metadata=metadata_obj, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
