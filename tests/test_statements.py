"""SQL statements per guest path, counted with SQLAlchemy engine events: exact numbers.

Cold means a fresh process (nothing cached); the first request of an instance also pays its
identity (one indexed probe of the address). Warm means the same request again.
"""

from __future__ import annotations

from typing import Any

import pytest

from loadtests.cloud_init import OPENSTACK_BOOT as BOOT
from metadata.services import Services
from metadata.store import schema as t
from tests.conftest import PROXY_SECRET
from tests.documents import guest_headers, instance_uuid, sample_document

CHILD_TABLES = {table.name for table in t.CHILD_TABLES}

# path -> (statements cold including identity, child tables the slice read may touch)
PATHS: dict[str, tuple[int, set[str]]] = {
    "/latest/meta-data/instance-id": (2, set()),
    "/2009-04-04/meta-data/hostname": (2, set()),
    "/latest/meta-data/public-keys/0/openssh-key": (2, {"keys"}),
    "/latest/meta-data/local-ipv4": (2, {"ports", "fixed_ips"}),
    "/latest/user-data": (2, {"user_data"}),
    "/openstack/latest/meta_data.json": (2, {"metadata_items", "keys"}),
    "/openstack/latest/user_data": (2, {"user_data"}),
    "/openstack/latest/network_data.json": (2, {"ports", "fixed_ips"}),
    "/openstack/latest/vendor_data.json": (2, {"vendor_data"}),
    "/openstack/latest/password": (2, {"passwords"}),
    "/openstack/latest/": (2, {"user_data"}),
    "/latest/meta-data/": (2, {"keys", "ports", "fixed_ips"}),
}


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
    identity, slices = texts
    assert tables_in(identity) == {"fixed_ips"}
    assert tables_in(slices) == tables, slices


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
    _identity, slices = texts
    assert not tables_in(slices) & {"user_data", "ports", "fixed_ips", "vendor_data"}


async def test_signed_identity_and_the_core_slice_share_one_statement(
    services: Services, guest: Any, put_instance: Any
) -> None:
    from metadata.guest.identify import sign

    doc = await put_instance(sample_document(8))
    headers = {"X-Instance-ID": doc["uuid"], "X-Tenant-ID": doc["project_id"],
               "X-Instance-ID-Signature": sign(PROXY_SECRET, doc["uuid"])}  # fmt: skip
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


async def boot(services: Services, guest: Any, n: int) -> int:
    before = services.db.counter.total
    for path in BOOT:
        response = await guest.get(path, headers=guest_headers(n))
        assert response.status == 200, path
    return services.db.counter.total - before


async def test_a_cold_boot_costs_two_statements_once_the_boot_pattern_is_learned(
    services: Services, guest: Any, put_instance: Any
) -> None:
    for n in range(20, 30):
        await put_instance(sample_document(n))
    unlearned = await boot(services, guest, 20)
    for n in range(21, 24):
        await boot(services, guest, n)
    learned = [await boot(services, guest, n) for n in range(24, 30)]
    # identity, then one statement that brings every slice the boot goes on to read
    assert learned == [2] * len(learned)
    assert unlearned > 2
    assert await boot(services, guest, 29) == 0


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
