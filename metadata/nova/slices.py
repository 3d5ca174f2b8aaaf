"""One definition per slice on Nova's cell database: the columns it reads and its decoding.

Every slice is a set of columns on one row of `instances` (the live row of the uuid),
LEFT JOINed to `instance_extra` and `instance_info_caches` (one live row per instance)
when a slice needs them, the EC2 id tables as correlated scalar subqueries; the tables with
several rows per instance (metadata, system metadata, block devices) come as rows of their
own after it, in the same statement (UNION ALL, each row marked with its `part`). So any
set of slices is ONE statement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    bindparam,
    literal_column,
    null,
    select,
    union_all,
)

from metadata.nova import decode
from metadata.nova import schema as n
from metadata.records import (
    InstanceCore,
    MetadataItems,
    Password,
    Slice,
    VendorData,
)

i, ie, iic = n.instances, n.instance_extra, n.instance_info_caches
Row = Mapping[str, Any]
UUID = bindparam("uuid", type_=i.c.uuid.type)
PART = "part"  # 0: the instance row; n: a row of the n-th several-rows table


@dataclass(frozen=True, slots=True)
class Rows:
    """A table with several rows per instance, sent as rows of their own: aggregated to
    JSON in a subquery they cost MariaDB about 0.3 ms of CPU a statement (GROUP_CONCAT's
    set-up), ten times the indexed look-ups around them (docs/PERFORMANCE.md)."""

    name: str  # decoding reads row[name]: one list of `columns` values per row
    columns: tuple[ColumnElement[Any], ...]
    where: ColumnElement[Any]  # its rows of the instance whose uuid is the parameter


def aggregated(row: Row, name: str) -> list[list[Any]]:
    value = row[name]
    if value is None:
        return []
    return list(orjson.loads(value) if isinstance(value, str | bytes) else value)


def _ec2_number(table: Any, uuid: ColumnElement[Any], label: str) -> ColumnElement[Any]:
    return (
        (select(table.c.id).where(table.c.uuid == uuid).order_by(table.c.id).limit(1))
        .scalar_subquery()
        .label(label)
    )


@dataclass(frozen=True, slots=True)
class NovaSlice:
    slice: Slice
    columns: Callable[[str], list[ColumnElement[Any]]]
    decode: Callable[[Row, NovaContext], Any]
    extra: bool = False  # needs the instance_extra join
    info_cache: bool = False  # needs the instance_info_caches join
    rows: tuple[Rows, ...] = ()


@dataclass(frozen=True, slots=True)
class NovaContext:
    """What decoding needs besides the row: nova.conf's rendering options."""

    dhcp_domain: str
    generation: int


_bdm = n.block_device_mapping
BDM_ROWS = Rows(
    "bdm_rows",
    (
        _bdm.c.id,
        _bdm.c.source_type,
        _bdm.c.destination_type,
        _bdm.c.guest_format,
        _bdm.c.device_name,
    ),
    (_bdm.c.instance_uuid == UUID) & (_bdm.c.deleted == 0),
)
_m = n.instance_metadata
METADATA_ROWS = Rows(
    "metadata_rows",
    (_m.c.key, _m.c.value),
    (_m.c.instance_uuid == UUID) & (_m.c.deleted == 0),
)
_s = n.instance_system_metadata
PASSWORD_ROWS = Rows(
    "password_rows",
    (_s.c.key, _s.c.value),
    # No deleted filter: Nova's system metadata join has none (removals are hard deletes).
    (_s.c.instance_uuid == UUID) & _s.c.key.like("password\\_%", escape="\\"),
)


