"""Token modes and per-path policy: what a guest can read without a token."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.conftest import TOKEN_KEYS, as_attacker

TOKEN_PATH = "/latest/api/token"
TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"
INSTANCE_ID = "/latest/meta-data/instance-id"


@pytest.fixture
def security_settings() -> dict[str, Any]:
    # Optional mode, but user data and the password need a token; in required mode the
    # instance-id probe stays readable without one.
    return {
        "token_keys": TOKEN_KEYS,
        "token_mode": "optional",
        "token_required_paths": (
            "/{version}/user-data",
            "/openstack/{version}/user_data",
            "/openstack/{version}/password",
        ),
    }


async def status(guest: Any, path: str, **headers: str) -> int:
    response = await guest.get(path, headers=as_attacker(**headers))
    return int(response.status)


async def test_listed_paths_need_a_token_and_the_rest_do_not(
    guest: Any, two_instances: Any
) -> None:
    for path in (
        "/latest/user-data",
        "/2009-04-04/user-data",
        "/openstack/latest/user_data",
        "/openstack/2013-04-04/password",
    ):
        assert await status(guest, path) == 401, path
    for path in (INSTANCE_ID, "/latest/meta-data/", "/openstack/latest/meta_data.json"):
        assert await status(guest, path) == 200, path
    token = await (await guest.put(TOKEN_PATH, headers=as_attacker(**{TTL: "60"}))).text()
    for path in ("/latest/user-data", "/openstack/latest/user_data"):
        assert await status(guest, path, **{TOKEN: token}) == 200, path


async def test_a_warm_answer_is_still_guarded(guest: Any, two_instances: Any) -> None:
    token = await (await guest.put(TOKEN_PATH, headers=as_attacker(**{TTL: "60"}))).text()
    assert await status(guest, "/latest/user-data", **{TOKEN: token}) == 200
    # The answer is now in the hot cache: still 401 without the token.
    assert await status(guest, "/latest/user-data") == 401


class TestRequiredMode:
    @pytest.fixture
    def security_settings(self) -> dict[str, Any]:
        return {
            "token_keys": TOKEN_KEYS,
            "token_mode": "required",
            "token_exempt_paths": ("/{version}/meta-data/instance-id",),
        }

    async def test_ec2_paths_need_a_token_but_exempt_ones_and_openstack_do_not(
        self, guest: Any, two_instances: Any
    ) -> None:
        assert await status(guest, "/latest/meta-data/hostname") == 401
        assert await status(guest, "/latest/user-data") == 401
        assert await status(guest, "/2009-04-04/meta-data/") == 401
        assert await status(guest, INSTANCE_ID) == 200
        assert await status(guest, "/openstack/latest/meta_data.json") == 200
        assert await status(guest, "/") == 200  # the version list holds no instance data
        token = await (await guest.put(TOKEN_PATH, headers=as_attacker(**{TTL: "60"}))).text()
        assert await status(guest, "/latest/meta-data/hostname", **{TOKEN: token}) == 200
        assert await status(guest, "/latest/meta-data/hostname", **{TOKEN: "k2.1.x"}) == 401
