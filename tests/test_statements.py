"""SQL statements per guest path, counted with SQLAlchemy engine events: exact numbers, on
SQLite and on PostgreSQL.

Cold means a fresh process (nothing cached); the first request of an instance finds its
owner by address and reads its slices in the same statement. Warm means the same request
again. A boot costs the same whether its requests arrive in order or all at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from loadtests.cloud_init import OPENSTACK_BOOT as BOOT
from metadata.services import Services
from metadata.store import schema as t
from tests.conftest import PROXY_SECRET, _empty_database
from tests.documents import guest_headers, instance_uuid, sample_document

CHILD_TABLES = {table.name for table in t.CHILD_TABLES}

# path -> (statements cold including identity, child tables the read may touch besides the
# address probe's fixed_ips)
PATHS: dict[str, tuple[int, set[str]]] = {
    "/latest/meta-data/instance-id": (1, set()),
    "/2009-04-04/meta-data/hostname": (1, set()),
    "/latest/meta-data/public-keys/0/openssh-key": (1, {"keys"}),
    "/latest/meta-data/local-ipv4": (1, {"ports", "fixed_ips"}),
    "/latest/user-data": (1, {"user_data"}),
    "/openstack/latest/meta_data.json": (1, {"metadata_items", "keys"}),
    "/openstack/latest/user_data": (1, {"user_data"}),
    "/openstack/latest/network_data.json": (1, {"ports", "fixed_ips"}),
    "/openstack/latest/vendor_data.json": (1, {"vendor_data"}),
    "/openstack/latest/password": (1, {"passwords"}),
    "/openstack/latest/": (1, {"user_data"}),
    "/latest/meta-data/": (1, {"keys", "ports", "fixed_ips"}),
}


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/metadata.db"
    url: str = request.getfixturevalue("postgresql_database")
    await _empty_database(url)
    return url


def tables_in(statement: str) -> set[str]:
    words = set(statement.replace('"', " ").replace("`", " ").replace(",", " ").split())
    return {name for name in CHILD_TABLES if name in words}


async def measure(services: Services, guest: Any, path: str, n: int) -> tuple[int, list[str]]:
    counter = services.db.counter
    counter.keep_text, counter.statements = True, []
    before = counter.total
    response = await guest.get(path, headers=guest_headers(n))
    assert response.status == 200, (path, await response.text())
    return counter.total - before, list(counter.statements)


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_a_cold_path_reads_only_its_slices_in_one_statement(
    services: Services, guest: Any, put_instance: Any, path: str
) -> None:
    await put_instance(sample_document(5))
    expected, tables = PATHS[path]
    statements, texts = await measure(services, guest, path, 5)
    assert statements == expected, texts
    (statement,) = texts
    assert tables_in(statement) == tables | {"fixed_ips"}, statement


@pytest.mark.parametrize("path", sorted(PATHS))
async def test_a_warm_path_sends_no_statement(
    services: Services, guest: Any, put_instance: Any, path: str
) -> None:
    await put_instance(sample_document(6))
    await measure(services, guest, path, 6)
    statements, texts = await measure(services, guest, path, 6)
    assert statements == 0, texts


async def test_meta_data_json_never_reads_user_data_or_network(
    services: Services, guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(7))
    _, texts = await measure(services, guest, "/openstack/2018-08-27/meta_data.json", 7)
    (statement,) = texts
    # fixed_ips is the address probe's: the network slice would bring ports along
    assert not tables_in(statement) & {"user_data", "ports", "vendor_data"}


async def test_signed_identity_and_the_core_slice_share_one_statement(
    services: Services, guest: Any, put_instance: Any
) -> None:
    from metadata.guest.identify import sign

    doc = await put_instance(sample_document(8))
    headers = {
        "X-Instance-ID": doc["uuid"],
        "X-Tenant-ID": doc["project_id"],
        "X-Instance-ID-Signature": sign(PROXY_SECRET, doc["uuid"]),
    }
    before = services.db.counter.total
    response = await guest.get("/latest/meta-data/instance-id", headers=headers)
    assert await response.text() == doc["ec2_id"]
    assert services.db.counter.total - before == 1
    response = await guest.get("/latest/meta-data/instance-id", headers=headers)
    assert services.db.counter.total - before == 1


async def test_version_listings_cost_no_statement(services: Services, guest: Any) -> None:
    before = services.db.counter.total
    for path in ("/", "/openstack", "/openstack/"):
        assert (await guest.get(path)).status == 200
    assert services.db.counter.total == before


def signed_headers(n: int) -> dict[str, str]:
    from metadata.guest.identify import sign

    doc = sample_document(n)
    return {
        "X-Instance-ID": doc["uuid"],
        "X-Tenant-ID": doc["project_id"],
        "X-Instance-ID-Signature": sign(PROXY_SECRET, doc["uuid"]),
    }


IDENTITIES = {"address": guest_headers, "signed": signed_headers}


async def boot(
    services: Services, guest: Any, n: int, *, identity: str = "address", at_once: bool = False
) -> int:
    """The statements of instance n's cloud-init boot: its requests one after the other on
    one connection, or all sent together (each on its own connection)."""
    headers = IDENTITIES[identity](n)
    before = services.db.counter.total
    if at_once:
        responses = await asyncio.gather(*(guest.get(path, headers=headers) for path in BOOT))
    else:
        responses = [await guest.get(path, headers=headers) for path in BOOT]
    for path, response in zip(BOOT, responses, strict=True):
        assert response.status == 200, (path, await response.text())
    return services.db.counter.total - before


@pytest.mark.parametrize("identity", sorted(IDENTITIES))
@pytest.mark.parametrize("at_once", [False, True], ids=["in-order", "at-once"])
async def test_a_cold_boot_costs_one_statement_once_the_boot_pattern_is_learned(
    services: Services, guest: Any, put_instance: Any, identity: str, at_once: bool
) -> None:
    for n in range(20, 30):
        await put_instance(sample_document(n))
    unlearned = await boot(services, guest, 20, identity=identity)
    for n in range(21, 24):
        await boot(services, guest, n, identity=identity)
    learned = [
        await boot(services, guest, n, identity=identity, at_once=at_once) for n in range(24, 30)
    ]
    # one statement: the identity look-up and every slice the boot goes on to read
    assert learned == [1] * len(learned)
    assert unlearned > 1
    assert services.loader.pending_reads() == 0  # single flight keeps nothing behind
    assert await boot(services, guest, 29, identity=identity, at_once=at_once) == 0


@pytest.mark.parametrize("identity", sorted(IDENTITIES))
async def test_an_unlearned_boot_sent_at_once_costs_no_more_than_in_order(
    services: Services, guest: Any, put_instance: Any, identity: str
) -> None:
    for n in (40, 41):
        await put_instance(sample_document(n))
    in_order = await boot(services, guest, 40, identity=identity)
    at_once = await boot(services, guest, 41, identity=identity, at_once=True)
    # In order, each request that needs a slice not read yet reads it; all at once, the
    # requests that miss together share one read of everything they need (one statement
    # when all arrive while the first read starts; a late one may need one more).
    assert in_order == 4
    assert 1 <= at_once < in_order
    assert services.loader.pending_reads() == 0


async def test_a_write_is_served_on_the_very_next_read(
    services: Services, guest: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(9))
    path = "/latest/meta-data/hostname"
    assert await (await guest.get(path, headers=guest_headers(9))).text() == "web-9"
    await put_instance(sample_document(9, hostname="renamed-9"))
    assert await (await guest.get(path, headers=guest_headers(9))).text() == "renamed-9"


async def test_an_address_moved_to_another_instance_is_never_served_the_old_owner(
    services: Services, guest: Any, put_instance: Any
) -> None:
    first = await put_instance(sample_document(10))
    path = "/latest/meta-data/instance-id"
    assert await (await guest.get(path, headers=guest_headers(10))).text() == first["ec2_id"]
    await put_instance(sample_document(10, ports=[]))
    assert (await guest.get(path, headers=guest_headers(10))).status == 404
    moved = sample_document(11, ports=sample_document(10)["ports"])
    second = await put_instance(moved)
    assert await (await guest.get(path, headers=guest_headers(10))).text() == second["ec2_id"]
    assert second["uuid"] == instance_uuid(11)


async def test_a_deleted_instance_is_not_served_from_cache(
    services: Services, guest: Any, admin: Any, put_instance: Any
) -> None:
    await put_instance(sample_document(12))
    path = "/openstack/latest/meta_data.json"
    assert (await guest.get(path, headers=guest_headers(12))).status == 200
    assert (await admin.delete(f"/v1/instances/{instance_uuid(12)}")).status == 204
    assert (await guest.get(path, headers=guest_headers(12))).status == 404
