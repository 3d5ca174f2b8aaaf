"""SQLite guest reads on the event loop's thread: the same rows as the reader engine, typed
as SQLAlchemy types them, counted, and handed back (None) when SQLite is busy."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select

from metadata.services import Services
from metadata.store import schema as t
from metadata.store.inline import InlineReader
from tests.documents import sample_document

KEY = "core by uuid"


def core_by_uuid() -> Any:
    columns = [t.instances.c.uuid, t.instances.c.generation, t.instances.c.attributes]
    return select(*columns).where(t.instances.c.uuid == bindparam("uuid"))


async def test_inline_rows_match_the_reader_engine(
    services: Services, put_instance: Any, tmp_path: Path
) -> None:
    doc = await put_instance(sample_document(3))
    seen: list[str] = []
    reader = InlineReader(str(tmp_path / "metadata.db"), seen.append)
    rows = reader.rows(KEY, core_by_uuid, {"uuid": doc["uuid"]})
    async with services.db.read() as conn:
        expected = (await conn.execute(core_by_uuid(), {"uuid": doc["uuid"]})).mappings().all()
    assert rows == [dict(row) for row in expected]
    assert isinstance(rows[0]["attributes"], dict)  # JSON decoded, as the engine does
    assert reader.rows(KEY, core_by_uuid, {"uuid": "no-such-instance"}) == []
    assert len(seen) == 2
    reader.close()


async def test_a_busy_database_hands_the_read_back(
    services: Services, put_instance: Any, tmp_path: Path
) -> None:
    doc = await put_instance(sample_document(4))
    path = str(tmp_path / "metadata.db")
    seen: list[str] = []
    reader = InlineReader(path, seen.append)
    # An exclusive lock under WAL needs every other connection closed: the service's too.
    await services.db.dispose()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        assert reader.rows(KEY, core_by_uuid, {"uuid": doc["uuid"]}) is None
        assert seen == []  # nothing was executed, so nothing is counted
    finally:
        holder.close()
    assert reader.rows(KEY, core_by_uuid, {"uuid": doc["uuid"]}) is not None
    reader.close()
