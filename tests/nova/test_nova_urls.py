"""Cell mapping URL templates expanded as Nova's CellMapping does; sync drivers mapped to
async ones."""

from __future__ import annotations

import pytest

from metadata.errors import InvalidSettings
from metadata.nova.urls import async_database_url, expand_template

BASE = "mysql+pymysql://nova:pw@db.example:3306/nova?charset=utf8"


def test_template_parts_come_from_the_base_url() -> None:
    template = "{scheme}://{username}:{password}@{hostname}:{port}/nova_cell1?{query}"
    assert expand_template(template, BASE) == (
        "mysql+pymysql://nova:pw@db.example:3306/nova_cell1?charset=utf8"
    )
    assert expand_template("sqlite:///{path}_cell1", "sqlite:///nova") == "sqlite:///nova_cell1"


def test_absent_parts_print_none_as_in_nova() -> None:
    assert expand_template("{scheme}://{hostname}:{port}/x", "mysql://db/nova") == (
        "mysql://db:None/x"
    )


def test_multi_host_bases_give_numbered_parts() -> None:
    base = "rabbit://u1:p1@h1:5672,u2:p2@[fd00::2]:5673/vhost"
    template = "rabbit://{username1}:{password1}@{hostname1}:{port1},{hostname2}:{port2}/{path}"
    # Nova's _parse_netloc keeps the colon in an IPv6 host's port: so do we.
    assert expand_template(template, base) == "rabbit://u1:p1@h1:5672,fd00::2::5673/vhost"


def test_a_plain_url_and_a_bad_template_are_used_as_they_are() -> None:
    assert expand_template("mysql+pymysql://a:b@c/d", BASE) == "mysql+pymysql://a:b@c/d"
    assert expand_template("mysql://{nosuchpart}/x", BASE) == "mysql://{nosuchpart}/x"
    assert expand_template("mysql://{hostname}/x", None) == "mysql://{hostname}/x"


@pytest.mark.parametrize(
    ("nova", "ours"),
    [
        ("mysql+pymysql://n:p@db/nova?charset=utf8", "mysql+asyncmy://n:p@db/nova?charset=utf8"),
        ("mysql://n:p@db/nova", "mysql+asyncmy://n:p@db/nova"),
        ("mysql+mysqldb://n:p@db/nova", "mysql+asyncmy://n:p@db/nova"),
        # A URL that names aiomysql keeps it.
        ("mysql+aiomysql://n:p@db/nova", "mysql+aiomysql://n:p@db/nova"),
        ("postgresql+psycopg2://n@db/nova", "postgresql+asyncpg://n@db/nova"),
        ("postgresql://n@db/nova", "postgresql+asyncpg://n@db/nova"),
        ("sqlite:////var/lib/nova/nova.sqlite", "sqlite+aiosqlite:////var/lib/nova/nova.sqlite"),
    ],
)
def test_sync_drivers_become_async(nova: str, ours: str) -> None:
    assert async_database_url(nova, "[database] connection") == ours


def test_unknown_driver_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(InvalidSettings, match=r"\[database\] connection: unsupported") as caught:
        async_database_url("oracle://n:topsecret@db/nova", "[database] connection")
    assert "topsecret" not in str(caught.value)
