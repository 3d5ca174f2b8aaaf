"""The project's own database as a slice source: every read one statement, its SQL derived
from the slice definitions (`metadata.store.slices`). On SQLite the statement runs on the
event loop's thread when it can (metadata/store/inline.py), else through the reader engine."""

from __future__ import annotations

from metadata.records import Slice
from metadata.sources.base import SliceRead
from metadata.store import reads
from metadata.store.engine import Database

NO_SLICES: frozenset[Slice] = frozenset()


class StoreSource:
    identifies_by_address = True

    def __init__(self, db: Database) -> None:
        self._db = db

    async def read(self, uuid: str, names: frozenset[Slice]) -> SliceRead | None:
        rows = self._db.read_inline(
            ("read", names), lambda: reads.slices_query(names), {"uuid": uuid}
        )
        if rows is not None:
            if not rows:
                return None
            return SliceRead(uuid, *reads.decode_slices(rows[0], names))
        async with self._db.read() as conn:
            found = await reads.load_slices(conn, uuid, names)
        return None if found is None else SliceRead(uuid, found[0], found[1])

    async def read_by_address(self, address: str, names: frozenset[Slice]) -> list[SliceRead]:
        rows = self._db.read_inline(
            ("read_by_address", names),
            lambda: reads.slices_by_address_query(names),
            {"address": address},
        )
        if rows is not None:
            return [
                SliceRead(row["instance_uuid"], *reads.decode_slices(row, names)) for row in rows
            ]
        async with self._db.read() as conn:
            found = await reads.load_slices_by_address(conn, address, names)
        return [SliceRead(uuid, generation, slices) for uuid, generation, slices in found]

    async def generation(self, uuid: str) -> int | None:
        read = await self.read(uuid, NO_SLICES)
        return None if read is None else read.generation
