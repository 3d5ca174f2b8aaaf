"""One SELECT per slice. Each function takes a connection and sends exactly one statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.records import (
    FixedIP,
    Flavor,
    InstanceCore,
    InstanceDocument,
    Key,
    Keys,
    MetadataItems,
    Network,
    Password,
    Port,
    Route,
    UserData,
    VendorData,
)
from metadata.store import schema as t
from metadata.user_data_versions import UserDataVersion


def core_from_row(row: Mapping[str, Any] | RowMapping) -> InstanceCore:
    attributes = row["attributes"]
    flavor = attributes.get("flavor") or {"name": "m1.small"}
    return InstanceCore(
        uuid=row["uuid"],
        generation=row["generation"],
        ec2_id=row["ec2_id"],
        name=row["name"],
        hostname=row["hostname"],
        project_id=row["project_id"],
        user_id=row["user_id"],
        availability_zone=row["availability_zone"],
        launch_index=row["launch_index"],
        image_id=row["image_id"],
        ami_id=row["ami_id"],
        kernel_id=row["kernel_id"],
        ramdisk_id=row["ramdisk_id"],
        reservation_id=row["reservation_id"],
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


CORE_COLUMNS = [c for c in t.instances.c if c.name not in ("created_at", "updated_at")]


async def load_core(conn: AsyncConnection, uuid: str) -> InstanceCore | None:
    result = await conn.execute(select(*CORE_COLUMNS).where(t.instances.c.uuid == uuid))
    row = result.mappings().first()
    return None if row is None else core_from_row(row)


async def load_metadata(conn: AsyncConnection, uuid: str) -> MetadataItems:
    result = await conn.execute(
        select(t.metadata_items.c.key, t.metadata_items.c.value)
        .where(t.metadata_items.c.instance_uuid == uuid)
        .order_by(t.metadata_items.c.key)
    )
    return MetadataItems({key: value for key, value in result.all()})


async def load_keys(conn: AsyncConnection, uuid: str) -> Keys:
    result = await conn.execute(
        select(t.keys.c.name, t.keys.c.type, t.keys.c.data)
        .where(t.keys.c.instance_uuid == uuid)
        .order_by(t.keys.c.position)
    )
    return Keys(tuple(Key(name, kind, data) for name, kind, data in result.all()))


def network_from_rows(rows: Sequence[Mapping[str, Any] | RowMapping]) -> Network:
    """Rows of ports left-joined with their fixed IPs, ordered by port then IP."""
    ports: list[Port] = []
    fixed: list[FixedIP] = []
    current: Mapping[str, Any] | RowMapping | None = None

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

    for row in rows:
        if current is None or row["position"] != current["position"]:
            close()
            current, fixed = row, []
        if row["address"] is not None:
            fixed.append(
                FixedIP(
                    address=row["address"],
                    cidr=row["cidr"],
                    gateway=row["gateway"],
                    dns=tuple(row["dns"]),
                    routes=tuple(Route(r["cidr"], r["gateway"]) for r in row["routes"]),
                    mode=row["mode"],
                )
            )
    close()
    return Network(tuple(ports))


# The network slice's rows: every port, left-joined with its fixed IPs.
PORTS_WITH_FIXED_IPS = t.ports.outerjoin(
    t.fixed_ips,
    (t.fixed_ips.c.instance_uuid == t.ports.c.instance_uuid)
    & (t.fixed_ips.c.port_position == t.ports.c.position),
)
PORT_COLUMNS = [t.ports.c[name] for name in (
    "position", "port_id", "mac", "network_id", "mtu", "vif_type", "floating_ips")]  # fmt: skip
FIXED_IP_COLUMNS = [t.fixed_ips.c[name] for name in (
    "address", "cidr", "gateway", "dns", "routes", "mode")]  # fmt: skip


async def load_network(conn: AsyncConnection, uuid: str) -> Network:
    p, f = t.ports, t.fixed_ips
    query = (
        select(*PORT_COLUMNS, *FIXED_IP_COLUMNS)
        .select_from(PORTS_WITH_FIXED_IPS)
        .where(p.c.instance_uuid == uuid)
        .order_by(p.c.position, f.c.position)
    )
    result = await conn.execute(query)
    return network_from_rows(result.mappings().all())


async def load_user_data(conn: AsyncConnection, uuid: str) -> UserData:
    result = await conn.execute(
        select(t.user_data.c.data).where(t.user_data.c.instance_uuid == uuid)
    )
    data = result.scalar()
    return UserData(None if data is None else bytes(data))


async def load_vendor_data(conn: AsyncConnection, uuid: str) -> VendorData:
    result = await conn.execute(
        select(t.vendor_data.c.data).where(t.vendor_data.c.instance_uuid == uuid)
    )
    return VendorData(result.scalar() or {})


async def load_password(conn: AsyncConnection, uuid: str) -> Password:
    result = await conn.execute(
        select(t.passwords.c.value).where(t.passwords.c.instance_uuid == uuid)
    )
    return Password(result.scalar() or "")


async def find_instances_by_address(conn: AsyncConnection, address: str) -> list[tuple[str, int]]:
    """(uuid, generation) of the instances with this fixed IP: one indexed probe. Two are
    fetched so that ambiguity can be refused."""
    i, f = t.instances, t.fixed_ips
    result = await conn.execute(
        select(i.c.uuid, i.c.generation)
        .select_from(f.join(i, i.c.uuid == f.c.instance_uuid))
        .where(f.c.address == address)
        .distinct()
        .limit(2)
    )
    return [(uuid, generation) for uuid, generation in result.all()]


async def list_instance_uuids(conn: AsyncConnection, limit: int, marker: str | None) -> list[str]:
    query = select(t.instances.c.uuid).order_by(t.instances.c.uuid).limit(limit)
    if marker is not None:
        query = query.where(t.instances.c.uuid > marker)
    result = await conn.execute(query)
    return list(result.scalars().all())


async def load_documents(conn: AsyncConnection, uuids: list[str]) -> list[InstanceDocument]:
    """Whole documents for a page of instances: one statement per table, not per instance."""
    if not uuids:
        return []
    cores = {
        row["uuid"]: core_from_row(row)
        for row in (
            await conn.execute(select(*CORE_COLUMNS).where(t.instances.c.uuid.in_(uuids)))
        ).mappings()
    }
    meta: dict[str, dict[str, str]] = {u: {} for u in uuids}
    for uuid, key, value in await conn.execute(
        select(t.metadata_items.c.instance_uuid, t.metadata_items.c.key, t.metadata_items.c.value)
        .where(t.metadata_items.c.instance_uuid.in_(uuids))
        .order_by(t.metadata_items.c.key)
    ):
        meta[uuid][key] = value
    key_lists: dict[str, list[Key]] = {u: [] for u in uuids}
    for uuid, name, kind, data in await conn.execute(
        select(t.keys.c.instance_uuid, t.keys.c.name, t.keys.c.type, t.keys.c.data)
        .where(t.keys.c.instance_uuid.in_(uuids))
        .order_by(t.keys.c.instance_uuid, t.keys.c.position)
    ):
        key_lists[uuid].append(Key(name, kind, data))
    p, f = t.ports, t.fixed_ips
    network_rows: dict[str, list[Mapping[str, Any] | RowMapping]] = {u: [] for u in uuids}
    for row in (
        await conn.execute(
            select(p.c.instance_uuid, *PORT_COLUMNS, *FIXED_IP_COLUMNS)
            .select_from(PORTS_WITH_FIXED_IPS)
            .where(p.c.instance_uuid.in_(uuids))
            .order_by(p.c.instance_uuid, p.c.position, f.c.position)
        )
    ).mappings():  # fmt: skip
        network_rows[row["instance_uuid"]].append(row)
    vendor = dict(
        (await conn.execute(
            select(t.vendor_data.c.instance_uuid, t.vendor_data.c.data)
            .where(t.vendor_data.c.instance_uuid.in_(uuids))
        )).all()
    )  # fmt: skip
    user = dict(
        (await conn.execute(
            select(t.user_data.c.instance_uuid, t.user_data.c.data)
            .where(t.user_data.c.instance_uuid.in_(uuids))
        )).all()
    )  # fmt: skip
    return [
        InstanceDocument(
            core=cores[u],
            metadata=MetadataItems(meta[u]),
            keys=Keys(tuple(key_lists[u])),
            network=network_from_rows(network_rows[u]),
            vendor_data=VendorData(vendor.get(u) or {}),
            user_data=UserData(None if user.get(u) is None else bytes(user[u])),
        )
        for u in uuids
        if u in cores
    ]


async def load_user_data_sha256(conn: AsyncConnection, uuid: str) -> tuple[bool, str | None]:
    """Whether the instance exists, and the SHA-256 of its user data (None: it has none)."""
    query = (
        select(t.instances.c.uuid, t.user_data.c.sha256)
        .select_from(
            t.instances.outerjoin(t.user_data, t.user_data.c.instance_uuid == t.instances.c.uuid)
        )
        .where(t.instances.c.uuid == uuid)
    )
    row = (await conn.execute(query)).first()
    return (False, None) if row is None else (True, row.sha256)


async def load_user_data_history(conn: AsyncConnection, uuid: str, limit: int
                                 ) -> list[UserDataVersion]:  # fmt: skip
    """The newest `limit` recorded changes, newest first."""
    h = t.user_data_history
    query = (
        select(h.c.id, h.c.changed_at, h.c.changed_by, h.c.action, h.c.size, h.c.sha256,
               h.c.restored_from, h.c.data.is_not(None).label("has_data"))
        .where(h.c.instance_uuid == uuid)
        .order_by(h.c.id.desc())
        .limit(limit)
    )  # fmt: skip
    result = await conn.execute(query)
    return [
        UserDataVersion(
            version=row.id, changed_at=_aware(row.changed_at), changed_by=row.changed_by,
            action=row.action, size=row.size, sha256=row.sha256,
            is_restorable=row.sha256 is None or bool(row.has_data),
            restored_from=row.restored_from,
        )
        for row in result
    ]  # fmt: skip


def _aware(value: datetime) -> datetime:
    # SQLite and MariaDB hand back naive datetimes; we stored UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
