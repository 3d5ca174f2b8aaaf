"""Provider of the password the guest posted (encrypted by the guest), or empty."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from metadata.providers.base import INSTANCE_UUID, Provider
from metadata.records import Password, Slice
from metadata.store import schema as t

pw = t.passwords


class PasswordProvider(Provider):
    slice = Slice.PASSWORD

    def columns(self) -> list[ColumnElement[Any]]:
        value = select(pw.c.value).where(pw.c.instance_uuid == INSTANCE_UUID)
        return [value.scalar_subquery().label("password")]

    def decode(self, row: RowMapping) -> Password:
        return Password(row["password"] or "")
