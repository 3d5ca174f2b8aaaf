"""The user-data overlay in Nova mode: kept in the service's own database, served on both
trees instead of Nova's user data, with ETag, If-Match, history and wait_for_change as in
store mode; DELETE restores Nova's; a rebuild announced by Nova drops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from metadata.admin.routes import build_admin_app
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.guest_http import GuestTestServer
from tests.nova.seeded import SeededNova, seed_nova
from tests.nova.test_nova_invalidation import ADMIN_TOKEN, nova_settings
from tests.nova.test_nova_mode import signed

Clients = tuple[SeededNova, Services, TestClient[Any, Any], TestClient[Any, Any]]
NOVAS = b"#cloud-config\nhostname: vm-0\n"


@pytest.fixture
async def clients(tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT) -> AsyncIterator[Clients]:
    nova = await seed_nova(tmp_path)
    async with Services.open(nova_settings(nova, tmp_path)) as services:
        guest = await aiohttp_client(GuestTestServer(services))
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        admin = await aiohttp_client(build_admin_app(services), headers=bearer)
        yield nova, services, guest, admin


async def served(guest: TestClient[Any, Any], uuid: str) -> tuple[bytes, bytes]:
    headers = signed(uuid, "project-0")
    openstack = await guest.get("/openstack/latest/user_data", headers=headers)
    ec2 = await guest.get("/latest/user-data", headers=headers)
    assert openstack.status == ec2.status == 200
    return await openstack.read(), await ec2.read()


async def test_the_overlay_is_served_on_both_trees_and_delete_restores_novas(
    clients: Clients,
) -> None:
    nova, _, guest, admin = clients
    uuid = nova.uuids[0]
    assert await served(guest, uuid) == (NOVAS, NOVAS)
    put = await admin.put(f"/v1/instances/{uuid}/user-data", data=b"#!/bin/sh\necho overlay\n")
    assert put.status == 204 and put.headers["ETag"]
    assert await served(guest, uuid) == (b"#!/bin/sh\necho overlay\n",) * 2
    got = await admin.get(f"/v1/instances/{uuid}/user-data")
    assert got.status == 200 and got.headers["ETag"] == put.headers["ETag"]
    assert (await admin.delete(f"/v1/instances/{uuid}/user-data")).status == 204
    assert await served(guest, uuid) == (NOVAS, NOVAS)


async def test_if_match_and_history_work_as_in_store_mode(clients: Clients) -> None:
    nova, _, _, admin = clients
    uuid = nova.uuids[0]
    first = await admin.put(f"/v1/instances/{uuid}/user-data", data=b"one")
    stale = first.headers["ETag"]
    assert (
        await admin.put(f"/v1/instances/{uuid}/user-data", data=b"two", headers={"If-Match": stale})
    ).status == 204
    refused = await admin.put(
        f"/v1/instances/{uuid}/user-data", data=b"three", headers={"If-Match": stale}
    )
    assert refused.status == 412
    history = await (await admin.get(f"/v1/instances/{uuid}/user-data/history")).json()
    assert len(history["history"]) == 2


async def test_an_overlay_for_an_instance_nova_does_not_have_is_404(clients: Clients) -> None:
    _, _, _, admin = clients
    unknown = "00000000-0000-4000-8000-00000000dead"
    assert (await admin.put(f"/v1/instances/{unknown}/user-data", data=b"x")).status == 404


async def test_a_rebuild_drops_the_overlay_and_an_update_keeps_it(clients: Clients) -> None:
    nova, services, guest, admin = clients
    assert services.nova is not None
    uuid = nova.uuids[0]
    await admin.put(f"/v1/instances/{uuid}/user-data", data=b"overlay")
    # What the notification consumer calls for instance.update and instance.rebuild.end.
    await services.nova.on_change(uuid, "changed")
    assert await served(guest, uuid) == (b"overlay", b"overlay")
    await services.nova.on_change(uuid, "rebuilt")
    assert await served(guest, uuid) == (NOVAS, NOVAS)
    assert (await admin.get(f"/v1/instances/{uuid}/user-data")).status == 404


async def test_a_waiting_guest_is_woken_by_an_overlay_write(clients: Clients) -> None:
    nova, _, guest, admin = clients
    uuid = nova.uuids[0]
    path = "/openstack/latest/user_data?wait_for_change=true&timeout_sec=300"
    waiting = asyncio.ensure_future(guest.get(path, headers=signed(uuid, "project-0")))
    await asyncio.sleep(0.2)  # let the guest start waiting (the answer does not depend on it)
    await admin.put(f"/v1/instances/{uuid}/user-data", data=b"new")
    response = await asyncio.wait_for(waiting, 30)
    assert response.status == 200 and await response.read() == b"new"


async def test_a_guest_password_post_is_kept_here_and_served(clients: Clients) -> None:
    nova, _, guest, _ = clients
    uuid = nova.uuids[0]
    headers = signed(uuid, "project-0")
    password = "/openstack/latest/password"
    assert (await guest.get(password, headers=headers)).status == 200
    assert await (await guest.get(password, headers=headers)).read() == b""
    assert (await guest.post(password, data=b"encrypted-secret", headers=headers)).status == 200
    assert await (await guest.get(password, headers=headers)).read() == b"encrypted-secret"
    assert (await guest.post(password, data=b"again", headers=headers)).status == 409