def _core_columns(dialect: str) -> list[ColumnElement[Any]]:
    return [
        *(
            i.c[name]
            for name in (
                "uuid",
                "display_name",
                "hostname",
                "project_id",
                "user_id",
                "availability_zone",
                "launch_index",
                "image_ref",
                "kernel_id",
                "ramdisk_id",
                "reservation_id",
                "root_device_name",
                "default_ephemeral_device",
                "default_swap_device",
            )
        ),
        ie.c.flavor,
        ie.c.device_metadata,
        ie.c.numa_topology,
        _ec2_number(n.instance_id_mappings, i.c.uuid, "ec2_instance"),
        _ec2_number(n.s3_images, i.c.image_ref, "ec2_image"),
        _ec2_number(n.s3_images, i.c.kernel_id, "ec2_kernel"),
        _ec2_number(n.s3_images, i.c.ramdisk_id, "ec2_ramdisk"),
    ]


def _image_id(number: int | None, image: str | None, prefix: str) -> str | None:
    if not image:
        return None
    # Nova INSERTs a missing s3_images row on read (glance_id_to_id); we only read, and
    # serve what Nova serves for an instance with no image instead (see README).
    return decode.ec2_id(prefix, number)


def _core(row: Row, context: NovaContext) -> InstanceCore:
    bdm_rows = sorted(aggregated(row, "bdm_rows"), key=lambda r: r[0])
    uuid = row["uuid"]
    return InstanceCore(
        uuid=uuid,
        generation=context.generation,
        # Nova INSERTs a missing instance_id_mappings row on read; every instance created
        # since instance_create writes it has one. Without it we fall back to the store's
        # rule (the uuid's first hex digits) rather than write to Nova.
        ec2_id=decode.ec2_id("i", row["ec2_instance"]) or "i-" + uuid.replace("-", "")[:17],
        name=row["display_name"],
        hostname=decode.hostname(row["hostname"], context.dhcp_domain),
        project_id=row["project_id"],
        user_id=row["user_id"],
        availability_zone=row["availability_zone"],
        launch_index=row["launch_index"],
        image_id=row["image_ref"] or "",
        ami_id=str(_image_id(row["ec2_image"], row["image_ref"], "ami")),
        kernel_id=_image_id(row["ec2_kernel"], row["kernel_id"], "aki"),
        ramdisk_id=_image_id(row["ec2_ramdisk"], row["ramdisk_id"], "ari"),
        reservation_id=row["reservation_id"],
        flavor=decode.flavor(row["flavor"]),
        # Only Neutron knows an instance's security groups (the source asks it when
        # [neutron] has credentials): unlisted without it.
        security_groups=(),
        security_groups_known=False,
        block_device_mapping=decode.block_device_mapping(
            row["root_device_name"],
            row["default_ephemeral_device"],
            row["default_swap_device"],
            [
                {
                    "source_type": r[1],
                    "destination_type": r[2],
                    "guest_format": r[3],
                    "device_name": r[4],
                }
                for r in bdm_rows
            ],
        ),
        devices=decode.devices(row["device_metadata"]),
        dedicated_cpus=decode.dedicated_cpus(row["numa_topology"]),
    )


