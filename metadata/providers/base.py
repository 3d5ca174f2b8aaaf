"""A provider knows one slice of instance data: the SQL that selects it and how to read it.

It knows no HTTP and no other provider. The loader (`metadata.loader`) decides when a slice
is needed and whether a cached copy does instead; when several slices are missing it asks
their providers for their columns and sends them together as one statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson
from sqlalchemy import ColumnElement, RowMapping

from metadata.records import Slice
from metadata.store import schema as t
from metadata.store.bundle import load_bundle
from metadata.store.engine import Database

# The instance row that every slice's columns are anchored on.
INSTANCE_UUID = t.instances.c.uuid


def json_value(value: Any) -> Any:
    """SQLite and MariaDB hand nested JSON back as text; PostgreSQL as structure."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


class Provider:
    slice: ClassVar[Slice]
    # False for a slice that is not read from SQL but derived from other slices (dynamic
    # vendor data, from external services): the loader calls `derive` with `requires`.
    is_sql: ClassVar[bool] = True
    requires: ClassVar[frozenset[Slice]] = frozenset()

    def __init__(self, db: Database) -> None:
        self._db = db

    def columns(self) -> list[ColumnElement[Any]]:
        """Labelled columns that select this slice next to the instance row."""
        raise NotImplementedError

    def decode(self, row: RowMapping) -> Any:
        """The slice from a row holding this provider's columns."""
        raise NotImplementedError

    async def derive(self, uuid: str, inputs: Mapping[Slice, Any]) -> Any:
        """A non-SQL slice from the slices it requires (never called for SQL slices)."""
        raise NotImplementedError

    async def load(self, uuid: str) -> Any:
        """This slice alone: one statement. None when there is no such instance."""
        async with self._db.read() as conn:
            row = await load_bundle(conn, uuid, self.columns())
        return None if row is None else self.decode(row)
