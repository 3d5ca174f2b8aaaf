"""metadata item keys compare byte for byte on MySQL/MariaDB

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _collation() -> str | None:
    """The binary NO PAD collation of this server; None where VARCHARs already compare
    byte for byte (SQLite, PostgreSQL)."""
    dialect = op.get_bind().dialect
    if dialect.name not in ("mysql", "mariadb"):
        return None
    # Frozen here rather than imported from schema.py: a migration must not change later.
    return "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


def upgrade() -> None:
    collation = _collation()
    if collation is None:
        return
    op.alter_column(
        "metadata_items",
        "key",
        existing_type=mysql.VARCHAR(255),
        type_=mysql.VARCHAR(255, charset="utf8mb4", collation=collation),
        existing_nullable=False,
    )


def downgrade() -> None:
    if _collation() is None:
        return
    op.alter_column(
        "metadata_items",
        "key",
        type_=mysql.VARCHAR(255, collation="utf8mb4_general_ci"),
        existing_nullable=False,
    )
