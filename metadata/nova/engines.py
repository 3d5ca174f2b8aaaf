"""Read-only engines on Nova's databases: SELECT is the only statement they will send.

Each engine refuses, before it reaches the wire, any statement that is not a SELECT (an
engine event raising), and counts the statements it sends: the tests and the benchmark
read the counter. Reads are AUTOCOMMIT with no reset on return and no ROLLBACK on close
(`skip_autocommit_rollback`: without it SQLAlchemy sends one after every read, a second
round trip), so a slice is one SELECT on the wire and a pooled connection never holds an
old REPEATABLE READ snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CompoundSelect, Select, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn

from metadata.config import mask_url_password
from metadata.errors import StoreUnavailable
from metadata.store.engine import StatementCounter

log = logging.getLogger(__name__)
Query = Select[Any] | CompoundSelect[Any]
_FIRST_WORD = re.compile(r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*(\w+)", re.DOTALL)


class WriteRefused(SQLAlchemyError):
    """A statement other than SELECT was about to be sent to a Nova database."""


def is_select(statement: str) -> bool:
    match = _FIRST_WORD.match(statement)
    return match is not None and match.group(1).upper() == "SELECT"


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement compiled once for this database: its SQL and how parameters go in."""

    sql: str
    names: tuple[str, ...]  # the driver's positional order
    defaults: Mapping[str, Any]

    def parameters(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        merged = {**self.defaults, **values}
        return tuple(merged[name] for name in self.names)


class NovaDatabase:
    """One Nova database (the API database or one cell's), read-only."""

    def __init__(self, name: str, url: str, *, timeout: float = 2.0) -> None:
        self.name = name
        self.url = url
        backend = make_url(url).get_backend_name()
        options: dict[str, Any] = {"hide_parameters": True}
        if backend != "sqlite":
            connect = (
                {"timeout": timeout} if backend == "postgresql" else {"connect_timeout": timeout}
            )
            options.update(
                pool_size=10,
                max_overflow=20,
                pool_recycle=3600,
                pool_timeout=timeout,
                connect_args=connect,
            )
        self.engine: AsyncEngine = create_async_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
            skip_autocommit_rollback=True,
            **options,
        )
        self.counter = StatementCounter()
        self._compiled: dict[Query, Compiled | None] = {}
        # asyncmy: pre-compiled reads go to the pooled driver connection itself.
        self.reads_on_driver = self.engine.dialect.driver == "asyncmy"
        self._driver_errors: Any = self.engine.dialect.loaded_dbapi.Error
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._check)

    def _check(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not is_select(statement):
            raise WriteRefused(
                f"refused to send a non-SELECT statement to Nova's {self.name} "
                f"database: {statement[:40]!r}"
            )
        self.counter(conn, cursor, statement, *args)

    def __str__(self) -> str:
        return f"{self.name} ({mask_url_password(self.url)})"

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                yield conn
        except WriteRefused:
            raise
        except (OperationalError, DBAPIError, sa_exc.TimeoutError, OSError, TimeoutError) as exc:
            # sa_exc.TimeoutError: no pooled connection within the timeout.
            raise StoreUnavailable(
                f"Nova {self.name} database unavailable: {type(exc).__name__}"
            ) from exc

    def _compile(self, query: Query) -> Compiled | None:
        """The query as the driver's SQL, once; None when it cannot be sent as such (named
        parameters, or parameters expanded at execution)."""
        if query not in self._compiled:
            compiled = query.compile(dialect=self.engine.sync_engine.dialect)
            sql = str(compiled)
            usable = compiled.positional and "POSTCOMPILE" not in sql
            self._compiled[query] = (
                Compiled(sql, tuple(compiled.positiontup or ()), compiled.params)
                if usable
                else None
            )
        return self._compiled[query]

    async def first(self, query: Query, values: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The first row of `rows`."""
        found = await self.rows(query, values)
        return found[0] if found else None

    async def rows(self, query: Query, values: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """The rows of a SELECT built once (`query` is kept: pass the same object). Sent
        pre-compiled: SQLAlchemy otherwise walks the statement for its cache key on
        every execution, which costs a cold read more CPU than the driver does. The
        engine's events still see it (the SELECT-only check, the counter)."""
        compiled = self._compile(query)
        if compiled is not None and self.reads_on_driver:
            return await self._rows_on_driver(compiled, compiled.parameters(values))
        async with self.read() as conn:
            if compiled is None:
                result = await conn.execute(query, dict(values))
            else:
                result = await conn.exec_driver_sql(compiled.sql, compiled.parameters(values))
            return [row._asdict() for row in result.all()]

    async def _rows_on_driver(
        self, compiled: Compiled, parameters: tuple[Any, ...]
    ) -> list[Mapping[str, Any]]:
        """The statement on a connection of the engine's pool, sent by the driver itself:
        SQLAlchemy's Connection and execution context around it cost a cold read about as
        much CPU as the driver (docs/PERFORMANCE.md). The SELECT-only check and the
        counter run here, before the wire, as the engine's events do."""
        self._check(None, None, compiled.sql, parameters)
        try:
            pooled = await greenlet_spawn(self.engine.sync_engine.pool.connect)
        except (self._driver_errors, sa_exc.TimeoutError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(
                f"Nova {self.name} database unavailable: {type(exc).__name__}"
            ) from exc
        try:
            driver = pooled.driver_connection
            assert driver is not None  # a checked-out connection
            cursor = driver.cursor()
            await cursor.execute(compiled.sql, parameters)
            found = await cursor.fetchall()
            names = [column[0] for column in cursor.description or ()]
            await cursor.close()
        except BaseException as exc:
            # A connection in an unknown state (an error, a cancelled read) never goes back.
            await greenlet_spawn(pooled.invalidate, exc if isinstance(exc, Exception) else None)
            if isinstance(exc, self._driver_errors | OSError | TimeoutError):
                raise StoreUnavailable(
                    f"Nova {self.name} database unavailable: {type(exc).__name__}"
                ) from exc
            raise
        await greenlet_spawn(pooled.close)
        return [dict(zip(names, row, strict=True)) for row in found]

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def wait_until_reachable(
        self, max_delay: float = 30.0, attempts: int | None = None
    ) -> None:
        """At start: retry until the database answers, each failure logged with its reason
        (never a traceback); `attempts` bounds the tries (then StoreUnavailable)."""
        delay, tried = 0.5, 0
        while True:
            try:
                await self.ping()
                return
            except StoreUnavailable as exc:
                tried += 1
                reason = exc.__cause__ or exc
                if attempts is not None and tried >= attempts:
                    raise
                log.warning(
                    "Nova %s unreachable (%s: %s); retrying in %.1f s",
                    self,
                    type(reason).__name__,
                    reason,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)

    async def dispose(self) -> None:
        with contextlib.suppress(SQLAlchemyError, OSError):
            await self.engine.dispose()
