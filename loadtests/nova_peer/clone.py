"""Many instances in a Nova cloud, quickly: clone a seeded instance's rows by SQL.

Making an instance with Nova's objects costs ~0.1 s of Nova's Python; a benchmark needs
thousands of fresh ones. So one instance made by Nova (`nova_seed.py`) is the model, and
its rows are copied with new uuids, one `INSERT … SELECT` per table for every clone at once,
inside the cloud's own databases (as MariaDB's root: Nova's user counters stay untouched):

- the cell database: `instances`, `instance_extra`, `instance_info_caches`,
  `instance_metadata`, `instance_system_metadata`, `block_device_mapping` (a new `uuid` per
  row) and `instance_id_mappings` (a new auto-increment id: the clone's own EC2 id);
- the API database: `instance_mappings` (same cell, project and user).

Auto-increment ids are left to the server. `virtual_interfaces` is not copied (its MAC
addresses are unique): a clone has no NIC device tags, which the model (`web-1`) has none of.
Everything Nova's metadata app reads for a clone is then what it reads for the model, under
another uuid.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from loadtests.nova_peer.cloud import NovaCloud
from loadtests.nova_peer.databases import MysqlDatabases, mysql_admin

CELL_TABLES = {  # table -> the column holding the instance's uuid
    "instances": "uuid",
    "instance_extra": "instance_uuid",
    "instance_info_caches": "instance_uuid",
    "instance_metadata": "instance_uuid",
    "instance_system_metadata": "instance_uuid",
    "block_device_mapping": "instance_uuid",
    "instance_id_mappings": "uuid",
}
API_TABLES = {"instance_mappings": "instance_uuid"}
FRESH_UUID_COLUMNS = {"block_device_mapping": "uuid"}  # unique per row, not the instance's
MAP_TABLE = "bench_clone_map"


def clone_uuids(model: str, count: int, namespace: str = "nova-bench") -> list[str]:
    """Deterministic uuids for the clones of `model` (uuid5: a rerun names the same ones)."""
    base = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"{namespace}/{model}")
    return [str(uuidlib.uuid5(base, str(n))) for n in range(count)]


def _columns(cursor: Any, database: str, table: str) -> list[tuple[str, bool]]:
    cursor.execute(
        "SELECT COLUMN_NAME, EXTRA LIKE '%%auto_increment%%' FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (database, table),
    )
    return [(name, bool(auto)) for name, auto in cursor.fetchall()]


def _copy_table(cursor: Any, database: str, table: str, key: str, map_db: str) -> int:
    """One INSERT … SELECT: every row of the model, once per clone, the key replaced."""
    targets, sources = [], []
    for name, auto_increment in _columns(cursor, database, table):
        if auto_increment:
            continue
        targets.append(f"`{name}`")
        if name == key:
            sources.append("m.dst")
        elif FRESH_UUID_COLUMNS.get(table) == name:
            sources.append("UUID()")
        else:
            sources.append(f"t.`{name}`")
    cursor.execute(
        f"INSERT INTO `{database}`.`{table}` ({', '.join(targets)}) "
        f"SELECT {', '.join(sources)} FROM `{database}`.`{table}` t "
        f"JOIN `{map_db}`.`{MAP_TABLE}` m ON t.`{key}` = m.src"
    )
    return int(cursor.rowcount)


def clone_instance(cloud: NovaCloud, model: str, uuids: Sequence[str]) -> dict[str, int]:
    """Copy instance `model` (a uuid seeded in cell1) as `uuids`; rows made per table."""
    if not isinstance(cloud.databases, MysqlDatabases):
        raise ValueError("cloning by SQL needs a MariaDB cloud")
    names = cloud.databases.names
    cell, api = names["cell1"], names["api"]
    made: dict[str, int] = {}
    conn = mysql_admin()
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS `{cell}`.`{MAP_TABLE}`")
            cursor.execute(
                f"CREATE TABLE `{cell}`.`{MAP_TABLE}` "
                "(src CHAR(36) NOT NULL, dst CHAR(36) NOT NULL PRIMARY KEY)"
            )
            cursor.executemany(
                f"INSERT INTO `{cell}`.`{MAP_TABLE}` (src, dst) VALUES (%s, %s)",
                [(model, u) for u in uuids],
            )
            cursor.execute("START TRANSACTION")
            for table, key in CELL_TABLES.items():
                made[table] = _copy_table(cursor, cell, table, key, cell)
            for table, key in API_TABLES.items():
                made[table] = _copy_table(cursor, api, table, key, cell)
            cursor.execute("COMMIT")
            cursor.execute(f"DROP TABLE `{cell}`.`{MAP_TABLE}`")
    finally:
        conn.close()
    if made["instances"] != len(uuids) or made["instance_mappings"] != len(uuids):
        raise RuntimeError(f"cloning {model} made {made}, expected {len(uuids)} instances")
    return made
