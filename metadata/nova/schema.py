"""Nova's tables as this service reads them: hand-declared, only the columns it renders.

Declared rather than reflected: Nova adds columns release after release, and a read that
names its columns keeps working (and stays small). Types are those of Nova 34.0.0's
migrations (`nova/db/main/migrations`, `nova/db/api/migrations`); MEDIUMTEXT reads as Text.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text

cell = MetaData()
api = MetaData()

instances = Table(
    "instances",
    cell,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("deleted", Integer),
    Column("project_id", String(255)),
    Column("user_id", String(255)),
    Column("hostname", String(255)),
    Column("display_name", String(255)),
    Column("image_ref", String(255)),
    Column("kernel_id", String(255)),
    Column("ramdisk_id", String(255)),
    Column("key_name", String(255)),
    Column("key_data", Text),
    Column("reservation_id", String(255)),
    Column("availability_zone", String(255)),
    Column("root_device_name", String(255)),
    Column("default_ephemeral_device", String(255)),
    Column("default_swap_device", String(255)),
    Column("launch_index", Integer),
    Column("user_data", Text),
)
instance_metadata = Table(
    "instance_metadata",
    cell,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36)),
    Column("key", String(255)),
    Column("value", String(255)),
    Column("deleted", Integer),
)
instance_system_metadata = Table(
    "instance_system_metadata",
    cell,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36), nullable=False),
    Column("key", String(255), nullable=False),
    Column("value", String(255)),
    Column("deleted", Integer),
)
instance_extra = Table(
    "instance_extra",
    cell,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36), nullable=False),
    Column("flavor", Text),
    Column("keypairs", Text),
    Column("device_metadata", Text),
    Column("numa_topology", Text),
    Column("deleted", Integer),
)
instance_info_caches = Table(
    "instance_info_caches",
    cell,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36), nullable=False),
    Column("network_info", Text),
    Column("deleted", Integer),
)
block_device_mapping = Table(
    "block_device_mapping",
    cell,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36)),
    Column("source_type", String(255)),
    Column("destination_type", String(255)),
    Column("guest_format", String(255)),
    Column("device_name", String(255)),
    Column("boot_index", Integer),
    Column("volume_id", String(36)),
    Column("no_device", Boolean),
    Column("deleted", Integer),
)
instance_id_mappings = Table(
    "instance_id_mappings",
    cell,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
)
s3_images = Table(
    "s3_images",
    cell,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
)

instance_mappings = Table(
    "instance_mappings",
    api,
    Column("id", Integer, primary_key=True),
    Column("instance_uuid", String(36), nullable=False),
    Column("cell_id", Integer),
    Column("project_id", String(255)),
    Column("queued_for_delete", Boolean),
)
cell_mappings = Table(
    "cell_mappings",
    api,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("name", String(255)),
    Column("database_connection", Text),
    Column("transport_url", Text),
    Column("disabled", Boolean),
)
