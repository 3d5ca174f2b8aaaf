"""Provider of the instance row: ids, names, placement, flavor, image, devices, generation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping

from metadata.providers.base import Provider
from metadata.records import InstanceCore, Slice
from metadata.store.reads import CORE_COLUMNS, core_from_row


class InstanceCoreProvider(Provider):
    slice = Slice.CORE

    def columns(self) -> list[ColumnElement[Any]]:
        return [column.label(f"core_{column.name}") for column in CORE_COLUMNS]

    def decode(self, row: RowMapping) -> InstanceCore:
        return core_from_row({c.name: row[f"core_{c.name}"] for c in CORE_COLUMNS})
