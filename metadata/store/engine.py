"""Engines, statement counting and the translation of driver errors into StoreUnavailable.

Reads go through an AUTOCOMMIT engine with no reset on return: a guest read is one SELECT on
the wire, with no BEGIN, ROLLBACK or pre-ping around it. Writes use their own engine and an
explicit transaction each.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from metadata.errors import StoreUnavailable, WriteConflict
from metadata.store.inline import InlineReader

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


def _engine_options(url: str, timeout: float) -> dict[str, Any]:
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        return {"connect_args": {"timeout": 30}}
    # A dead or unreachable server must cost a guest `timeout` seconds at most, connecting or
    # queueing for a pooled connection, before its 503.
    connect = {"timeout": timeout} if backend == "postgresql" else {"connect_timeout": timeout}
    return {
        "pool_size": 10,
        "max_overflow": 20,
        "pool_recycle": 3600,
        "pool_timeout": timeout,
        "connect_args": connect,
    }


def _discard_closed(dbapi_connection: Any, connection_record: Any, proxy: Any) -> None:
    # A restarted server closed our sockets and asyncpg saw the EOF: is_closed() knows it
    # without a round trip (no pre-ping), and DisconnectionError makes the pool connect
    # afresh, so the first request after a restart is not a 503.
    driver = dbapi_connection.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("connection closed by the server")


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # WAL lets guest reads go on while an operator writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# Deadlock and lock-wait timeout (MariaDB/MySQL error numbers); serialization failure and
# deadlock (PostgreSQL SQLSTATEs): the transaction lost a race and may simply run again.
MYSQL_CONFLICTS = frozenset({1205, 1213})
POSTGRES_CONFLICTS = frozenset({"40001", "40P01"})


def is_write_conflict(exc: DBAPIError) -> bool:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in POSTGRES_CONFLICTS:
        return True
    args: tuple[object, ...] = getattr(orig, "args", ())
    return bool(args) and args[0] in MYSQL_CONFLICTS


def inline_reader(url: str, counter: StatementCounter) -> InlineReader | None:
    """For a SQLite file, the reader on the event loop's thread (an in-memory database is
    private to its connection: it has none)."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    return InlineReader(path, lambda statement: counter(None, None, statement))


class Database:
    def __init__(
        self, url: str, *, timeout: float = 2.0, read_timeout: float | None = None
    ) -> None:
        self.url = url
        self.backend = make_url(url).get_backend_name()
        # hide_parameters: a driver error (logged or chained) never carries user data.
        options = {**_engine_options(url, timeout), "hide_parameters": True}
        reader_options = options
        if self.backend == "postgresql" and read_timeout is not None:
            # A server that stopped answering (not closed) must not hold guests forever.
            connect_args = {**options["connect_args"], "command_timeout": read_timeout}
            reader_options = {**options, "connect_args": connect_args}
        self.reader: AsyncEngine = create_async_engine(
            url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, **reader_options
        )
        self.writer: AsyncEngine = create_async_engine(url, **options)
        self.counter = StatementCounter()
        self.inline = inline_reader(url, self.counter)
        for engine in (self.reader, self.writer):
            event.listen(engine.sync_engine, "before_cursor_execute", self.counter)
            if self.backend == "sqlite":
                event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            elif self.backend == "postgresql":
                event.listen(engine.sync_engine.pool, "checkout", _discard_closed)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.reader.connect() as conn:
                try:
                    yield conn
                except TimeoutError:
                    # asyncpg gave up on a statement: the connection's state is unknown.
                    await conn.invalidate()
                    raise
        except (OperationalError, DBAPIError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        try:
            async with self.writer.begin() as conn:
                yield conn
        except IntegrityError as exc:
            raise WriteConflict("a concurrent write changed the same instance; retry") from exc
        except (OperationalError, DBAPIError, OSError, TimeoutError) as exc:
            if isinstance(exc, DBAPIError) and is_write_conflict(exc):
                raise WriteConflict("a concurrent write changed the same instance; retry") from exc
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    def read_inline(
        self, key: Hashable, build: Callable[[], Select[Any]], parameters: Mapping[str, Any]
    ) -> list[dict[str, Any]] | None:
        """The rows of a guest read run on the event loop's thread (SQLite), or None when
        the caller is to read through `read()` (another database, or SQLite busy)."""
        if self.inline is None:
            return None
        try:
            return self.inline.rows(key, build, parameters)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self.inline is not None:
            self.inline.close()
        for engine in (self.reader, self.writer):
            with contextlib.suppress(SQLAlchemyError, OSError):
                await engine.dispose()
