"""One definition per slice of the store's data: the columns that select it next to the
instance row, and how a row holding them becomes the slice's record.

Every read of the store is derived from these definitions: a guest's slices (one instance,
any set of slices, one statement), an instance found by address, and a page of whole
documents for the admin API (one statement for the page). A slice's SQL is written here and
nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, RowMapping, select

from metadata.records import (
    FixedIP,
    Flavor,
    InstanceCore,
    Key,
    Keys,
    MetadataItems,
    Network,
    Password,
    Port,
    Route,
    Slice,
    UserData,
    VendorData,
)
from metadata.store import schema as t
from metadata.store.bundle import json_rows

# The instance row that every slice's columns are anchored on (correlated subqueries).
INSTANCE_UUID = t.instances.c.uuid
GENERATION = t.instances.c.generation.label("generation")


@dataclass(frozen=True, slots=True)
class SliceDefinition:
    slice: Slice
    columns: Callable[[], list[ColumnElement[Any]]]
    decode: Callable[[RowMapping], Any]


def json_value(value: Any) -> Any:
    """SQLite and MariaDB hand nested JSON back as text; PostgreSQL as structure."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


# -- core: the instance row itself ---------------------------------------------------------

CORE_COLUMNS = [c for c in t.instances.c if c.name not in ("created_at", "updated_at")]


def _core_columns() -> list[ColumnElement[Any]]:
    return [column.label(f"core_{column.name}") for column in CORE_COLUMNS]


def _decode_core(row: RowMapping) -> InstanceCore:
    attributes = json_value(row["core_attributes"]) or {}
    flavor = attributes.get("flavor") or {"name": "m1.small"}
    return InstanceCore(
        uuid=row["core_uuid"],
        generation=row["core_generation"],
        ec2_id=row["core_ec2_id"],
        name=row["core_name"],
        hostname=row["core_hostname"],
        project_id=row["core_project_id"],
        user_id=row["core_user_id"],
        availability_zone=row["core_availability_zone"],
        launch_index=row["core_launch_index"],
        image_id=row["core_image_id"],
        ami_id=row["core_ami_id"],
        kernel_id=row["core_kernel_id"],
        ramdisk_id=row["core_ramdisk_id"],
        reservation_id=row["core_reservation_id"],
        flavor=Flavor(**flavor),
        security_groups=tuple(attributes.get("security_groups", ())),
        block_device_mapping=tuple(
            (name, device) for name, device in attributes.get("block_device_mapping", ())
        ),
        devices=tuple(attributes.get("devices", ())),
        dedicated_cpus=tuple(attributes.get("dedicated_cpus", ())),
        region=attributes.get("region"),
        tags=tuple((key, value) for key, value in attributes.get("tags", ())),
        instance_metadata_tags=bool(attributes.get("instance_metadata_tags", False)),
    )


# -- child tables, each folded into one JSON array per instance -----------------------------

m, k = t.metadata_items, t.keys


def _metadata_columns() -> list[ColumnElement[Any]]:
    rows = select(json_rows(m.c.key, m.c.value)).where(m.c.instance_uuid == INSTANCE_UUID)
    return [rows.scalar_subquery().label("metadata_items")]


def _decode_metadata(row: RowMapping) -> MetadataItems:
    pairs = json_value(row["metadata_items"]) or []
    return MetadataItems(dict(sorted((key, value) for key, value in pairs)))


def _keys_columns() -> list[ColumnElement[Any]]:
    rows = select(json_rows(k.c.position, k.c.name, k.c.type, k.c.data)).where(
        k.c.instance_uuid == INSTANCE_UUID
    )
    return [rows.scalar_subquery().label("keys")]


def _decode_keys(row: RowMapping) -> Keys:
    # JSON aggregation keeps no order: the position column restores it.
    entries = sorted(json_value(row["keys"]) or [])
    return Keys(tuple(Key(name, kind, data) for _, name, kind, data in entries))


p, f = t.ports, t.fixed_ips
# Every port, left-joined with its fixed IPs.
PORTS_WITH_FIXED_IPS = p.outerjoin(
    f, (f.c.instance_uuid == p.c.instance_uuid) & (f.c.port_position == p.c.position)
)
PORT_FIELDS = ("position", "port_id", "mac", "network_id", "mtu", "vif_type", "floating_ips")
FIXED_IP_FIELDS = ("address", "cidr", "gateway", "dns", "routes", "mode")
NETWORK_FIELDS = (*PORT_FIELDS, "ip_position", *FIXED_IP_FIELDS)
NETWORK_JSON_FIELDS = ("floating_ips", "dns", "routes")


