"""Provider of the operator's key/value metadata items."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.providers.base import Provider
from metadata.records import MetadataItems, Slice
from metadata.store import reads


class MetadataItemsProvider(Provider):
    slice = Slice.METADATA

    async def read(self, conn: AsyncConnection, uuid: str) -> MetadataItems:
        return await reads.load_metadata(conn, uuid)
