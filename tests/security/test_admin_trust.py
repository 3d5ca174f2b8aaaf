"""The admin API: only on its own listener, only with a named token compared whole."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN
from tests.documents import instance_uuid
from tests.security.conftest import TOKEN_KEYS, as_attacker, assert_no_victim_data

OPS_TOKEN = "ops-token-abcdefghijklmnop"


@pytest.fixture
def security_settings() -> dict[str, Any]:
    return {"token_keys": TOKEN_KEYS, "admin_tokens": {"admin": ADMIN_TOKEN, "ops": OPS_TOKEN}}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/instances",
        f"/v1/instances/{instance_uuid(77)}",
        "/metrics",
        "/v1/stats/paths",
        "/v1/openapi.json",
        "/healthz",
    ],
)
async def test_the_admin_api_is_not_on_the_guest_listener(
    guest: Any, two_instances: Any, path: str
) -> None:
    response = await guest.get(path, headers=as_attacker(Authorization=f"Bearer {ADMIN_TOKEN}"))
    assert response.status == 404
    assert_no_victim_data(await response.read())


@pytest.mark.parametrize(
    "authorization",
    [
        "",
        "Bearer",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        f"Bearer {ADMIN_TOKEN}x",
        ADMIN_TOKEN,
        f"Basic {ADMIN_TOKEN}",
        f"Bearer {ADMIN_TOKEN.upper()}",
        "Bearer \udcff",
    ],
)
async def test_a_wrong_admin_token_is_401(
    aiohttp_client: Any, services: Any, authorization: str
) -> None:
    from metadata.admin.routes import build_admin_app

    client = await aiohttp_client(build_admin_app(services))
    headers = {"Authorization": authorization} if authorization else {}
    assert (await client.get("/v1/instances", headers=headers)).status == 401


@pytest.mark.parametrize("token", [ADMIN_TOKEN, OPS_TOKEN])
async def test_each_named_admin_token_is_accepted(
    aiohttp_client: Any, services: Any, token: str
) -> None:
    from metadata.admin.routes import build_admin_app

    client = await aiohttp_client(build_admin_app(services))
    response = await client.get("/v1/instances", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