def _network_columns() -> list[ColumnElement[Any]]:
    rows = (
        select(
            json_rows(
                *(p.c[n] for n in PORT_FIELDS), f.c.position, *(f.c[n] for n in FIXED_IP_FIELDS)
            )
        )
        .select_from(PORTS_WITH_FIXED_IPS)
        .where(p.c.instance_uuid == INSTANCE_UUID)
    )
    return [rows.scalar_subquery().label("network")]


def _decode_network(row: RowMapping) -> Network:
    records = []
    for values in json_value(row["network"]) or []:
        record = dict(zip(NETWORK_FIELDS, values, strict=True))
        for name in NETWORK_JSON_FIELDS:
            record[name] = json_value(record[name]) if record[name] is not None else []
        records.append(record)
    # Ports in order, each port's addresses in order (a port without any comes first).
    records.sort(
        key=lambda r: (r["position"], -1 if r["ip_position"] is None else r["ip_position"])
    )
    return network_from_records(records)


def network_from_records(records: Iterable[Mapping[str, Any]]) -> Network:
    """Port records (one per fixed IP, or one with a null address for a port without any),
    ordered by port then IP, as one Network."""
    ports: list[Port] = []
    fixed: list[FixedIP] = []
    current: Mapping[str, Any] | None = None

    def close() -> None:
        if current is not None:
            ports.append(
                Port(
                    id=current["port_id"],
                    mac=current["mac"],
                    network_id=current["network_id"],
                    mtu=current["mtu"],
                    type=current["vif_type"],
                    fixed_ips=tuple(fixed),
                    floating_ips=tuple(current["floating_ips"]),
                )
            )

    for record in records:
        if current is None or record["position"] != current["position"]:
            close()
            current, fixed = record, []
        if record["address"] is not None:
            fixed.append(
                FixedIP(
                    address=record["address"],
                    cidr=record["cidr"],
                    gateway=record["gateway"],
                    dns=tuple(record["dns"]),
                    routes=tuple(Route(r["cidr"], r["gateway"]) for r in record["routes"]),
                    mode=record["mode"],
                )
            )
    close()
    return Network(tuple(ports))


# -- one-row child tables -------------------------------------------------------------------

u, v, pw = t.user_data, t.vendor_data, t.passwords


def _user_data_columns() -> list[ColumnElement[Any]]:
    data = select(u.c.data).where(u.c.instance_uuid == INSTANCE_UUID)
    return [data.scalar_subquery().label("user_data")]


def _decode_user_data(row: RowMapping) -> UserData:
    data = row["user_data"]
    return UserData(None if data is None else bytes(data))


def _vendor_data_columns() -> list[ColumnElement[Any]]:
    data = select(v.c.data).where(v.c.instance_uuid == INSTANCE_UUID)
    return [data.scalar_subquery().label("vendor_data")]


def _decode_vendor_data(row: RowMapping) -> VendorData:
    return VendorData(json_value(row["vendor_data"]) or {})


def _password_columns() -> list[ColumnElement[Any]]:
    value = select(pw.c.value).where(pw.c.instance_uuid == INSTANCE_UUID)
    return [value.scalar_subquery().label("password")]


def _decode_password(row: RowMapping) -> Password:
    return Password(row["password"] or "")


DEFINITIONS: dict[Slice, SliceDefinition] = {
    d.slice: d
    for d in (
        SliceDefinition(Slice.CORE, _core_columns, _decode_core),
        SliceDefinition(Slice.METADATA, _metadata_columns, _decode_metadata),
        SliceDefinition(Slice.KEYS, _keys_columns, _decode_keys),
        SliceDefinition(Slice.NETWORK, _network_columns, _decode_network),
        SliceDefinition(Slice.USER_DATA, _user_data_columns, _decode_user_data),
        SliceDefinition(Slice.VENDOR_DATA, _vendor_data_columns, _decode_vendor_data),
        SliceDefinition(Slice.PASSWORD, _password_columns, _decode_password),
    )
}
# The slices of an instance document (the password is the guest's, not the operator's).
DOCUMENT_SLICES = frozenset(DEFINITIONS) - {Slice.PASSWORD}


def columns_of(names: Iterable[Slice]) -> list[ColumnElement[Any]]:
    """The instance's generation and the columns of every named slice."""
    columns: list[ColumnElement[Any]] = [GENERATION]
    for name in sorted(names, key=lambda s: s.value):
        columns.extend(DEFINITIONS[name].columns())
    return columns


def decode(row: RowMapping, names: Iterable[Slice]) -> dict[Slice, Any]:
    return {name: DEFINITIONS[name].decode(row) for name in names}
