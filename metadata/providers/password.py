"""Provider of the password the guest posted (encrypted by the guest), or empty."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.providers.base import Provider
from metadata.records import Password, Slice
from metadata.store import reads


class PasswordProvider(Provider):
    slice = Slice.PASSWORD

    async def read(self, conn: AsyncConnection, uuid: str) -> Password:
        return await reads.load_password(conn, uuid)
