"""Security groups in Nova mode come from Neutron's API when nova.conf's [neutron] has
Keystone credentials, as Nova asks for them: a Keystone v3 token (reused), the instance's
ports, then their groups. Against a loopback Keystone + Neutron (tests/nova/fake_neutron.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from metadata import codec
from metadata.admin.routes import build_admin_app
from metadata.app import build_guest_app
from metadata.config import Settings
from metadata.errors import InvalidSettings
from metadata.nova.conf import load_nova_config
from metadata.records import SecurityGroups, Slice
from metadata.services import Services
from tests.conftest import ADMIN_TOKEN, AIOHTTP_CLIENT
from tests.nova.fake_neutron import FakeNeutron, fake_neutron
from tests.nova.seeded import SeededNova, seed_nova
from tests.nova.test_nova_mode import BOOT, boot_statements, get, statements

LEAF = "/latest/meta-data/security-groups"


@pytest.fixture
async def nova(tmp_path: Path) -> SeededNova:
    return await seed_nova(tmp_path, count=5)


@pytest.fixture
async def neutron() -> AsyncIterator[FakeNeutron]:
    async with fake_neutron() as fake:
        yield fake


def settings(nova: SeededNova, tmp_path: Path, *extra_conf: str) -> Settings:
    files = [nova.conf_path]
    for number, text in enumerate(extra_conf):
        path = tmp_path / f"nova-extra-{number}.conf"
        path.write_text(text, encoding="utf-8")
        files.append(str(path))
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/metadata.db",
        admin_tokens={"admin": "test-admin-token-0123456789"},
        admin_token_file=str(tmp_path / "admin-token"),
        rate_limit=None,
        nova_config=tuple(files),
        # Neutron is asked once per generation: a change (on_change) makes it asked again.
        nova_neutron_max_staleness=0.0,
    )


@pytest.fixture
async def services(
    nova: SeededNova, neutron: FakeNeutron, tmp_path: Path
) -> AsyncIterator[Services]:
    async with Services.open(settings(nova, tmp_path, neutron.conf())) as opened:
        yield opened


@pytest.fixture
async def guest(aiohttp_client: AIOHTTP_CLIENT, services: Services) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(build_guest_app(services))
    return client


async def listing(guest: TestClient[Any, Any], uuid: str, number: int) -> list[str]:
    status, body = await get(guest, "/latest/meta-data/", uuid, number)
    assert status == 200, body
    return body.splitlines()


async def test_groups_are_served_one_name_per_line_on_every_nova_version(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron
) -> None:
    uuid = nova.uuids[0]
    neutron.serve_names(uuid, ["default", "web"])
    assert await get(guest, LEAF, uuid, 0) == (200, "default\nweb")
    assert await get(guest, "/2009-04-04/meta-data/security-groups", uuid, 0) == (
        200,
        "default\nweb",
    )
    assert await get(guest, "/1.0/meta-data/security-groups", uuid, 0) == (200, "default\nweb")
    assert "security-groups" in await listing(guest, uuid, 0)
    # As Nova asks: the ports with two fields, then the groups with two fields.
    ports = [p for m, p in neutron.requests if p.startswith("/network/v2.0/ports")]
    assert ports[0] == (
        f"/network/v2.0/ports?device_id={uuid}&fields=security_groups&fields=device_id"
    )
    groups = [p for m, p in neutron.requests if p.startswith("/network/v2.0/security-groups")]
    assert (
        groups[0] == "/network/v2.0/security-groups?id=sg-default&id=sg-web&fields=id&fields=name"
    )


async def test_an_unnamed_group_is_its_id_and_each_port_lists_its_own(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron
) -> None:
    uuid = nova.uuids[1]
    neutron.groups.update({"sg-a": "alpha", "7c2e-unnamed": "", "sg-hidden": "hidden"})
    # Two ports; the second shares alpha and carries a group this project cannot see.
    neutron.ports[uuid] = [["sg-a", "7c2e-unnamed"], ["sg-a", "sg-gone"]]
    assert await get(guest, LEAF, uuid, 1) == (200, "alpha\n7c2e-unnamed\nalpha")


async def test_without_groups_on_its_ports_the_leaf_is_listed_empty_and_groups_not_asked(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron
) -> None:
    uuid = nova.uuids[2]
    neutron.ports[uuid] = [[]]
    # As Nova: Neutron answered no group, so the leaf is there with an empty body.
    assert await get(guest, LEAF, uuid, 2) == (200, "")
    assert "security-groups" in await listing(guest, uuid, 2)
    assert neutron.count("GET", "/network/v2.0/ports") == 1
    assert neutron.count("GET", "/network/v2.0/security-groups") == 0


async def test_one_token_serves_many_requests_and_a_refused_one_is_replaced(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron, services: Services
) -> None:
    for number, uuid in enumerate(nova.uuids):
        neutron.serve_names(uuid, [f"group-{number}"])
    for number, uuid in enumerate(nova.uuids):
        assert await get(guest, LEAF, uuid, number) == (200, f"group-{number}")
    assert neutron.count("POST", "/identity/v3/auth/tokens") == 1
    assert neutron.count("GET", "/network/v2.0/ports") == len(nova.uuids)
    # Keystone revoked it: Neutron answers 401, the service gets a new token and retries.
    neutron.revoke()
    assert services.nova is not None
    await services.nova.on_change(nova.uuids[0], "changed")
    assert await get(guest, LEAF, nova.uuids[0], 0) == (200, "group-0")
    assert neutron.count("POST", "/identity/v3/auth/tokens") == 2


async def test_a_token_about_to_expire_is_renewed_before_use(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron
) -> None:
    neutron.token_lifetime = datetime.timedelta(seconds=30)  # inside the renewal margin
    for number, uuid in enumerate(nova.uuids[:2]):
        neutron.serve_names(uuid, ["default"])
        assert await get(guest, LEAF, uuid, number) == (200, "default")
    assert neutron.count("POST", "/identity/v3/auth/tokens") == 2


async def test_neutron_down_leaves_the_leaf_out_or_serves_the_last_answer_never_a_5xx(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron, services: Services
) -> None:
    known, unknown = nova.uuids[0], nova.uuids[3]
    neutron.serve_names(known, ["default", "web"])
    neutron.serve_names(unknown, ["db"])
    assert await get(guest, LEAF, known, 0) == (200, "default\nweb")
    neutron.failing = True
    assert services.nova is not None
    await services.nova.on_change(known, "changed")  # a new generation: CORE is read again
    assert await get(guest, LEAF, known, 0) == (200, "default\nweb")
    # Never asked successfully: unlisted, and everything else still served.
    assert (await get(guest, LEAF, unknown, 3))[0] == 404
    assert "security-groups" not in await listing(guest, unknown, 3)
    assert (await get(guest, "/latest/meta-data/instance-id", unknown, 3))[0] == 200
    assert (await get(guest, "/openstack/latest/meta_data.json", unknown, 3))[0] == 200
    neutron_counts = services.nova.neutron
    assert neutron_counts is not None
    assert neutron_counts.outcomes["error"] >= 2
    assert neutron_counts.outcomes["stale"] >= 1
    # Neutron back: a new generation reads the groups again.
    neutron.failing = False
    await services.nova.on_change(unknown, "changed")
    assert await get(guest, LEAF, unknown, 3) == (200, "db")


async def test_a_neutron_that_does_not_answer_is_given_up_after_its_timeout(
    nova: SeededNova, neutron: FakeNeutron, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    neutron.serve_names(nova.uuids[0], ["default"])
    neutron.hold = asyncio.Event()
    # A staleness window longer than the test: a window rolling over between the two
    # requests would rightly ask Neutron again, and the count below is of one ask.
    slow = dataclasses.replace(
        settings(nova, tmp_path, neutron.conf(timeout="1")), nova_max_staleness=3600.0
    )
    async with Services.open(slow) as opened:
        guest = await aiohttp_client(build_guest_app(opened))
        assert (await get(guest, LEAF, nova.uuids[0], 0))[0] == 404
        assert (await get(guest, "/latest/meta-data/hostname", nova.uuids[0], 0))[0] == 200
        admin = await aiohttp_client(
            build_admin_app(opened), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        metrics = await (await admin.get("/metrics")).text()
    assert 'metadata_nova_neutron_requests_total{outcome="timeout"} 1.0' in metrics
    assert 'metadata_nova_neutron_requests_total{outcome="ok"} 0.0' in metrics
    assert "metadata_nova_keystone_tokens_total 1.0" in metrics


async def test_a_cold_leaf_and_a_cold_boot_cost_the_same_statements_with_neutron(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron, services: Services
) -> None:
    for uuid in nova.uuids:
        neutron.serve_names(uuid, ["default"])
    before = statements(services)
    assert await get(guest, LEAF, nova.uuids[1], 1) == (200, "default")
    assert statements(services) - before <= 2
    before = statements(services)
    assert await get(guest, LEAF, nova.uuids[1], 1) == (200, "default")
    assert statements(services) - before == 0

    paths = (*BOOT, "/latest/meta-data/security-groups")
    for number in (0, 2, 3):
        await boot_statements(guest, services, nova, number, paths)
    assert await boot_statements(guest, services, nova, 4, paths) <= 4


async def test_paths_that_render_no_group_never_ask_neutron_even_when_it_hangs(
    guest: TestClient[Any, Any],
    nova: SeededNova,
    neutron: FakeNeutron,
    services: Services,
    tmp_path: Path,
    aiohttp_client: AIOHTTP_CLIENT,
) -> None:
    neutron.serve_names(nova.uuids[0], ["default"])
    neutron.hold = asyncio.Event()  # Neutron (and Keystone) never answer
    paths = (*BOOT, "/latest/meta-data/hostname", "/latest/meta-data/local-ipv4")
    with_neutron = await boot_statements(guest, services, nova, 0, paths)
    async with Services.open(settings(nova, tmp_path)) as without:
        plain = await aiohttp_client(build_guest_app(without))
        assert await boot_statements(plain, without, nova, 2, paths) == with_neutron
    assert neutron.requests == []


async def test_a_boot_that_learned_to_ask_for_groups_does_not_prefetch_them(
    nova: SeededNova, neutron: FakeNeutron, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    """The boot planner learns that boots ask for security-groups; still, the other paths'
    reads never derive them: only the leaf itself waits for Neutron."""
    async with Services.open(settings(nova, tmp_path, neutron.conf(timeout="1"))) as opened:
        guest = await aiohttp_client(build_guest_app(opened))
        paths = ("/latest/meta-data/instance-id", "/latest/user-data", LEAF)
        for number in (0, 2, 3):
            neutron.serve_names(nova.uuids[number], ["default"])
            await boot_statements(guest, opened, nova, number, paths)
        asked = neutron.count("GET", "/network/v2.0/ports")
        assert asked == 3
        neutron.hold = asyncio.Event()  # from now on Neutron never answers
        await boot_statements(guest, opened, nova, 4, paths[:2])
        assert neutron.count("GET", "/network/v2.0/ports") == asked


async def test_the_groups_are_their_own_slice_asked_once_however_many_ask_at_once(
    guest: TestClient[Any, Any], nova: SeededNova, neutron: FakeNeutron, services: Services
) -> None:
    uuid = nova.uuids[2]
    neutron.serve_names(uuid, ["default"])
    assert (await get(guest, "/latest/meta-data/instance-id", uuid, 2))[0] == 200
    before = statements(services)
    answers = await asyncio.gather(*(get(guest, LEAF, uuid, 2) for _ in range(6)))
    assert answers == [(200, "default")] * 6
    # The core slice was cached: the groups cost no statement, and one round trip.
    assert statements(services) - before == 0
    assert neutron.count("GET", "/network/v2.0/ports") == 1


async def test_an_answer_is_reused_within_its_own_bound_across_nova_changes(
    nova: SeededNova, neutron: FakeNeutron, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    uuid = nova.uuids[0]
    neutron.serve_names(uuid, ["default"])
    reused = dataclasses.replace(
        settings(nova, tmp_path, neutron.conf()), nova_neutron_max_staleness=3600.0
    )
    async with Services.open(reused) as opened:
        guest = await aiohttp_client(build_guest_app(opened))
        assert await get(guest, LEAF, uuid, 0) == (200, "default")
        neutron.serve_names(uuid, ["renamed"])
        assert opened.nova is not None
        # Nova's notifications say nothing of groups: a new generation is no reason to ask.
        await opened.nova.on_change(uuid, "changed")
        assert await get(guest, LEAF, uuid, 0) == (200, "default")
    assert neutron.count("GET", "/network/v2.0/ports") == 1


async def test_an_answer_older_than_stale_if_error_is_not_served_while_neutron_is_down(
    nova: SeededNova, neutron: FakeNeutron, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    uuid = nova.uuids[0]
    neutron.serve_names(uuid, ["default"])
    strict = dataclasses.replace(
        settings(nova, tmp_path, neutron.conf()), nova_neutron_stale_if_error=0.0
    )
    async with Services.open(strict) as opened:
        guest = await aiohttp_client(build_guest_app(opened))
        assert await get(guest, LEAF, uuid, 0) == (200, "default")
        neutron.failing = True
        assert opened.nova is not None
        await opened.nova.on_change(uuid, "changed")
        assert (await get(guest, LEAF, uuid, 0))[0] == 404
        assert "security-groups" not in await listing(guest, uuid, 0)
        assert (await get(guest, "/latest/meta-data/hostname", uuid, 0))[0] == 200


async def test_the_admin_document_carries_neutrons_groups(
    nova: SeededNova, neutron: FakeNeutron, services: Services, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    neutron.serve_names(nova.uuids[0], ["default", "web"])
    neutron.ports[nova.uuids[1]] = [[]]
    admin = await aiohttp_client(
        build_admin_app(services), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    for uuid, expected in ((nova.uuids[0], ["default", "web"]), (nova.uuids[1], [])):
        response = await admin.get(f"/v1/instances/{uuid}")
        assert response.status == 200
        assert (await response.json())["security_groups"] == expected


async def test_endpoint_override_is_used_instead_of_the_catalog(
    nova: SeededNova, neutron: FakeNeutron, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    conf = neutron.conf(endpoint_override=f"{neutron.base_url}/network/v2.0/")
    neutron.serve_names(nova.uuids[0], ["override"])
    async with Services.open(settings(nova, tmp_path, conf)) as opened:
        guest = await aiohttp_client(build_guest_app(opened))
        assert await get(guest, LEAF, nova.uuids[0], 0) == (200, "override")


async def test_without_credentials_the_leaf_stays_unlisted_and_neutron_is_never_asked(
    nova: SeededNova, neutron: FakeNeutron, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    neutron.serve_names(nova.uuids[0], ["default"])
    async with Services.open(settings(nova, tmp_path)) as opened:
        assert opened.nova is not None and opened.nova.neutron is None
        guest = await aiohttp_client(build_guest_app(opened))
        assert (await get(guest, LEAF, nova.uuids[0], 0))[0] == 404
        assert "security-groups" not in await listing(guest, nova.uuids[0], 0)
    assert neutron.requests == []


@pytest.mark.parametrize(
    "value", [SecurityGroups(("default", "7c2e")), SecurityGroups((), known=False)]
)
def test_the_slice_survives_the_shared_cache_codec(value: SecurityGroups) -> None:
    encoded = codec.encode(Slice.SECURITY_GROUPS, value)
    assert codec.decode(Slice.SECURITY_GROUPS, encoded) == value


@pytest.mark.parametrize(
    ("overrides", "option", "problem"),
    [
        ({"auth_type": "token"}, "auth_type", "unsupported 'token'"),
        ({"password": ""}, "password", "required by auth_type = password"),
        ({"auth_url": "keystone:5000"}, "auth_url", "not an http(s) URL"),
        ({"project_name": ""}, "project_name", "project_name or project_id"),
        ({"user_domain_name": ""}, "user_domain_name", "user_domain_name or user_domain_id"),
        ({"project_domain_name": ""}, "project_domain_name", "project_domain_name or"),
        ({"valid_interfaces": "internal,private"}, "valid_interfaces", "'private'"),
        ({"endpoint_override": "neutron:9696"}, "endpoint_override", "not an http(s) URL"),
    ],
)
def test_bad_credentials_are_a_start_up_error_naming_file_section_and_option(
    tmp_path: Path, overrides: dict[str, str], option: str, problem: str
) -> None:
    path = tmp_path / "nova.conf"
    fake = FakeNeutron(base_url="http://127.0.0.1:1")
    path.write_text(
        "[api_database]\nconnection = sqlite:////nonexistent/api.db\n" + fake.conf(**overrides),
        encoding="utf-8",
    )
    with pytest.raises(InvalidSettings) as error:
        load_nova_config([str(path)])
    (message,) = error.value.problems
    assert str(path) in message
    assert f"[neutron] {option}:" in message
    assert problem in message


def test_credentials_are_read_with_ids_and_the_default_interfaces(tmp_path: Path) -> None:
    path = tmp_path / "nova.conf"
    path.write_text(
        "[api_database]\nconnection = sqlite:////nonexistent/api.db\n"
        "[neutron]\nauth_type = v3password\nauth_url = http://keystone:5000/v3\n"
        "username = nova\npassword = secret\nproject_id = p-1\nuser_domain_id = default\n",
        encoding="utf-8",
    )
    auth = load_nova_config([str(path)]).neutron
    assert auth is not None
    assert (auth.project_id, auth.user_domain_id, auth.project_name) == ("p-1", "default", None)
    assert auth.valid_interfaces == ("internal", "public")
    assert auth.region_name is None and auth.endpoint_override is None
