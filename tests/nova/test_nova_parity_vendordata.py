"""Parity of Nova's DynamicJSON vendor data with Nova 34.0.0's own app: both are pointed at
one loopback vendor-data service, and for every seeded instance each POSTs the same body
(`boot-roles` from system metadata, the hostname column without `dhcp_domain`, the stored
base64 user data) and serves the same `vendor_data2.json`; with `[vendordata_dynamic_auth]`
both send a token of the same (loopback) Keystone."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from loadtests.nova_peer import NovaCloud, NovaMetadataApp, start_nova_metadata
from loadtests.nova_peer.app import free_port
from loadtests.nova_peer.parity import Identity
from metadata.app import build_guest_app
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.nova.fake_neutron import fake_neutron
from tests.nova.test_nova_parity import SEEDED, nova_mode_settings

PATH = "/openstack/latest/vendor_data2.json"


class VendorService:
    """Answers each POST with what it was sent, and keeps the bodies and tokens in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.tokens: list[str | None] = []

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        self.tokens.append(request.headers.get("X-Auth-Token"))
        return web.json_response({"echo": body["instance-id"], "roles": body["boot-roles"]})


@pytest.fixture(scope="module")
def vendor_port() -> int:
    """One port for the module: Nova's app is started once, pointed at it."""
    return free_port()


@pytest.fixture
async def vendor(vendor_port: int) -> AsyncIterator[VendorService]:
    service = VendorService()
    app = web.Application()
    app.router.add_post("/vendordata", service.answer)
    server = TestServer(app, host="127.0.0.1", port=vendor_port)
    await server.start_server()
    try:
        yield service
    finally:
        await server.close()


def api_options(vendor_port: int) -> dict[str, str]:
    return {
        "vendordata_providers": "StaticJSON,DynamicJSON",
        "vendordata_dynamic_targets": f"peer@http://127.0.0.1:{vendor_port}/vendordata",
    }


@pytest.fixture(scope="module")
def novas_app(nova_cloud_mysql: NovaCloud, vendor_port: int) -> Iterator[NovaMetadataApp]:
    with start_nova_metadata(nova_cloud_mysql, api_options=api_options(vendor_port)) as app:
        yield app


@pytest.fixture
async def ours(
    nova_cloud_mysql: NovaCloud, vendor_port: int, tmp_path: Path, aiohttp_client: AIOHTTP_CLIENT
) -> AsyncIterator[TestClient[Any, Any]]:
    extra = tmp_path / "dynamic.conf"
    extra.write_text(
        "[api]\n" + "".join(f"{k} = {v}\n" for k, v in api_options(vendor_port).items()),
        encoding="utf-8",
    )
    settings = nova_mode_settings(nova_cloud_mysql.config_path, tmp_path)
    settings = dataclasses.replace(settings, nova_config=(*settings.nova_config, str(extra)))
    async with Services.open(settings) as services:
        yield await aiohttp_client(build_guest_app(services))


async def fetch(url: str, identity: Identity) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + PATH, headers=identity.headers()) as response,
    ):
        return response.status, orjson.loads(await response.read())


@pytest.mark.parametrize("name", SEEDED)
async def test_the_dynamic_vendor_data_body_and_answer_are_novas(
    nova_cloud_mysql: NovaCloud,
    novas_app: NovaMetadataApp,
    ours: TestClient[Any, Any],
    vendor: VendorService,
    name: str,
) -> None:
    instance = nova_cloud_mysql.instance(name)
    identity = Identity(
        instance.uuid, instance.project_id, nova_cloud_mysql.shared_secret, instance.address
    )
    mine = await fetch(str(ours.make_url("")).rstrip("/"), identity)
    theirs = await fetch(novas_app.base_url.rstrip("/"), identity)
    assert mine == theirs
    assert mine[0] == 200 and "peer" in mine[1]
    our_body, novas_body = vendor.bodies
    assert our_body == novas_body
    assert novas_body["hostname"] == name  # the column: no dhcp_domain
    expected_roles = {"web-1": "member", "multi-3": "member,reader,load-balancer_member"}
    assert novas_body["boot-roles"] == expected_roles.get(name, "")


async def test_with_vendordata_dynamic_auth_both_post_a_token_of_the_same_keystone(
    nova_cloud_mysql: NovaCloud,
    vendor_port: int,
    vendor: VendorService,
    tmp_path: Path,
    aiohttp_client: AIOHTTP_CLIENT,
) -> None:
    instance = nova_cloud_mysql.instance("web-1")
    identity = Identity(
        instance.uuid, instance.project_id, nova_cloud_mysql.shared_secret, instance.address
    )
    async with fake_neutron() as keystone:
        # v3password against a /v3 URL: keystoneauth posts to it without version discovery.
        auth = keystone.conf(
            auth_type="v3password", auth_url=f"{keystone.base_url}/identity/v3"
        ).replace("[neutron]", "[vendordata_dynamic_auth]")
        extra = tmp_path / "dynamic-auth.conf"
        extra.write_text(
            "[api]\n" + "".join(f"{k} = {v}\n" for k, v in api_options(vendor_port).items()) + auth,
            encoding="utf-8",
        )
        settings = nova_mode_settings(nova_cloud_mysql.config_path, tmp_path)
        settings = dataclasses.replace(settings, nova_config=(*settings.nova_config, str(extra)))
        async with Services.open(settings) as services:
            ours = await aiohttp_client(build_guest_app(services))
            mine = await fetch(str(ours.make_url("")).rstrip("/"), identity)
        app = await asyncio.to_thread(
            start_nova_metadata,
            nova_cloud_mysql,
            api_options=api_options(vendor_port),
            extra_conf=auth,
        )
        try:
            theirs = await fetch(app.base_url.rstrip("/"), identity)
        finally:
            await asyncio.to_thread(app.stop)
        valid = keystone.valid_tokens()
        tokens_asked = keystone.count("POST", "/identity/v3/auth/tokens")
    assert mine == theirs and mine[0] == 200 and "peer" in mine[1]
    assert vendor.bodies[0] == vendor.bodies[1]
    assert len(vendor.tokens) == 2 and all(t in valid for t in vendor.tokens)
    assert tokens_asked == 2  # one each
