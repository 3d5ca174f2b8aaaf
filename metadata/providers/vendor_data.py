"""Provider of the instance's static vendor data JSON."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.providers.base import Provider
from metadata.records import Slice, VendorData
from metadata.store import reads


class VendorDataProvider(Provider):
    slice = Slice.VENDOR_DATA

    async def read(self, conn: AsyncConnection, uuid: str) -> VendorData:
        return await reads.load_vendor_data(conn, uuid)
