"""Nova mode's DynamicJSON on a seeded Nova (SQLite): the boot roles come from system
metadata in the read that brings the vendor data's other inputs, so a cold boot costs the
statements it costs without DynamicJSON; with `[vendordata_dynamic_auth]` every POST
carries a Keystone token (against the loopback Keystone of tests/nova/fake_neutron.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from metadata.app import build_guest_app
from metadata.config import Settings
from metadata.errors import InvalidSettings
from metadata.nova import schema as n
from metadata.nova.conf import load_nova_config
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.nova.fake_neutron import fake_neutron
from tests.nova.seeded import SeededNova, seed_nova
from tests.nova.test_nova_mode import boot_statements, get

VENDOR_DATA2 = "/openstack/latest/vendor_data2.json"


@pytest.fixture
async def nova(tmp_path: Path) -> SeededNova:
    seeded = await seed_nova(tmp_path, count=5)
    engine = create_async_engine(seeded.cell_url)
    async with engine.begin() as conn:
        await conn.execute(
            insert(n.instance_system_metadata).values(
                instance_uuid=seeded.uuids[0], key="boot_roles", value="member,reader", deleted=0
            )
        )
    await engine.dispose()
    return seeded


@pytest.fixture
async def vendor() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []

    async def answer(request: web.Request) -> web.Response:
        bodies.append({**await request.json(), "token": request.headers.get("X-Auth-Token")})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/vd", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/vd")), bodies
    await server.close()


def settings(nova: SeededNova, tmp_path: Path, name: str, conf: str) -> Settings:
    extra = tmp_path / f"{name}.conf"
    extra.write_text(conf, encoding="utf-8")
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db",
        admin_tokens={"admin": "test-admin-token-0123456789"},
        admin_token_file=str(tmp_path / "admin-token"),
        rate_limit=None,
        nova_config=(nova.conf_path, str(extra)),
    )


async def test_boot_roles_cost_no_statement_of_their_own(
    nova: SeededNova,
    vendor: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
    aiohttp_client: AIOHTTP_CLIENT,
) -> None:
    url, bodies = vendor
    dynamic = (
        f"[api]\nvendordata_providers = StaticJSON,DynamicJSON\n"
        f"vendordata_dynamic_targets = vd@{url}\n"
    )
    counts = {}
    for name, conf in (("static", "[api]\n"), ("dynamic", dynamic)):
        async with Services.open(settings(nova, tmp_path, name, conf)) as services:
            guest = await aiohttp_client(build_guest_app(services))
            # The boot planner learns from the first boots what a boot goes on to need.
            counts[name] = [
                await boot_statements(guest, services, nova, number) for number in (0, 2, 3, 4)
            ]
            if name == "dynamic":
                status, body = await get(
                    guest, "/openstack/latest/vendor_data2.json", nova.uuids[0], 0
                )
                assert status == 200 and '"vd"' in body
    assert counts["dynamic"] == counts["static"]
    roles = {body["instance-id"]: body["boot-roles"] for body in bodies}
    assert roles[nova.uuids[0]] == "member,reader"
    assert roles[nova.uuids[2]] == ""
    assert all(
        body["hostname"].startswith("vm-") and "." not in body["hostname"] for body in bodies
    )


async def test_with_vendordata_dynamic_auth_each_post_carries_a_valid_token(
    nova: SeededNova, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> None:
    """As Nova's keystoneauth session: one token for every POST, and a service's 401 gets
    one new token and one retry."""
    posted: list[str | None] = []
    async with fake_neutron() as keystone:

        async def answer(request: web.Request) -> web.Response:
            token = request.headers.get("X-Auth-Token")
            posted.append(token)
            if token not in keystone.valid_tokens():
                return web.json_response({"error": "unauthorized"}, status=401)
            return web.json_response({"for": (await request.json())["instance-id"]})

        app = web.Application()
        app.router.add_post("/vd", answer)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        auth = keystone.conf().replace("[neutron]", "[vendordata_dynamic_auth]")
        conf = (
            f"[api]\nvendordata_providers = DynamicJSON\n"
            f"vendordata_dynamic_targets = vd@{server.make_url('/vd')}\n" + auth
        )
        try:
            async with Services.open(settings(nova, tmp_path, "auth", conf)) as services:
                guest = await aiohttp_client(build_guest_app(services))
                for number in (0, 1):
                    status, body = await get(guest, VENDOR_DATA2, nova.uuids[number], number)
                    assert status == 200 and orjson.loads(body)["vd"] == {"for": nova.uuids[number]}
                assert keystone.count("POST", "/identity/v3/auth/tokens") == 1
                keystone.revoke()
                status, body = await get(guest, VENDOR_DATA2, nova.uuids[2], 2)
                assert status == 200 and orjson.loads(body)["vd"] == {"for": nova.uuids[2]}
        finally:
            await server.close()
    assert keystone.count("POST", "/identity/v3/auth/tokens") == 2
    assert posted[0] == posted[1] == posted[2] != posted[3]  # the refused one, then a new one
    assert None not in posted


def test_bad_vendordata_dynamic_auth_is_a_start_up_error_naming_its_section(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nova.conf"
    path.write_text(
        "[api_database]\nconnection = sqlite:////nonexistent/api.db\n"
        "[vendordata_dynamic_auth]\nauth_type = password\nauth_url = http://keystone/v3\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidSettings) as error:
        load_nova_config([str(path)])
    (message,) = error.value.problems
    assert "[vendordata_dynamic_auth] username:" in message


async def test_without_a_token_the_service_is_left_out_never_the_answer(
    nova: SeededNova,
    vendor: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
    aiohttp_client: AIOHTTP_CLIENT,
) -> None:
    url, bodies = vendor
    async with fake_neutron() as keystone:
        auth = keystone.conf(password="wrong").replace("[neutron]", "[vendordata_dynamic_auth]")
        conf = (
            f"[api]\nvendordata_providers = DynamicJSON\nvendordata_dynamic_targets = vd@{url}\n"
            + auth
        )
        async with Services.open(settings(nova, tmp_path, "refused", conf)) as services:
            guest = await aiohttp_client(build_guest_app(services))
            status, body = await get(guest, VENDOR_DATA2, nova.uuids[0], 0)
            assert status == 200 and "vd" not in orjson.loads(body)
            assert services.vendor_data_outcomes["vd", "error"] == 1
    assert bodies == []  # nothing was POSTed without the token
