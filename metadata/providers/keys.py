"""Provider of the public keys, in document order."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.providers.base import Provider
from metadata.records import Keys, Slice
from metadata.store import reads


class KeysProvider(Provider):
    slice = Slice.KEYS

    async def read(self, conn: AsyncConnection, uuid: str) -> Keys:
        return await reads.load_keys(conn, uuid)
