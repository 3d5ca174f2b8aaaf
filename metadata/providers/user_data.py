"""Provider of the raw user data bytes, or none."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from metadata.providers.base import INSTANCE_UUID, Provider
from metadata.records import Slice, UserData
from metadata.store import schema as t

u = t.user_data


class UserDataProvider(Provider):
    slice = Slice.USER_DATA

    def columns(self) -> list[ColumnElement[Any]]:
        data = select(u.c.data).where(u.c.instance_uuid == INSTANCE_UUID)
        return [data.scalar_subquery().label("user_data")]

    def decode(self, row: RowMapping) -> UserData:
        data = row["user_data"]
        return UserData(None if data is None else bytes(data))
