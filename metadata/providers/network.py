"""Provider of the ports with their fixed and floating IPs (ports joined to fixed IPs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, RowMapping, select

from metadata.providers.base import INSTANCE_UUID, Provider, json_value
from metadata.records import Network, Slice
from metadata.store import schema as t
from metadata.store.bundle import json_rows
from metadata.store.reads import network_from_rows

p, f = t.ports, t.fixed_ips
FIELDS = ("position", "port_id", "mac", "network_id", "mtu", "vif_type", "floating_ips",
          "ip_position", "address", "cidr", "gateway", "dns", "routes", "mode")  # fmt: skip
JSON_FIELDS = ("floating_ips", "dns", "routes")


class NetworkProvider(Provider):
    slice = Slice.NETWORK

    def columns(self) -> list[ColumnElement[Any]]:
        joined = p.outerjoin(
            f, (f.c.instance_uuid == p.c.instance_uuid) & (f.c.port_position == p.c.position)
        )
        rows = (
            select(
                json_rows(
                    p.c.position,
                    p.c.port_id,
                    p.c.mac,
                    p.c.network_id,
                    p.c.mtu,
                    p.c.vif_type,
                    p.c.floating_ips,
                    f.c.position,
                    f.c.address,
                    f.c.cidr,
                    f.c.gateway,
                    f.c.dns,
                    f.c.routes,
                    f.c.mode,
                )
            )
            .select_from(joined)
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
