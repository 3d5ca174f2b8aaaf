"""What every way of starting the service shares (`metadata serve`, `db upgrade` and each
`--workers` process): the event loop to run on, and the schema brought to head."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from metadata.config import Settings


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run `coroutine` to completion on a new event loop: uvloop's when it is installed."""
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


async def upgrade_schema(settings: Settings) -> str | None:
    """Migrate the database to head (one migrator at a time) and return its revision.
    The store's modules are imported here, so that the CLI's other commands start without
    SQLAlchemy."""
    from metadata.store.engine import Database
    from metadata.store.migrate import current_revision, upgrade

    db = Database(settings.database_url)
    try:
        await upgrade(db.writer)
        return await current_revision(db.writer)
    finally:
        await db.dispose()
