"""Provider of the raw user data bytes, or none."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.providers.base import Provider
from metadata.records import Slice, UserData
from metadata.store import reads


class UserDataProvider(Provider):
    slice = Slice.USER_DATA

    async def read(self, conn: AsyncConnection, uuid: str) -> UserData:
        return await reads.load_user_data(conn, uuid)
