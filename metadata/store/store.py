"""The store facade: slice reads, transactional writes, and listeners told of each commit.

It knows SQL and nothing of caches or HTTP: the coherence layer and the waiters learn of
every committed write as a `WriteEvent` (`metadata/store/events.py`) through
`add_write_listener`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.errors import InstanceNotFound, WriteConflict
from metadata.records import InstanceDocument, Slice, UserData
from metadata.store import reads, writes
from metadata.store.engine import Database
from metadata.store.events import WriteEvent
from metadata.store.migrate import upgrade
from metadata.store.slices import DOCUMENT_SLICES
from metadata.user_data_versions import (
    UserDataChange,
    UserDataVersion,
    etag_of,
    etag_of_sha256,
)

log = logging.getLogger(__name__)
USER_DATA = frozenset({Slice.USER_DATA})
T = TypeVar("T")
WRITE_ATTEMPTS = 4

# Told of every committed write, after the commit (coherence, then the waiters).
WriteListener = Callable[[WriteEvent], Awaitable[None]]


class Store:
    def __init__(self, database: Database, user_data_history: int = 10) -> None:
        self.db = database
        # Versions whose bytes are kept: the current one and this many before it.
        self.user_data_kept = user_data_history + 1
        self._listeners: list[WriteListener] = []

    def add_write_listener(self, listener: WriteListener) -> None:
        self._listeners.append(listener)

    async def _written(
        self, uuid: str, generation: int | None, addresses: Iterable[str] = ()
    ) -> None:
        event = WriteEvent(uuid, generation, frozenset(addresses))
        for listener in self._listeners:
            await listener(event)

    async def migrate(self) -> None:
        await upgrade(self.db.writer)

    # -- reads: one statement each ------------------------------------------------------

    async def find_instances_by_address(self, address: str) -> list[tuple[str, int]]:
        async with self.db.read() as conn:
            found = await reads.load_slices_by_address(conn, address, ())
        return [(uuid, generation) for uuid, generation, _ in found]

    async def list_instance_uuids(self, limit: int, marker: str | None) -> list[str]:
        async with self.db.read() as conn:
            return await reads.list_instance_uuids(conn, limit, marker)

    async def _slices(self, uuid: str, names: frozenset[Slice]) -> dict[Slice, Any]:
        async with self.db.read() as conn:
            found = await reads.load_slices(conn, uuid, names)
        if found is None:
            raise InstanceNotFound(f"no instance {uuid}")
        return found[1]

    async def get_document(self, uuid: str) -> InstanceDocument:
        """The whole instance, for the admin API and export: one statement."""
        return InstanceDocument.from_slices(await self._slices(uuid, DOCUMENT_SLICES))

    async def list_documents(
        self, limit: int, marker: str | None
    ) -> tuple[list[InstanceDocument], str | None]:
        """A page of documents in uuid order, and the marker of the next page (or None)."""
        async with self.db.read() as conn:
            uuids = await reads.list_instance_uuids(conn, limit + 1, marker)
            more = len(uuids) > limit
            docs = await reads.load_documents(conn, uuids[:limit])
        return docs, (docs[-1].core.uuid if more and docs else None)

    async def get_user_data(self, uuid: str) -> UserData:
        found: UserData = (await self._slices(uuid, USER_DATA))[Slice.USER_DATA]
        return found

    async def user_data_etag(self, uuid: str) -> str | None:
        """The ETag of the instance's user data (None: it has none), in one statement."""
        async with self.db.read() as conn:
            exists, sha256 = await reads.load_user_data_sha256(conn, uuid)
        if not exists:
            raise InstanceNotFound(f"no instance {uuid}")
        return None if sha256 is None else etag_of_sha256(sha256)

    async def user_data_history(self, uuid: str, limit: int) -> list[UserDataVersion]:
        async with self.db.read() as conn:
            if await reads.load_slices(conn, uuid, ()) is None:
                raise InstanceNotFound(f"no instance {uuid}")
            return await reads.load_user_data_history(conn, uuid, limit)

    # -- writes: one transaction each, listeners told after the commit -----------------

    async def _write(self, body: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `body` in one transaction; one that lost a race to a concurrent write (a
        deadlock on MariaDB, a key taken meanwhile) runs again on the data as it is now."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with self.db.transaction() as conn:
                    return await body(conn)
            except WriteConflict:
                if attempt == WRITE_ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0.002, 0.02) * attempt)
        raise AssertionError("unreachable")

    async def put_document(self, doc: InstanceDocument, actor: str = "") -> bool:
        created, generation, addresses = await self._write(
            lambda conn: writes.put_instance(conn, doc, actor, self.user_data_kept)
        )
        await self._written(doc.core.uuid, generation, addresses)
        return created

    async def delete_instance(self, uuid: str) -> None:
        addresses = await self._write(lambda conn: writes.delete_instance(conn, uuid))
        await self._written(uuid, None, addresses)

    async def set_user_data(
        self, uuid: str, data: bytes | None, change: UserDataChange | None = None
    ) -> str | None:
        """Replace (None: remove) the user data; returns the new ETag (None: removed)."""
        generation = await self._write(
            lambda conn: writes.set_user_data(conn, uuid, data, change, self.user_data_kept)
        )
        await self._written(uuid, generation)
        return None if data is None else etag_of(data)

    async def restore_user_data(
        self, uuid: str, version: int, change: UserDataChange
    ) -> UserDataVersion:
        """Make an earlier version current again; returns the change this recorded."""

        async def restore(conn: AsyncConnection) -> tuple[int, UserDataVersion]:
            generation = await writes.restore_user_data(
                conn, uuid, version, change, self.user_data_kept
            )
            # read inside the transaction: the row this restore just wrote
            return generation, (await reads.load_user_data_history(conn, uuid, 1))[0]

        generation, recorded = await self._write(restore)
        await self._written(uuid, generation)
        return recorded

    async def set_password_once(self, uuid: str, value: str) -> None:
        generation = await self._write(lambda conn: writes.set_password_once(conn, uuid, value))
        await self._written(uuid, generation)

    async def clear_password(self, uuid: str) -> None:
        generation = await self._write(lambda conn: writes.clear_password(conn, uuid))
        await self._written(uuid, generation)
