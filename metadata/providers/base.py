"""A provider loads one slice of one instance, with one statement, when asked.

It knows no HTTP and no other provider; the loader (`metadata.loader`) decides when to ask
and whether a cached copy does instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.records import Slice
from metadata.store.engine import Database


class Provider:
    slice: ClassVar[Slice]

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, uuid: str) -> Any:
        async with self._db.read() as conn:
            return await self.read(conn, uuid)

    async def read(self, conn: AsyncConnection, uuid: str) -> Any:
        """The store's read of this slice: exactly one statement."""
        raise NotImplementedError
