"""Provider of the operator's key/value metadata items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from metadata.providers.base import INSTANCE_UUID, Provider, json_value
from metadata.records import MetadataItems, Slice
from metadata.store import schema as t
from metadata.store.bundle import json_rows

m = t.metadata_items


class MetadataItemsProvider(Provider):
    slice = Slice.METADATA

    def columns(self) -> list[ColumnElement[Any]]:
        rows = select(json_rows(m.c.key, m.c.value)).where(m.c.instance_uuid == INSTANCE_UUID)
        return [rows.scalar_subquery().label("metadata_items")]

    def decode(self, row: RowMapping) -> MetadataItems:
        pairs = json_value(row["metadata_items"]) or []
        return MetadataItems(dict(sorted((key, value) for key, value in pairs)))
