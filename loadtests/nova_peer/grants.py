"""A MariaDB user that may only read a cloud's databases (dropped with the cloud)."""

from __future__ import annotations

import re
from pathlib import Path

from loadtests.nova_peer.cloud import NovaCloud
from loadtests.nova_peer.databases import ROLES, MysqlDatabases, mysql_admin, mysql_url


def grant_read_only_user(cloud: NovaCloud) -> tuple[str, str, dict[str, str]]:
    """(user, password, {"api"|"cell0"|"cell1"|"cell2": URL as nova.conf spells it})."""
    if not isinstance(cloud.databases, MysqlDatabases):
        raise ValueError("a read-only user needs the mysql backend")
    user, password = cloud.databases.grant_select_only()
    urls = {role: mysql_url(user, password, cloud.databases.names[role]) for role in ROLES}
    return user, password, urls


def template_cell_mappings(cloud: NovaCloud) -> None:
    """Make the cloud's cell mappings URL templates (`{scheme}://{username}:…`, as
    `nova-manage cell_v2 create_cell` accepts), so that each cell is reached with the
    credentials of the reader's own `[database] connection` (Nova's app keeps its own)."""
    names = cloud.databases.names
    conn = mysql_admin()
    try:
        with conn.cursor() as cursor:
            for cell in ("cell0", "cell1", "cell2"):
                template = "{scheme}://{username}:{password}@{hostname}:{port}/" + names[cell]
                cursor.execute(
                    f"UPDATE `{names['api']}`.cell_mappings SET database_connection = %s "
                    "WHERE database_connection LIKE %s",
                    (template + "?{query}", f"%/{names[cell]}?%"),
                )
    finally:
        conn.close()


def read_only_nova_conf(cloud: NovaCloud, urls: dict[str, str], folder: Path) -> Path:
    """A copy of the cloud's nova.conf whose database connections are `urls`'."""
    text = cloud.config_path.read_text()
    for section, url in (("api_database", urls["api"]), ("database", urls["cell1"])):
        pattern = rf"(?m)^(\[{section}\]\nconnection = ).*$"
        text = re.sub(pattern, lambda m: m.group(1) + url, text)  # noqa: B023 (used at once)
    if urls["api"] not in text or urls["cell1"] not in text:
        raise ValueError(f"no [api_database] or [database] connection in {cloud.config_path}")
    path = folder / "nova-read-only.conf"
    path.write_text(text)
    return path
