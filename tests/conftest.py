"""Shared fixtures: settings on a temporary SQLite file (or the machine's PostgreSQL and
MariaDB), the shared services, and in-process guest and admin clients over real sockets."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from metadata.admin.routes import build_admin_app
from metadata.config import Settings
from metadata.services import Services
from metadata.store.schema import metadata_obj
from tests import backends
from tests.guest_http import GuestTestServer

ADMIN_TOKEN = "test-admin-token-0123456789"
PROXY_SECRET = "test-proxy-secret"
AIOHTTP_CLIENT = Callable[..., Any]


@pytest.fixture(scope="session")
def postgresql_database() -> Iterator[str]:
    url = backends.create_postgres_database()
    yield url
    backends.drop_postgres_database()


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[str]:
    url = backends.create_mysql_database()
    yield url
    backends.drop_mysql_database()


async def _empty_database(url: str) -> None:
    """Drop what an earlier test left, so that every test starts from a fresh migration."""
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata_obj.drop_all)
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
async def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each backend in turn: tests that take this fixture run on all three."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/metadata.db"
    url: str = request.getfixturevalue(f"{request.param}_database")
    await _empty_database(url)
    return url


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path}/metadata.db"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change the settings of every fixture built on them."""
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path: Path, settings_overrides: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_tokens": {"admin": ADMIN_TOKEN},
        "admin_token_file": str(tmp_path / "admin-token"),
        # The test client connects from loopback: trusting it lets X-Forwarded-For name
        # the guest, so one client can speak for many instances.
        "trusted_proxies": (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1")),
        "proxy_shared_secret": PROXY_SECRET,
        "rate_limit": None,
    }
    values.update(settings_overrides)
    return Settings(**values)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with Services.open(settings) as opened:
        yield opened


@pytest.fixture
async def guest(aiohttp_client: AIOHTTP_CLIENT, services: Services) -> TestClient[Any, Any]:
    # As `metadata serve` runs it: warm reads take the express lane.
    client: TestClient[Any, Any] = await aiohttp_client(GuestTestServer(services))
    return client


@pytest.fixture
async def admin(aiohttp_client: AIOHTTP_CLIENT, services: Services) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(
        build_admin_app(services), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    return client


@pytest.fixture
def put_instance(admin: TestClient[Any, Any]) -> Callable[..., Any]:
    """Create an instance through the admin API; returns the stored document."""

    async def put(doc: dict[str, Any]) -> dict[str, Any]:
        response = await admin.put(f"/v1/instances/{doc['uuid']}", json=doc)
        assert response.status in (200, 201), await response.text()
        stored: dict[str, Any] = await response.json()
        return stored

    return put
