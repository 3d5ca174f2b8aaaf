"""The service in Nova mode, end to end through the guest listener: instances read from a
Nova deployment's databases, identified by Neutron-style signed headers, statements counted
on Nova's engines, nothing but SELECT ever sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text

from metadata.config import Settings
from metadata.errors import InvalidSettings
from metadata.guest.identify import sign
from metadata.nova.engines import WriteRefused
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.guest_http import GuestTestServer
from tests.nova.seeded import SECRET, SeededNova, seed_nova


@pytest.fixture
async def nova(tmp_path: Path) -> SeededNova:
    return await seed_nova(tmp_path, count=5)


@pytest.fixture
async def nova_services(nova: SeededNova, tmp_path: Path) -> AsyncIterator[Services]:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/metadata.db",
        admin_tokens={"admin": "test-admin-token-0123456789"},
        admin_token_file=str(tmp_path / "admin-token"),
        rate_limit=None,
        nova_config=(nova.conf_path,),
    )
    async with Services.open(settings) as services:
        yield services


@pytest.fixture
async def guest(aiohttp_client: AIOHTTP_CLIENT, nova_services: Services) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(GuestTestServer(nova_services))
    return client


def signed(uuid: str, tenant: str) -> dict[str, str]:
    return {
        "X-Instance-ID": uuid,
        "X-Tenant-ID": tenant,
        "X-Instance-ID-Signature": sign(SECRET, uuid),
    }


def statements(services: Services) -> int:
    assert services.nova is not None
    return services.nova.statements


async def get(guest: TestClient[Any, Any], path: str, uuid: str, number: int) -> tuple[int, str]:
    response = await guest.get(path, headers=signed(uuid, f"project-{number}"))
    return response.status, await response.text()


# cloud-init's OpenStack boot and its first EC2 read
BOOT = (
    "/openstack",
    "/openstack/latest/meta_data.json",
    "/openstack/latest/user_data",
    "/openstack/latest/vendor_data.json",
    "/openstack/latest/vendor_data2.json",
    "/openstack/latest/network_data.json",
    "/latest/meta-data/instance-id",
)


async def boot_statements(
    guest: TestClient[Any, Any],
    services: Services,
    nova: SeededNova,
    number: int,
    paths: tuple[str, ...] = BOOT,
) -> int:
    """The statements one instance's boot sends to Nova's databases, every answer 200."""
    before = statements(services)
    for path in paths:
        status, body = await get(guest, path, nova.uuids[number], number)
        assert status == 200, (path, body)
    return statements(services) - before


async def test_meta_data_json_is_rendered_as_nova_renders_it(
    guest: TestClient[Any, Any], nova: SeededNova
) -> None:
    status, body = await get(guest, "/openstack/latest/meta_data.json", nova.uuids[0], 0)
    assert status == 200, body
    doc = json.loads(body)
    assert doc.pop("random_seed")
    assert doc == {
        "uuid": nova.uuids[0],
        "meta": {"role": "web", "index": "0"},
        "public_keys": {"key-0": "ssh-ed25519 AAAA0 peer@example"},
        "keys": [{"name": "key-0", "type": "ssh", "data": "ssh-ed25519 AAAA0 peer@example"}],
        "hostname": "vm-00000.novalocal",
        "name": "vm-00000",
        "launch_index": 0,
        "availability_zone": "nova",
        "project_id": "project-0",
        "devices": [],
        "dedicated_cpus": [],
    }


async def test_ec2_leaves_come_from_novas_rows(
    guest: TestClient[Any, Any], nova: SeededNova
) -> None:
    uuid = nova.uuids[2]
    expected = {
        "/latest/meta-data/instance-id": "i-00000003",
        "/latest/meta-data/ami-id": "ami-00000001",
        "/latest/meta-data/hostname": "vm-00002.novalocal",
        "/latest/meta-data/local-ipv4": "10.0.0.12",
        "/latest/meta-data/public-ipv4": "172.24.0.12",
        "/latest/meta-data/instance-type": "m1.peer",
        "/latest/meta-data/block-device-mapping/": "ami\nroot",
        "/latest/meta-data/block-device-mapping/root": "/dev/vda",
        "/latest/meta-data/public-keys/": "0=key-2",
        "/latest/meta-data/public-keys/0/openssh-key": "ssh-ed25519 AAAA2 peer@example",
        "/latest/meta-data/placement/availability-zone": "nova",
        "/latest/user-data": "#cloud-config\nhostname: vm-2\n",
    }
    for path, value in expected.items():
        assert await get(guest, path, uuid, 2) == (200, value), path


async def test_ec2_listing_is_novas_without_neutron_security_groups(
    guest: TestClient[Any, Any], nova: SeededNova
) -> None:
    status, body = await get(guest, "/latest/meta-data/", nova.uuids[0], 0)
    assert status == 200
    assert body.split("\n") == [
        "ami-id",
        "ami-launch-index",
        "ami-manifest-path",
        "block-device-mapping/",
        "hostname",
        "instance-action",
        "instance-id",
        "instance-type",
        "local-hostname",
        "local-ipv4",
        "placement/",
        "public-hostname",
        "public-ipv4",
        "public-keys/",
        "reservation-id",
    ]
    assert (await get(guest, "/latest/meta-data/mac", nova.uuids[0], 0))[0] == 404


async def test_network_data_json_follows_novas_rules(
    guest: TestClient[Any, Any], nova: SeededNova
) -> None:
    status, body = await get(guest, "/openstack/latest/network_data.json", nova.uuids[0], 0)
    assert status == 200
    assert json.loads(body) == {
        "links": [
            {
                "id": "tap3176dd06-00",
                "vif_id": "e8e3efdc-3841-4020-8a5c-000000000000",
                "type": "ovs",
                "mtu": None,
                "ethernet_mac_address": "fa:16:3e:00:00:00",
            }
        ],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4_dhcp",
                "link": "tap3176dd06-00",
                "network_id": "net-private-0001",
            }
        ],
        "services": [{"type": "dns", "address": "8.8.8.8"}],
    }


async def test_no_user_data_is_unlisted_and_404(
    guest: TestClient[Any, Any], nova: SeededNova
) -> None:
    status, body = await get(guest, "/openstack/latest", nova.uuids[1], 1)
    assert status == 200 and "user_data" not in body.split("\n")
    assert (await get(guest, "/openstack/latest/user_data", nova.uuids[1], 1))[0] == 404


async def test_identity_as_nova(guest: TestClient[Any, Any], nova: SeededNova) -> None:
    uuid = nova.uuids[0]
    path = "/latest/meta-data/instance-id"
    # No signed headers: Nova's databases cannot tell who asks by address.
    assert (await guest.get(path)).status == 400
    assert (await guest.get(path, headers={"X-Instance-ID": uuid})).status == 400
    bad = {**signed(uuid, "project-0"), "X-Instance-ID-Signature": "0" * 64}
    assert (await guest.get(path, headers=bad)).status == 403
    assert (await guest.get(path, headers=signed(uuid, "project-1"))).status == 404
    unknown = "00000000-0000-4000-8000-00000000dead"
    assert (await guest.get(path, headers=signed(unknown, "project-0"))).status == 404


async def test_a_cold_leaf_costs_two_statements_and_a_warm_one_none(
    guest: TestClient[Any, Any], nova: SeededNova, nova_services: Services
) -> None:
    uuid = nova.uuids[0]
    before = statements(nova_services)
    assert (await get(guest, "/latest/meta-data/instance-id", uuid, 0))[0] == 200
    # The instance mapping in the API database, then the one SELECT on its cell.
    assert statements(nova_services) - before == 2
    before = statements(nova_services)
    assert (await get(guest, "/latest/meta-data/instance-id", uuid, 0))[0] == 200
    assert statements(nova_services) - before == 0


async def test_warm_reads_take_the_express_lane_until_nova_announces_a_change(
    guest: TestClient[Any, Any], nova: SeededNova, nova_services: Services
) -> None:
    assert isinstance(guest.server, GuestTestServer)
    lane = guest.server.guest_server.lane
    uuid, path = nova.uuids[1], "/latest/meta-data/instance-id"
    first = await get(guest, path, uuid, 1)
    # the first read too: identity's read started in the lane, answered when it landed
    assert await get(guest, path, uuid, 1) == first
    assert lane.answered == 2
    # another tenant on a warm instance is refused by the full chain, as Nova refuses it
    assert (await guest.get(path, headers=signed(uuid, "project-0"))).status == 404
    assert lane.answered == 2
    # what a notification does: a new generation, so the next read goes back to the cell
    assert nova_services.nova is not None
    await nova_services.nova.generations.bump(uuid)
    before = statements(nova_services)
    assert await get(guest, path, uuid, 1) == first
    after_change = statements(nova_services)
    assert after_change - before >= 1
    assert await get(guest, path, uuid, 1) == first
    assert statements(nova_services) == after_change
    assert lane.answered == 4


@pytest.fixture
async def per_cell_guest(
    nova: SeededNova, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> AsyncIterator[tuple[TestClient[Any, Any], Services]]:
    """`[api] local_metadata_per_cell = True`: as Nova's handler then, the local cell only
    (no API database configured at all)."""
    conf = tmp_path / "per-cell.conf"
    conf.write_text(
        "[api]\nlocal_metadata_per_cell = True\n"
        f"[database]\nconnection = sqlite:///{tmp_path}/nova_cell1.db\n"
        f"[neutron]\nmetadata_proxy_shared_secret = {SECRET}\n",
        encoding="utf-8",
    )
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/per-cell-metadata.db",
        admin_tokens={"admin": "test-admin-token-0123456789"},
        admin_token_file=str(tmp_path / "per-cell-admin-token"),
        rate_limit=None,
        nova_config=(str(conf),),
    )
    async with Services.open(settings) as services:
        yield await aiohttp_client(GuestTestServer(services)), services


async def test_per_cell_mode_a_cold_leaf_is_one_statement_and_the_tenant_its_rows(
    per_cell_guest: tuple[TestClient[Any, Any], Services], nova: SeededNova
) -> None:
    guest, services = per_cell_guest
    assert services.nova is not None and services.nova.cells.api is None
    path = "/latest/meta-data/instance-id"
    before = statements(services)
    assert (await get(guest, path, nova.uuids[0], 0))[0] == 200
    assert statements(services) - before == 1  # no mapping look-up: the cell's SELECT only
    # The tenant is checked against the instance row: a wrong one is a 404, as in Nova.
    before = statements(services)
    wrong = await guest.get(path, headers=signed(nova.uuids[1], "project-0"))
    assert wrong.status == 404
    assert statements(services) - before == 1


async def test_a_cold_cloud_init_boot_costs_at_most_four_statements(
    guest: TestClient[Any, Any], nova: SeededNova, nova_services: Services
) -> None:
    # The boot planner learns from the first boots which slices a boot goes on to need.
    for number in (0, 2, 3):
        await boot_statements(guest, nova_services, nova, number)
    assert await boot_statements(guest, nova_services, nova, 4) <= 4


async def test_nova_engines_refuse_anything_but_select(nova_services: Services) -> None:
    assert nova_services.nova is not None
    for database in nova_services.nova.cells.databases:
        async with database.engine.connect() as conn:
            with pytest.raises(WriteRefused):
                await conn.execute(text("DELETE FROM instances"))
            with pytest.raises(WriteRefused):
                await conn.execute(text("/* sneaky */ UPDATE instances SET hostname = 'x'"))


async def test_a_bad_nova_config_stops_the_start_naming_the_option(tmp_path: Path) -> None:
    conf = tmp_path / "nova.conf"
    conf.write_text("[api]\nlocal_metadata_per_cell = sometimes\n", encoding="utf-8")
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/m.db",
        admin_tokens={"admin": "test-admin-token-0123456789"},
        nova_config=(str(conf),),
    )
    with pytest.raises(InvalidSettings, match=r"\[api\] local_metadata_per_cell"):
        async with Services.open(settings):
            pass
