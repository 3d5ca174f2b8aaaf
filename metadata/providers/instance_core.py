"""Provider of the instance row: ids, names, placement, flavor, image, devices."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.providers.base import Provider
from metadata.records import InstanceCore, Slice
from metadata.store import reads


class InstanceCoreProvider(Provider):
    slice = Slice.CORE

    async def read(self, conn: AsyncConnection, uuid: str) -> InstanceCore | None:
        return await reads.load_core(conn, uuid)
