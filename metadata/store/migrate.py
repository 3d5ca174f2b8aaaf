"""Schema migrations with alembic, applied at start and by `metadata db upgrade`."""

from __future__ import annotations

import asyncio
import fcntl
import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from metadata.errors import StoreUnavailable

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _upgrade(sync_connection: Any, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_connection
    before = _current(sync_connection)
    command.upgrade(config, revision)
    after = _current(sync_connection)
    # alembic's own lines are quiet (metadata/logs.py): say once what changed.
    if after != before:
        log.info("database schema migrated from revision %s to %s", before or "none", after)


def _current(sync_connection: Any) -> str | None:
    return MigrationContext.configure(sync_connection).get_current_revision()


# Replicas starting together on a fresh database would each find no schema and each create
# it; the loser fails on "table already exists". One lock per database serialises them: the
# second runs after the first committed and finds nothing left to do.
LOCK_NAME = "metadata_schema_migrations"
PG_LOCK_KEY = 0x6D657461  # an arbitrary constant of ours ("meta")
# Seconds a replica waits for another's migration: a lock not obtained in that time is an
# error, never a migration run without it.
LOCK_TIMEOUT_SECONDS = 120


def mysql_lock_name(database: str | None) -> str:
    """GET_LOCK names are server-wide: one per database, so that migrations of two
    databases on one server never wait for each other (names are at most 64 characters)."""
    return f"{LOCK_NAME}:{database or ''}"[:64]


def _sqlite_lock_path(engine: AsyncEngine) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database + ".migrate-lock")


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    backend = engine.url.get_backend_name()
    if backend == "sqlite":
        lock_path = _sqlite_lock_path(engine)
        if lock_path is None:
            return await _upgrade_in_transaction(engine, revision)
        with lock_path.open("a") as handle:
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
            try:
                await _upgrade_in_transaction(engine, revision)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return None
    async with engine.begin() as conn:
        if backend == "postgresql":
            # held until this transaction ends: PostgreSQL's DDL is transactional
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
        elif backend in ("mysql", "mariadb"):
            # a session lock: MySQL commits DDL as it goes, so hold it until the end
            name = mysql_lock_name(engine.url.database)
            got = await conn.scalar(
                text("SELECT GET_LOCK(:name, :timeout)"),
                {"name": name, "timeout": LOCK_TIMEOUT_SECONDS},
            )
            if got != 1:
                raise StoreUnavailable(
                    f"another process held the schema migration lock {name!r} for over "
                    f"{LOCK_TIMEOUT_SECONDS} s; nothing was migrated"
                )
            try:
                await conn.run_sync(_upgrade, revision)
            finally:
                await conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            return None
        await conn.run_sync(_upgrade, revision)
    return None


async def _upgrade_in_transaction(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
