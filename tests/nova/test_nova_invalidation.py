"""Nova mode follows Nova: an announced change (a versioned notification on the machine's
RabbitMQ) is served at the next read; what Nova never announces is re-read after the
staleness bound; the admin API reads Nova's instances and refuses to write them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from metadata.admin.routes import build_admin_app
from metadata.config import Settings
from metadata.nova import schema as n
from metadata.services import Services
from tests import notifications_broker as broker
from tests.conftest import AIOHTTP_CLIENT
from tests.guest_http import GuestTestServer
from tests.nova.seeded import SeededNova, seed_nova
from tests.nova.test_nova_mode import signed
from tests.tcp_proxy import TcpProxy

ADMIN_TOKEN = "test-admin-token-0123456789"
WAIT = 30.0  # a bound for a test gone wrong, never a timing assertion
HOSTNAME = "/latest/meta-data/hostname"


@pytest.fixture(scope="module")
def vhost() -> Iterator[str]:
    broker.require_rabbitmq()
    name = broker.new_vhost_name()
    broker.create_vhost(name)
    yield name
    broker.delete_vhost(name)


def nova_settings(nova: SeededNova, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/metadata.db",
        admin_tokens={"admin": ADMIN_TOKEN},
        admin_token_file=str(tmp_path / "admin-token"),
        rate_limit=None,
        nova_config=(nova.conf_path,),
        **extra,
    )


async def rename(nova: SeededNova, uuid: str, hostname: str) -> None:
    """What Nova's Instance.save() writes (the test's own engine, not the service's)."""
    engine = create_async_engine(nova.cell_url)
    async with engine.begin() as conn:
        await conn.execute(
            update(n.instances).where(n.instances.c.uuid == uuid).values(hostname=hostname)
        )
    await engine.dispose()


async def served(guest: TestClient[Any, Any], uuid: str) -> str:
    response = await guest.get(HOSTNAME, headers=signed(uuid, "project-0"))
    assert response.status == 200
    return await response.text()


async def until_served(guest: TestClient[Any, Any], uuid: str, expected: str) -> None:
    # Polled: the change arrives from outside this process (the broker, the clock).
    async with asyncio.timeout(WAIT):
        while True:
            if await served(guest, uuid) == expected:
                return
            await asyncio.sleep(0.05)


async def until_resynced(services: Services, resyncs: int) -> None:
    # Polled: the loss and the reconnect happen on the broker's side.
    assert services.nova is not None
    nova = services.nova
    async with asyncio.timeout(WAIT):
        for _ in itertools.count():
            if nova.resyncs > resyncs and nova.counters.connected:
                return
            await asyncio.sleep(0.05)