def _vendor_data_columns(dialect: str) -> list[ColumnElement[Any]]:
    """Nova's static vendor data is global (nova.conf), never per instance; what is per
    instance is the boot roles DynamicJSON POSTs. In this slice because every path that
    renders dynamic vendor data reads it too: the roles never cost a statement of their own.
    No deleted filter, as in Nova's system metadata join."""
    s = n.instance_system_metadata
    return [
        select(s.c.value)
        .where((s.c.instance_uuid == i.c.uuid) & (s.c.key == "boot_roles"))
        .order_by(s.c.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("boot_roles")
    ]


SLICES: dict[Slice, NovaSlice] = {
    s.slice: s
    for s in (
        NovaSlice(Slice.CORE, _core_columns, _core, extra=True, rows=(BDM_ROWS,)),
        NovaSlice(
            Slice.METADATA,
            lambda _: [],
            lambda row, _: MetadataItems({k: v for k, v in aggregated(row, "metadata_rows")}),
            rows=(METADATA_ROWS,),
        ),
        NovaSlice(
            Slice.KEYS,
            lambda _: [i.c.key_name, i.c.key_data, ie.c.keypairs],
            lambda row, _: decode.keys(row["key_name"], row["key_data"], row["keypairs"]),
            extra=True,
        ),
        NovaSlice(
            Slice.NETWORK,
            lambda _: [iic.c.network_info],
            lambda row, _: decode.network(row["network_info"]),
            info_cache=True,
        ),
        NovaSlice(
            Slice.USER_DATA,
            lambda _: [i.c.user_data],
            lambda row, _: decode.user_data(row["user_data"]),
        ),
        NovaSlice(
            Slice.PASSWORD,
            lambda _: [],
            lambda row, _: Password(
                decode.password((k, v) for k, v in aggregated(row, "password_rows"))
            ),
            rows=(PASSWORD_ROWS,),
        ),
        NovaSlice(
            Slice.VENDOR_DATA,
            _vendor_data_columns,
            lambda row, _: VendorData({}, row["boot_roles"] or ""),
        ),
    )
}


@lru_cache(maxsize=256)
def statement(names: frozenset[Slice], dialect: str) -> Select[Any] | CompoundSelect[Any]:
    """The one statement that brings these slices of the live instance row whose uuid is
    the `uuid` parameter (`instance_row` puts its rows together). Built once per set of
    slices: building it took longer than the database took to answer it, and one object
    keeps SQLAlchemy's compiled cache hot."""
    chosen = [SLICES[name] for name in sorted(names, key=lambda s: s.value)]
    columns: list[ColumnElement[Any]] = [i.c.id.label("instance_row_id")]
    for definition in chosen:
        columns.extend(definition.columns(dialect))
    source: Any = i
    if any(d.extra for d in chosen):
        source = source.outerjoin(ie, (ie.c.instance_uuid == i.c.uuid) & (ie.c.deleted == 0))
    if any(d.info_cache for d in chosen):
        source = source.outerjoin(iic, (iic.c.instance_uuid == i.c.uuid) & (iic.c.deleted == 0))
    live = (i.c.uuid == UUID) & (i.c.deleted == 0)
    several = [rows for d in chosen for rows in d.rows]
    if not several:
        return select(*columns).select_from(source).where(live).order_by(i.c.id).limit(1)
    # Every part has every column (NULL where not its own); the instance row has part 0.
    names_of = [column.name for column in columns]
    own = [[f"{rows.name}_{n}" for n in range(len(rows.columns))] for rows in several]

    def nulls(labels: Sequence[str]) -> list[ColumnElement[Any]]:
        return [null().label(label) for label in labels]

    parts = [
        select(
            literal_column("0").label(PART),
            *columns,
            *(column for labels in own for column in nulls(labels)),
        )
        .select_from(source)
        .where(live)
    ]
    for number, rows in enumerate(several, 1):
        values: list[ColumnElement[Any]] = [literal_column(str(number)).label(PART)]
        values.extend(nulls(names_of))
        for other, labels in enumerate(own, 1):
            if other == number:
                values.extend(c.label(label) for c, label in zip(rows.columns, labels, strict=True))
            else:
                values.extend(nulls(labels))
        parts.append(select(*values).where(rows.where))
    return union_all(*parts)


def instance_row(rows: Sequence[Row], names: frozenset[Slice]) -> Row | None:
    """The statement's rows as decoding reads them: the instance row (the first by id, as
    Nova's `.first()`; uuids are unique) with each several-rows table's rows under its
    name; None when the uuid has no live instance row."""
    instances = [row for row in rows if row.get(PART, 0) == 0]
    if not instances:
        return None
    found = dict(min(instances, key=lambda row: row["instance_row_id"]))
    chosen = [SLICES[name] for name in sorted(names, key=lambda s: s.value)]
    for number, several in enumerate((r for d in chosen for r in d.rows), 1):
        labels = [f"{several.name}_{n}" for n in range(len(several.columns))]
        found[several.name] = [
            [row[label] for label in labels] for row in rows if row[PART] == number
        ]
    return found


def decode_row(row: Row, names: frozenset[Slice], context: NovaContext) -> dict[Slice, Any]:
    return {name: SLICES[name].decode(row, context) for name in names}
