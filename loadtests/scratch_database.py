"""A database of its own for one benchmark run of ours: SQLite in the run's folder, or a
fresh PostgreSQL database on the machine's server (127.0.0.1:5432, trust), dropped after."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

PG_HOST, PG_PORT = "127.0.0.1", 5432
KINDS = ("sqlite", "postgresql")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_database(kind: str, folder: str, name: str) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database for `name` (unique per process)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/{name}.db"
        return
    database = f"{name}_{os.getpid()}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{database}"'))
    asyncio.run(_pg_admin(f'CREATE DATABASE "{database}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{database}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
