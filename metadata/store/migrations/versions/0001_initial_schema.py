"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 01:48:42.885584
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("ec2_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("availability_zone", sa.String(length=255), nullable=False),
        sa.Column("launch_index", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.String(length=255), nullable=False),
        sa.Column("ami_id", sa.String(length=255), nullable=False),
        sa.Column("kernel_id", sa.String(length=255), nullable=True),
        sa.Column("ramdisk_id", sa.String(length=255), nullable=True),
        sa.Column("reservation_id", sa.String(length=255), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uuid", name=op.f("pk_instances")),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index("ix_instances_project_id", ["project_id"], unique=False)

    op.create_table(
        "fixed_ips",
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("port_position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("address", sa.String(length=45), nullable=False),
        sa.Column("cidr", sa.String(length=49), nullable=False),
        sa.Column("gateway", sa.String(length=45), nullable=True),
        sa.Column("dns", sa.JSON(), nullable=False),
        sa.Column("routes", sa.JSON(), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_fixed_ips_instance_uuid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "instance_uuid", "port_position", "position", name=op.f("pk_fixed_ips")
        ),
    )
    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fixed_ips_address"), ["address"], unique=False)

    op.create_table(
        "keys",
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_keys_instance_uuid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_uuid", "position", name=op.f("pk_keys")),
    )
    op.create_table(
        "metadata_items",
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_metadata_items_instance_uuid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_uuid", "key", name=op.f("pk_metadata_items")),
    )
    op.create_table(
        "passwords",
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column(
            "value",
            sa.Text()
            .with_variant(mysql.MEDIUMTEXT(), "mariadb")
            .with_variant(mysql.MEDIUMTEXT(), "mysql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_passwords_instance_uuid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_uuid", name=op.f("pk_passwords")),
    )
    op.create_table(
        "ports",
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("port_id", sa.String(length=255), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=False),
        sa.Column("network_id", sa.String(length=255), nullable=False),
        sa.Column("mtu", sa.Integer(), nullable=True),
        sa.Column("vif_type", sa.String(length=32), nullable=False),
        sa.Column("floating_ips", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_ports_instance_uuid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_uuid", "position", name=op.f("pk_ports")),
    )
    op.create_table(
        "user_data",
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column(
            "data",
            sa.LargeBinary()
            .with_variant(mysql.MEDIUMBLOB(), "mariadb")
            .with_variant(mysql.MEDIUMBLOB(), "mysql"),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_user_data_instance_uuid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_uuid", name=op.f("pk_user_data")),
    )
    op.create_table(
        "vendor_data",
        sa.Column("instance_uuid", sa.String(length=36), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_uuid"],
            ["instances.uuid"],
            name=op.f("fk_vendor_data_instance_uuid"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_uuid", name=op.f("pk_vendor_data")),
    )


def downgrade() -> None:
    op.drop_table("vendor_data")
    op.drop_table("user_data")
    op.drop_table("ports")
    op.drop_table("passwords")
    op.drop_table("metadata_items")
    op.drop_table("keys")
    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fixed_ips_address"))

    op.drop_table("fixed_ips")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index("ix_instances_project_id")

    op.drop_table("instances")
