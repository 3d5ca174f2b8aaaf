"""Provider of the ports with their fixed and floating IPs (ports joined to fixed IPs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from metadata.providers.base import INSTANCE_UUID, Provider, json_value
from metadata.records import Network, Slice
from metadata.store import schema as t
from metadata.store.bundle import json_rows
from metadata.store.reads import (
    FIXED_IP_COLUMNS,
    PORT_COLUMNS,
    PORTS_WITH_FIXED_IPS,
    network_from_rows,
)

p, f = t.ports, t.fixed_ips
FIELDS = (*(c.name for c in PORT_COLUMNS), "ip_position", *(c.name for c in FIXED_IP_COLUMNS))
JSON_FIELDS = ("floating_ips", "dns", "routes")


class NetworkProvider(Provider):
    slice = Slice.NETWORK

    def columns(self) -> list[ColumnElement[Any]]:
        # the order of FIELDS: the port, then the position and columns of each fixed IP
        rows = (
            select(json_rows(*PORT_COLUMNS, f.c.position, *FIXED_IP_COLUMNS))
            .select_from(PORTS_WITH_FIXED_IPS)
            .where(p.c.instance_uuid == INSTANCE_UUID)
        )
        return [rows.scalar_subquery().label("network")]

    def decode(self, row: RowMapping) -> Network:
        records = []
        for values in json_value(row["network"]) or []:
            record = dict(zip(FIELDS, values, strict=True))
            for name in JSON_FIELDS:
                record[name] = json_value(record[name]) if record[name] is not None else []
            records.append(record)
        # Ports in order, each port's addresses in order (a port without any comes first).
        records.sort(key=lambda r: (r["position"], -1 if r["ip_position"] is None
                                    else r["ip_position"]))  # fmt: skip
        return network_from_rows(records)