@pytest.fixture
async def announced(
    vhost: str, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> AsyncIterator[tuple[SeededNova, Services, TestClient[Any, Any]]]:
    nova = await seed_nova(tmp_path, transport_url=broker.transport_url(vhost))
    # A bound far beyond the test: only the notification can explain a change seen.
    async with Services.open(nova_settings(nova, tmp_path, nova_max_staleness=3600)) as services:
        guest = await aiohttp_client(GuestTestServer(services))
        yield nova, services, guest


async def test_an_announced_change_is_served_at_the_next_read(
    vhost: str, announced: tuple[SeededNova, Services, TestClient[Any, Any]]
) -> None:
    nova, services, guest = announced
    assert services.nova is not None and services.nova.consumer is not None
    uuid = nova.uuids[0]
    assert await served(guest, uuid) == "vm-00000.novalocal"
    await rename(nova, uuid, "renamed")
    # Unannounced, the cached answer stands.
    assert await served(guest, uuid) == "vm-00000.novalocal"
    async with broker.NovaPublisher(vhost) as publisher:
        await publisher.notify("instance.update", uuid)
    await until_served(guest, uuid, "renamed.novalocal")
    assert services.nova.changes == 1


async def test_a_broker_host_lost_mid_run_fails_over_revalidates_and_is_named(
    vhost: str, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    """nova.conf's transport_url lists two hosts; the first (a proxy to the real broker)
    goes away: the consumer moves to the second, everything cached is re-read once (a
    change made meanwhile without a notification is served), and /readyz and /metrics
    name the host in use and count the failover."""
    async with TcpProxy(broker.RABBIT_HOST, broker.RABBIT_PORT) as proxy:
        ports = (proxy.port, broker.RABBIT_PORT)
        url = "rabbit://" + ",".join(f"guest:guest@127.0.0.1:{p}" for p in ports) + f"/{vhost}"
        names = [f"amqp://guest@127.0.0.1:{port}/{vhost}" for port in ports]
        nova = await seed_nova(tmp_path, transport_url=url)
        settings = nova_settings(nova, tmp_path, nova_max_staleness=3600)
        async with Services.open(settings) as services:
            assert services.nova is not None
            guest = await aiohttp_client(GuestTestServer(services))
            bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            admin = await aiohttp_client(build_admin_app(services), headers=bearer)
            state = (await (await admin.get("/readyz")).json())["nova"]["notifications"]
            assert state == {
                "broker": names[0],
                "connected": True,
                "brokers": names,
                "failovers": 0,
            }
            uuid = nova.uuids[0]
            assert await served(guest, uuid) == "vm-00000.novalocal"
            await rename(nova, uuid, "renamed-while-away")  # never announced
            resyncs = services.nova.resyncs
            await proxy.kill()
            await until_resynced(services, resyncs)
            assert await served(guest, uuid) == "renamed-while-away.novalocal"
            state = (await (await admin.get("/readyz")).json())["nova"]["notifications"]
            assert state == {
                "broker": names[1],
                "connected": True,
                "brokers": names,
                "failovers": 1,
            }
            metrics = await (await admin.get("/metrics")).text()
    assert f'metadata_nova_notifications_broker{{broker="{names[1]}"}} 1.0' in metrics
    assert f'metadata_nova_notifications_broker{{broker="{names[0]}"}} 0.0' in metrics
    assert "metadata_nova_notifications_failovers_total 1.0" in metrics
    assert "metadata_nova_notifications_connected 1.0" in metrics


async def test_what_nova_never_announces_is_reread_after_the_staleness_bound(
    tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    nova = await seed_nova(tmp_path)
    settings = nova_settings(nova, tmp_path, nova_max_staleness=0.5)
    async with Services.open(settings) as services:
        guest = await aiohttp_client(GuestTestServer(services))
        uuid = nova.uuids[0]
        assert await served(guest, uuid) == "vm-00000.novalocal"
        await rename(nova, uuid, "quietly-renamed")
        await until_served(guest, uuid, "quietly-renamed.novalocal")


async def test_admin_reads_novas_instances_and_refuses_to_write_them(
    tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    nova = await seed_nova(tmp_path)
    async with Services.open(nova_settings(nova, tmp_path)) as services:
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        admin = await aiohttp_client(build_admin_app(services), headers=bearer)
        uuid = nova.uuids[0]
        response = await admin.get(f"/v1/instances/{uuid}")
        assert response.status == 200
        doc = await response.json()
        assert (doc["hostname"], doc["ec2_id"], doc["metadata"]) == (
            "vm-00000.novalocal",
            "i-00000001",
            {"role": "web", "index": "0"},
        )
        unknown = "00000000-0000-4000-8000-00000000dead"
        assert (await admin.get(f"/v1/instances/{unknown}")).status == 404
        for target in (uuid, unknown):
            put = await admin.put(f"/v1/instances/{target}", json={"uuid": target})
            assert put.status == 409 and "instances come from Nova" in await put.text()
            assert (await admin.delete(f"/v1/instances/{target}")).status == 409
        ready = await (await admin.get("/readyz")).json()
        assert len(ready["nova"]["databases"]) == 3  # API, local cell, cell1
        assert ready["nova"]["notifications"]["connected"] is False
