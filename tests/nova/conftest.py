"""Fixtures for tests against real Nova: its venv, clouds on MariaDB and SQLite, and
Nova's own metadata app. Each skips with the reason when what it needs is absent (the
MariaDB server, PyPI for a first build), which METADATA_TEST_REQUIRE_SERVICES=1 (CI) turns
into a failure.

The session clouds are shared: tests must not change their instances. A test that
changes Nova's data makes a cloud of its own with `new_nova_cloud`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtests.nova_peer import (
    NovaCloud,
    NovaMetadataApp,
    create_nova_cloud,
    ensure_nova_venv,
    start_nova_metadata,
)
from loadtests.nova_peer.cloud import Backend
from loadtests.nova_peer.databases import MYSQL_HOST, MYSQL_PORT, mysql_reachable
from loadtests.nova_peer.rabbitmq import (
    RABBIT_HOST,
    RABBIT_PORT,
    rabbitmq_reachable,
    rabbitmq_vhost,
)
from loadtests.nova_peer.venv import NovaVenvError, cache_folder, is_complete, pypi_reachable
from tests.backends import unavailable


@pytest.fixture(scope="session")
def nova_venv() -> Path:
    if not is_complete(cache_folder()) and not pypi_reachable():
        unavailable(f"no Nova venv in {cache_folder()} and PyPI is unreachable to build one")
    try:
        return ensure_nova_venv()
    except NovaVenvError as exc:
        unavailable(str(exc))
        raise


def _require_mysql() -> None:
    if not mysql_reachable():
        unavailable(f"MariaDB/MySQL is not answering on {MYSQL_HOST}:{MYSQL_PORT}")


@pytest.fixture(scope="session")
def nova_cloud_mysql(nova_venv: Path) -> Iterator[NovaCloud]:
    _require_mysql()
    with create_nova_cloud("mysql") as cloud:
        yield cloud


@pytest.fixture(scope="session")
def nova_cloud_sqlite(nova_venv: Path) -> Iterator[NovaCloud]:
    with create_nova_cloud("sqlite") as cloud:
        yield cloud


@pytest.fixture(scope="session")
def nova_metadata_app(nova_cloud_mysql: NovaCloud) -> Iterator[NovaMetadataApp]:
    """Nova's own metadata API on the session's MariaDB cloud (cache on, 15 s)."""
    with start_nova_metadata(nova_cloud_mysql) as app:
        yield app


@pytest.fixture
def new_nova_cloud(nova_venv: Path) -> Iterator[Callable[..., NovaCloud]]:
    """A factory of private clouds (dropped after the test), for tests that change data."""
    made: list[NovaCloud] = []

    def make(backend: Backend = "mysql", **options: object) -> NovaCloud:
        if backend == "mysql":
            _require_mysql()
        cloud = create_nova_cloud(backend, **options)  # type: ignore[arg-type]
        made.append(cloud)
        return cloud

    yield make
    for cloud in made:
        cloud.close()


@pytest.fixture
def nova_notification_url() -> Iterator[str]:
    """A `rabbit://` URL on a RabbitMQ vhost of the test's own, for
    `new_nova_cloud(notification_url=...)`; the vhost is deleted afterwards."""
    if not rabbitmq_reachable():
        unavailable(f"RabbitMQ is not answering on {RABBIT_HOST}:{RABBIT_PORT}")
    with rabbitmq_vhost() as url:
        yield url
