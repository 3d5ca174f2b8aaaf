"""Engines, statement counting and the translation of driver errors into StoreUnavailable.

Reads go through an AUTOCOMMIT engine with no reset on return: a guest read is one SELECT on
the wire, with no BEGIN, ROLLBACK or pre-ping around it. Writes use their own engine and an
explicit transaction each.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from metadata.errors import Conflict, StoreUnavailable

log = logging.getLogger(__name__)


class StatementCounter:
    """Counts every statement the engines send; the tests and the benchmarks read it."""

    def __init__(self) -> None:
        self.total = 0
        self.statements: list[str] = []
        self.keep_text = False

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.total += 1
        if self.keep_text:
            self.statements.append(statement)


def _engine_options(url: str) -> dict[str, Any]:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": 30}}
    return {"pool_size": 10, "max_overflow": 20, "pool_recycle": 3600, "pool_timeout": 10}


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets guest reads go on while an operator writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = make_url(url).get_backend_name()
        options = _engine_options(url)
        self.reader: AsyncEngine = create_async_engine(
            url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **options
        )
        self.writer: AsyncEngine = create_async_engine(url, **options)
        self.counter = StatementCounter()
        for engine in (self.reader, self.writer):
            event.listen(engine.sync_engine, "before_cursor_execute", self.counter)
            if self.backend == "sqlite":
                event.listen(engine.sync_engine, "connect", _sqlite_pragmas)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.reader.connect() as conn:
                yield conn
        except (OperationalError, DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        try:
            async with self.writer.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise Conflict("a concurrent write changed the same instance; retry") from exc
        except (OperationalError, DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        for engine in (self.reader, self.writer):
            with contextlib.suppress(SQLAlchemyError, OSError):
                await engine.dispose()
