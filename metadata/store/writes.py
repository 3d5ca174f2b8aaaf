"""Writes, each inside a transaction the caller opened. Every write bumps the generation."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from metadata.errors import Conflict, InstanceNotFound, NotFound, PreconditionFailed
from metadata.records import InstanceDocument
from metadata.store import schema as t
from metadata.user_data_versions import UserDataChange, etag_matches, etag_of_sha256


def next_generation(previous: int | None) -> int:
    # Microseconds since the epoch, or one more than before: a re-created instance never
    # reuses a generation that an old cache entry might still carry.
    return max((previous or 0) + 1, time.time_ns() // 1000)


def _now() -> datetime:
    return datetime.now(UTC)


def instance_row(doc: InstanceDocument, generation: int) -> dict[str, Any]:
    core = doc.core
    return {
        "uuid": core.uuid,
        "generation": generation,
        "ec2_id": core.ec2_id,
        "name": core.name,
        "hostname": core.hostname,
        "project_id": core.project_id,
        "user_id": core.user_id,
        "availability_zone": core.availability_zone,
        "launch_index": core.launch_index,
        "image_id": core.image_id,
        "ami_id": core.ami_id,
        "kernel_id": core.kernel_id,
        "ramdisk_id": core.ramdisk_id,
        "reservation_id": core.reservation_id,
        "attributes": {
            "flavor": {
                "name": core.flavor.name,
                "vcpus": core.flavor.vcpus,
                "ram_mb": core.flavor.ram_mb,
                "disk_gb": core.flavor.disk_gb,
            },
            "security_groups": list(core.security_groups),
            "block_device_mapping": [list(pair) for pair in core.block_device_mapping],
            "devices": [dict(d) for d in core.devices],
            "dedicated_cpus": list(core.dedicated_cpus),
            "region": core.region,
            "tags": [list(pair) for pair in core.tags],
            "instance_metadata_tags": core.instance_metadata_tags,
        },
    }


def child_rows(doc: InstanceDocument) -> dict[Table, list[dict[str, Any]]]:
    """The rows of every child table, for one instance or for a bulk import."""
    uuid = doc.core.uuid
    rows: dict[Table, list[dict[str, Any]]] = {
        t.metadata_items: [
            {"instance_uuid": uuid, "key": k, "value": v} for k, v in doc.metadata.items.items()
        ],
        t.keys: [
            {"instance_uuid": uuid, "position": i, "name": k.name, "type": k.type, "data": k.data}
            for i, k in enumerate(doc.keys.keys)
        ],
        t.ports: [],
        t.fixed_ips: [],
        t.vendor_data: (
            [{"instance_uuid": uuid, "data": dict(doc.vendor_data.data)}]
            if doc.vendor_data.data
            else []
        ),
    }
    for position, port in enumerate(doc.network.ports):
        rows[t.ports].append(
            {
                "instance_uuid": uuid,
                "position": position,
                "port_id": port.id,
                "mac": port.mac,
                "network_id": port.network_id,
                "mtu": port.mtu,
                "vif_type": port.type,
                "floating_ips": list(port.floating_ips),
            }
        )
        for ip_position, ip in enumerate(port.fixed_ips):
            rows[t.fixed_ips].append(
                {
                    "instance_uuid": uuid,
                    "port_position": position,
                    "position": ip_position,
                    "address": ip.address,
                    "cidr": ip.cidr,
                    "gateway": ip.gateway,
                    "dns": list(ip.dns),
                    "mode": ip.mode,
                    "routes": [{"cidr": r.cidr, "gateway": r.gateway} for r in ip.routes],
                }
            )
    return rows


def user_data_row(uuid: str, data: bytes) -> dict[str, Any]:
    return {
        "instance_uuid": uuid,
        "data": data,
        "sha256": hashlib.sha256(data).hexdigest(),
        "updated_at": _now(),
    }


async def lock_generation(conn: AsyncConnection, uuid: str) -> int | None:
    """The instance's generation, with its row locked for the rest of the transaction."""
    result = await conn.execute(
        select(t.instances.c.generation).where(t.instances.c.uuid == uuid).with_for_update()
    )
    return result.scalar()


async def bump_generation(conn: AsyncConnection, uuid: str) -> int:
    previous = await lock_generation(conn, uuid)
    if previous is None:
        raise InstanceNotFound(f"no instance {uuid}")
    generation = next_generation(previous)
    await conn.execute(
        update(t.instances)
        .where(t.instances.c.uuid == uuid)
        .values(generation=generation, updated_at=_now())
    )
    return generation


async def fixed_addresses(conn: AsyncConnection, uuid: str) -> set[str]:
    result = await conn.execute(
        select(t.fixed_ips.c.address).where(t.fixed_ips.c.instance_uuid == uuid)
    )
    return set(result.scalars().all())


async def put_instance(
    conn: AsyncConnection, doc: InstanceDocument, actor: str = "", keep: int = 10
) -> tuple[bool, int, set[str]]:
    """Create or replace; returns (created, generation, addresses before and after). The
    password survives a replace: the guest set it, not the operator. A change of user data
    is recorded in its history as one made by `actor`."""
    uuid = doc.core.uuid
    previous = await lock_generation(conn, uuid)
    old_sha256 = None
    if previous is not None and doc.user_data is not None:
        old_sha256 = await user_data_sha256(conn, uuid)
    addresses = {ip.address for port in doc.network.ports for ip in port.fixed_ips}
    if previous is not None:
        addresses |= await fixed_addresses(conn, uuid)
    generation = next_generation(previous)
    row = instance_row(doc, generation)
    now = _now()
    if previous is None:
        await conn.execute(insert(t.instances).values(**row, created_at=now, updated_at=now))
    else:
        await conn.execute(
            update(t.instances).where(t.instances.c.uuid == uuid).values(**row, updated_at=now)
        )
        for table in (t.metadata_items, t.keys, t.fixed_ips, t.ports, t.vendor_data):
            await conn.execute(delete(table).where(table.c.instance_uuid == uuid))
    for table, rows in child_rows(doc).items():
        if rows:
            await conn.execute(insert(table), rows)
    if doc.user_data is not None:
        await conn.execute(delete(t.user_data).where(t.user_data.c.instance_uuid == uuid))
        data = doc.user_data.data
        if data is not None:
            await conn.execute(insert(t.user_data).values(user_data_row(uuid, data)))
        if _sha256(data) != old_sha256:
            await record_user_data(conn, uuid, data, "set", actor, keep)
    return previous is None, generation, addresses


