"""The tables. Each slice of an instance lives where one statement can read it alone.

User data has a table of its own: it is large and mutable, and no other read should drag it
along. Child rows carry the instance uuid so that a slice is one indexed range read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata_obj = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
    }
)

UUID_LEN = 36
TEXT_LEN = 255
# MySQL's BLOB stops at 65535 bytes, one short of the 64 KiB user-data default.
Blob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


# MySQL's and MariaDB's default collations are case- and trailing-space-insensitive: "Role",
# "role" and "role " would collide in the primary key though they are three metadata items
# everywhere else. Binary NO PAD collations compare them byte for byte (migration 0002).
class MetadataKey(TypeDecorator[str]):
    """VARCHAR(255), with a binary NO PAD collation on MySQL and MariaDB (migration 0002)."""

    impl = String(TEXT_LEN)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(
                mysql.VARCHAR(
                    TEXT_LEN, charset="utf8mb4", collation=metadata_key_collation(dialect)
                )
            )
        return dialect.type_descriptor(String(TEXT_LEN))


def metadata_key_collation(dialect: Dialect) -> str:
    # MySQL/aiomysql URLs keep the name "mysql" on MariaDB: ask the detected server instead.
    return "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


def _instance_fk() -> Column[str]:
    return Column(
        "instance_uuid",
        String(UUID_LEN),
        ForeignKey("instances.uuid", ondelete="CASCADE"),
        primary_key=True,
    )


instances = Table(
    "instances",
    metadata_obj,
    Column("uuid", String(UUID_LEN), primary_key=True),
    # Bumped by every write that touches the instance; it never repeats for a uuid, even
    # across delete and re-create (see writes.next_generation): the cache keys on it.
    Column("generation", BigInteger, nullable=False),
    Column("ec2_id", String(32), nullable=False),
    Column("name", String(TEXT_LEN), nullable=False),
    Column("hostname", String(TEXT_LEN), nullable=False),
    Column("project_id", String(TEXT_LEN), nullable=False),
    Column("user_id", String(TEXT_LEN), nullable=False),
    Column("availability_zone", String(TEXT_LEN), nullable=False),
    Column("launch_index", Integer, nullable=False),
    Column("image_id", String(TEXT_LEN), nullable=False),
    Column("ami_id", String(TEXT_LEN), nullable=False),
    Column("kernel_id", String(TEXT_LEN)),
    Column("ramdisk_id", String(TEXT_LEN)),
    Column("reservation_id", String(TEXT_LEN), nullable=False),
    # flavor, security_groups, block_device_mapping, devices, dedicated_cpus: always read
    # together with the row and never queried by, so one JSON column.
    Column("attributes", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

metadata_items = Table(
    "metadata_items",
    metadata_obj,
    _instance_fk(),
    Column("key", MetadataKey(), primary_key=True),
    Column("value", String(TEXT_LEN), nullable=False),
)

keys = Table(
    "keys",
    metadata_obj,
    _instance_fk(),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("name", String(TEXT_LEN), nullable=False),
    Column("type", String(16), nullable=False),
    Column("data", Text, nullable=False),
)

ports = Table(
    "ports",
    metadata_obj,
    _instance_fk(),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("port_id", String(TEXT_LEN), nullable=False),
    Column("mac", String(17), nullable=False),
    Column("network_id", String(TEXT_LEN), nullable=False),
    Column("mtu", Integer),
    Column("vif_type", String(32), nullable=False),
    Column("floating_ips", JSON, nullable=False),
)

fixed_ips = Table(
    "fixed_ips",
    metadata_obj,
    _instance_fk(),
    Column("port_position", Integer, primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),
    # Identity looks guests up by source address: this index makes it one probe.
    Column("address", String(45), nullable=False, index=True),
    Column("cidr", String(49), nullable=False),
    Column("gateway", String(45)),
    Column("dns", JSON, nullable=False),
    Column("routes", JSON, nullable=False),
    Column("mode", String(20), nullable=False),
)

user_data = Table(
    "user_data",
    metadata_obj,
    _instance_fk(),
    Column("data", Blob, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# One row per change of an instance's user data (the admin API's audit and restore). The
# bytes are kept for the newest versions only (settings.user_data_history); older rows keep
# who, when, size and hash. Not a CHILD_TABLE: export and import carry current state only.
user_data_history = Table(
    "user_data_history",
    metadata_obj,
    # SQLite autoincrements only an INTEGER PRIMARY KEY.
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column(
        "instance_uuid",
        String(UUID_LEN),
        ForeignKey("instances.uuid", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(TEXT_LEN), nullable=False),
    Column("action", String(16), nullable=False),
    # None: the change removed the user data.
    Column("size", Integer),
    Column("sha256", String(64)),
    Column("data", Blob),
    Column("restored_from", BigInteger),
)

vendor_data = Table(
    "vendor_data",
    metadata_obj,
    _instance_fk(),
    Column("data", JSON, nullable=False),
)

passwords = Table(
    "passwords",
    metadata_obj,
    _instance_fk(),
    Column("value", LongText, nullable=False),
)

Index("ix_instances_project_id", instances.c.project_id)
Index(
    "ix_user_data_history_instance_uuid", user_data_history.c.instance_uuid, user_data_history.c.id
)

CHILD_TABLES = (metadata_items, keys, fixed_ips, ports, user_data, vendor_data, passwords)
