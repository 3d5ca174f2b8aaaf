"""Nova mode's DynamicJSON on a seeded Nova (SQLite): the boot roles come from system
metadata in the read that brings the vendor data's other inputs, so a cold boot costs the
statements it costs without DynamicJSON."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from metadata.app import build_guest_app
from metadata.config import Settings
from metadata.nova import schema as n
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.nova.seeded import SeededNova, seed_nova
from tests.nova.test_nova_mode import boot_statements, get


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
        bodies.append(await request.json())
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
