"""A MariaDB user that may only read a cloud's databases (dropped with the cloud)."""

from __future__ import annotations

from loadtests.nova_peer.cloud import NovaCloud
from loadtests.nova_peer.databases import ROLES, MysqlDatabases, mysql_url


def grant_read_only_user(cloud: NovaCloud) -> tuple[str, str, dict[str, str]]:
    """(user, password, {"api"|"cell0"|"cell1"|"cell2": URL as nova.conf spells it})."""
    if not isinstance(cloud.databases, MysqlDatabases):
        raise ValueError("a read-only user needs the mysql backend")
    user, password = cloud.databases.grant_select_only()
    urls = {role: mysql_url(user, password, cloud.databases.names[role]) for role in ROLES}
    return user, password, urls
