"""Provider of the instance's static vendor data JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from metadata.providers.base import INSTANCE_UUID, Provider, json_value
from metadata.records import Slice, VendorData
from metadata.store import schema as t

v = t.vendor_data


class VendorDataProvider(Provider):
    slice = Slice.VENDOR_DATA

    def columns(self) -> list[ColumnElement[Any]]:
        data = select(v.c.data).where(v.c.instance_uuid == INSTANCE_UUID)
        return [data.scalar_subquery().label("vendor_data")]

    def decode(self, row: RowMapping) -> VendorData:
        return VendorData(json_value(row["vendor_data"]) or {})
