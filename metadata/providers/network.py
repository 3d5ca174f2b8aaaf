"""Provider of ports with their fixed and floating IPs (one joined SELECT)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.providers.base import Provider
from metadata.records import Network, Slice
from metadata.store import reads


class NetworkProvider(Provider):
    slice = Slice.NETWORK

    async def read(self, conn: AsyncConnection, uuid: str) -> Network:
        return await reads.load_network(conn, uuid)
