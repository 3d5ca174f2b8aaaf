"""Provider of the public keys, in document order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from metadata.providers.base import INSTANCE_UUID, Provider, json_value
from metadata.records import Key, Keys, Slice
from metadata.store import schema as t
from metadata.store.bundle import json_rows

k = t.keys


class KeysProvider(Provider):
    slice = Slice.KEYS

    def columns(self) -> list[ColumnElement[Any]]:
        rows = select(json_rows(k.c.position, k.c.name, k.c.type, k.c.data)).where(
            k.c.instance_uuid == INSTANCE_UUID
        )
        return [rows.scalar_subquery().label("keys")]

    def decode(self, row: RowMapping) -> Keys:
        # JSON aggregation keeps no order: the position column restores it.
        entries = sorted(json_value(row["keys"]) or [])
        return Keys(tuple(Key(name, kind, data) for _, name, kind, data in entries))