async def delete_instance(conn: AsyncConnection, uuid: str) -> set[str]:
    """Delete; returns the addresses the instance had."""
    if await lock_generation(conn, uuid) is None:
        raise InstanceNotFound(f"no instance {uuid}")
    addresses = await fixed_addresses(conn, uuid)
    # Not a CHILD_TABLE (import/export skip it), but it goes with the instance.
    await conn.execute(
        delete(t.user_data_history).where(t.user_data_history.c.instance_uuid == uuid)
    )
    for table in t.CHILD_TABLES:
        await conn.execute(delete(table).where(table.c.instance_uuid == uuid))
    await conn.execute(delete(t.instances).where(t.instances.c.uuid == uuid))
    return addresses


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


async def user_data_sha256(conn: AsyncConnection, uuid: str) -> str | None:
    result = await conn.execute(
        select(t.user_data.c.sha256).where(t.user_data.c.instance_uuid == uuid)
    )
    return result.scalar()


async def set_user_data(
    conn: AsyncConnection,
    uuid: str,
    data: bytes | None,
    change: UserDataChange | None = None,
    keep: int = 10,
    *,
    action: str = "",
    restored_from: int | None = None,
) -> int:
    """Replace (None: remove) the user data, if `change.if_match` names what is stored now;
    a change is recorded in the history, whose newest `keep` versions keep their bytes."""
    change = change or UserDataChange("")
    generation = await bump_generation(conn, uuid)  # the row lock orders concurrent changes
    old_sha256 = await user_data_sha256(conn, uuid)
    if change.if_match is not None:
        current = None if old_sha256 is None else etag_of_sha256(old_sha256)
        if not etag_matches(change.if_match, current):
            raise PreconditionFailed(f"If-Match: the user data is now {current or 'absent'}")
    await conn.execute(delete(t.user_data).where(t.user_data.c.instance_uuid == uuid))
    if data is not None:
        await conn.execute(insert(t.user_data).values(user_data_row(uuid, data)))
    if restored_from is not None or _sha256(data) != old_sha256:
        action = action or ("delete" if data is None else "set")
        await record_user_data(conn, uuid, data, action, change.actor, keep, restored_from)
    return generation


async def record_user_data(
    conn: AsyncConnection,
    uuid: str,
    data: bytes | None,
    action: str,
    actor: str,
    keep: int,
    restored_from: int | None = None,
) -> None:
    h = t.user_data_history
    await conn.execute(
        insert(h).values(
            instance_uuid=uuid,
            changed_at=_now(),
            changed_by=actor,
            action=action,
            size=None if data is None else len(data),
            sha256=_sha256(data),
            data=data,
            restored_from=restored_from,
        )
    )
    # The newest `keep` versions (removals count) keep their bytes. Two statements, not one
    # UPDATE ... (SELECT ... LIMIT): MySQL refuses an UPDATE that selects from its own table.
    result = await conn.execute(
        select(h.c.id)
        .where(h.c.instance_uuid == uuid)
        .order_by(h.c.id.desc())
        .offset(keep)
        .limit(1)
    )
    newest_forgotten = result.scalar()
    if newest_forgotten is not None:
        await conn.execute(
            update(h)
            .where(h.c.instance_uuid == uuid, h.c.id <= newest_forgotten, h.c.data.is_not(None))
            .values(data=None)
        )


async def restore_user_data(
    conn: AsyncConnection, uuid: str, version: int, change: UserDataChange, keep: int
) -> int:
    """Make an earlier version current again (a version that removed it: remove it)."""
    h = t.user_data_history
    result = await conn.execute(
        select(h.c.sha256, h.c.data).where(h.c.instance_uuid == uuid, h.c.id == version)
    )
    row = result.first()
    if row is None:
        if await lock_generation(conn, uuid) is None:
            raise InstanceNotFound(f"no instance {uuid}")
        raise NotFound(f"no user data version {version} for this instance")
    if row.sha256 is not None and row.data is None:
        raise Conflict(f"version {version} is too old: its bytes are no longer kept")
    data = None if row.data is None else bytes(row.data)
    return await set_user_data(
        conn, uuid, data, change, keep, action="restore", restored_from=version
    )


async def set_password_once(conn: AsyncConnection, uuid: str, value: str) -> int:
    """The guest's one password POST; a second while one is stored is refused (as Nova)."""
    generation = await bump_generation(conn, uuid)
    existing = await conn.execute(
        select(t.passwords.c.value).where(t.passwords.c.instance_uuid == uuid)
    )
    if existing.scalar():
        raise Conflict("a password is already set")
    await conn.execute(delete(t.passwords).where(t.passwords.c.instance_uuid == uuid))
    await conn.execute(insert(t.passwords).values(instance_uuid=uuid, value=value))
    return generation


async def clear_password(conn: AsyncConnection, uuid: str) -> int:
    generation = await bump_generation(conn, uuid)
    await conn.execute(delete(t.passwords).where(t.passwords.c.instance_uuid == uuid))
    return generation
