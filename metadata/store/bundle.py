"""One SELECT for any set of slices of one instance.

Each provider contributes the columns of its slice: the instance row's own columns, or a
scalar subquery that folds a child table into one JSON array (`json_rows`, compiled per
dialect). Whatever the slices asked for, the database sees exactly one statement, anchored
on the instance row; no row means no such instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Text

from metadata.store import schema as t


class json_rows(FunctionElement[str]):
    """The rows of a subquery as one JSON array of arrays (text): an SQL aggregate."""

    inherit_cache = True
    type = Text()


@compiles(json_rows)
def _json_rows_sqlite(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


@compiles(json_rows, "postgresql")
def _json_rows_postgresql(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(json_agg(json_build_array({compiler.process(element.clauses, **kw)})) AS TEXT)"


@compiles(json_rows, "mysql")
@compiles(json_rows, "mariadb")
def _json_rows_mysql(element: json_rows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"JSON_ARRAYAGG(JSON_ARRAY({compiler.process(element.clauses, **kw)}))"


async def load_bundle(
    conn: AsyncConnection, uuid: str, columns: Sequence[ColumnElement[Any]]
) -> RowMapping | None:
    """The instance row with the given columns, or None when there is no such instance."""
    result = await conn.execute(select(*columns).where(t.instances.c.uuid == uuid))
    return result.mappings().first()
