"""Guest reads of SQLite on the event loop's own thread.

Under WAL a reader never waits for a writer, and a guest read is one indexed probe: on this
kind of machine it costs less than handing it to aiosqlite's thread and back
(`python -m loadtests.sqlite_reads`: inline sqlite3 ~30-55x the reads/s of the reader
engine, 2-3x a pool of reader threads; docs/PERFORMANCE.md). The connection never waits
for a lock (busy timeout 0): when SQLite is busy (a WAL recovery, an exclusive lock taken
by hand) the caller reads through the reader engine instead, which waits as it always did.
Statements are compiled once per shape (the caller's key) and counted like any other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A compiled statement: its SQL, the order of its parameters, their default values
    (literals in the statement) and, per result column, its name and type conversion."""

    sql: str
    parameters: tuple[str, ...]
    defaults: Mapping[str, Any]
    columns: tuple[str, ...]
    processors: tuple[Processor, ...]


class InlineReader:
    def __init__(self, path: str, on_statement: Callable[[str], None]) -> None:
        self._path = path
        self._on_statement = on_statement
        self._dialect = SQLiteDialect_pysqlite(paramstyle="qmark")
        self._prepared: dict[Hashable, Prepared] = {}
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            # Opened on first use: after start-up has migrated (and set WAL on) the file.
            conn = sqlite3.connect(
                self._path, timeout=0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA query_only=ON")
            self._conn = conn
        return self._conn

    def prepare(self, statement: Select[Any]) -> Prepared:
        compiled = statement.compile(dialect=self._dialect)
        selected = list(statement.selected_columns)
        return Prepared(
            sql=compiled.string,
            parameters=tuple(compiled.positiontup or ()),
            defaults=dict(compiled.params),
            columns=tuple(str(c.key) for c in selected),
            processors=tuple(
                c.type.dialect_impl(self._dialect).result_processor(self._dialect, None)
                for c in selected
            ),
        )

    def rows(
        self, key: Hashable, build: Callable[[], Select[Any]], parameters: Mapping[str, Any]
    ) -> list[dict[str, Any]] | None:
        """The statement's rows as dicts, or None when SQLite is busy. `build` makes the
        statement of this shape (named bind parameters) the first time it is seen."""
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = self._prepared[key] = self.prepare(build())
        values = {**prepared.defaults, **parameters}
        arguments = tuple(values[name] for name in prepared.parameters)
        try:
            raw = self._connection().execute(prepared.sql, arguments).fetchall()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return None
            raise
        self._on_statement(prepared.sql)
        columns, processors = prepared.columns, prepared.processors
        return [
            {
                name: (p(value) if p is not None else value)
                for name, p, value in zip(columns, processors, row, strict=True)
            }
            for row in raw
        ]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
