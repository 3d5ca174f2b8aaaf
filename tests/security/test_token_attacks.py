"""Attacks on IMDSv2 session tokens: forged, truncated, replayed, expired and proxied."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from metadata.guest.tokens import TokenSigner
from tests.documents import instance_uuid
from tests.security.conftest import (
    ATTACKER,
    TOKEN_KEYS,
    as_attacker,
    as_victim,
    assert_no_victim_data,
)

TOKEN_PATH = "/latest/api/token"
TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"
INSTANCE_ID = "/latest/meta-data/instance-id"
USER_DATA = "/latest/user-data"


async def put_token(guest: Any, headers: dict[str, str], ttl: str = "21600") -> str:
    response = await guest.put(TOKEN_PATH, headers={**headers, TTL: ttl})
    body = await response.text()
    assert response.status == 200, body
    assert response.headers[TTL] == ttl
    return body


async def get_with_token(guest: Any, path: str, headers: dict[str, str], token: str) -> Any:
    response = await guest.get(path, headers={**headers, TOKEN: token})
    body = await response.read()
    assert_no_victim_data(body)
    return response.status, body


async def test_a_token_reads_its_own_instance(guest: Any, two_instances: Any) -> None:
    attacker, _ = two_instances
    token = await put_token(guest, as_attacker())
    assert 40 <= len(token) <= 64
    assert await get_with_token(guest, INSTANCE_ID, as_attacker(), token) == (
        200,
        attacker["ec2_id"].encode(),
    )


async def test_a_token_replayed_by_another_instance_is_401(guest: Any, two_instances: Any) -> None:
    victim_token = await put_token(guest, as_victim())
    # The attacker steals the victim's token and presents it from its own address.
    status, _ = await get_with_token(guest, INSTANCE_ID, as_attacker(), victim_token)
    assert status == 401
    # ...and its own token does not open the victim's data either: it is the attacker's.
    own = await put_token(guest, as_attacker())
    status, body = await get_with_token(guest, USER_DATA, as_attacker(), own)
    assert status == 200 and b"web-1" in body


def forgeries(token: str) -> dict[str, str]:
    name, expiry, mac = token.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    return {
        "truncated-mac": token[:-1],
        "half-mac": f"{name}.{expiry}.{mac[: len(mac) // 2]}",
        "no-mac": f"{name}.{expiry}.",
        "flipped-bit": f"{name}.{expiry}.{flipped}",
        "extended-expiry": f"{name}.{int(expiry, 16) + 3600:x}.{mac}",
        "unknown-key": f"k9.{expiry}.{mac}",
        "other-key-name": f"k1.{expiry}.{mac}",
        "no-dots": mac,
        "empty": "",
        "huge-expiry": f"{name}.{'f' * 64}.{mac}",
        "non-hex-expiry": f"{name}.zz.{mac}",
        "non-ascii": f"{name}.{expiry}.{'é' * 43}",
    }


@pytest.mark.parametrize("kind", list(forgeries("k.1.mac")))
async def test_a_forged_or_truncated_token_is_401(
    guest: Any, two_instances: Any, kind: str
) -> None:
    token = forgeries(await put_token(guest, as_attacker()))[kind]
    assert (await get_with_token(guest, INSTANCE_ID, as_attacker(), token))[0] == 401


async def test_a_token_signed_with_a_key_we_do_not_hold_is_401(
    guest: Any, two_instances: Any
) -> None:
    # Right format, right instance, right name, wrong secret.
    forged = TokenSigner({"k2": "guessed-key-0123456789"}).issue(
        instance_uuid(ATTACKER), 60, time.time()
    )
    assert (await get_with_token(guest, INSTANCE_ID, as_attacker(), forged))[0] == 401


async def test_a_token_signed_with_the_previous_key_is_accepted(
    guest: Any, two_instances: Any
) -> None:
    # Rotation: replicas that still sign with the old key hand out tokens this one accepts.
    old = TokenSigner({"k1": TOKEN_KEYS["k1"]}).issue(instance_uuid(ATTACKER), 60, time.time())
    assert (await get_with_token(guest, INSTANCE_ID, as_attacker(), old))[0] == 200


async def test_an_expired_token_is_401(guest: Any, two_instances: Any) -> None:
    expired = TokenSigner(TOKEN_KEYS).issue(instance_uuid(ATTACKER), 60, time.time() - 61)
    assert (await get_with_token(guest, INSTANCE_ID, as_attacker(), expired))[0] == 401


async def test_a_one_second_token_expires_on_the_server(guest: Any, two_instances: Any) -> None:
    token = await put_token(guest, as_attacker(), ttl="1")
    # Expiry is in whole seconds: after at most two seconds the token is dead.
    await asyncio.sleep(2.05 - time.time() % 1)
    assert (await get_with_token(guest, INSTANCE_ID, as_attacker(), token))[0] == 401


@pytest.mark.parametrize("ttl", ["0", "21601", "-1", "abc", "", "1.5", "²", "99999999999"])
async def test_a_ttl_outside_ec2s_bounds_is_400(guest: Any, two_instances: Any, ttl: str) -> None:
    response = await guest.put(TOKEN_PATH, headers=as_attacker(**{TTL: ttl}))
    assert response.status == 400


async def test_a_missing_or_repeated_ttl_is_400(guest: Any, two_instances: Any) -> None:
    assert (await guest.put(TOKEN_PATH, headers=as_attacker())).status == 400
    repeated = [*as_attacker().items(), (TTL, "60"), (TTL, "60")]
    assert (await guest.put(TOKEN_PATH, headers=repeated)).status == 400


@pytest.mark.parametrize("ttl", ["1", "21600"])
async def test_the_ttl_bounds_themselves_are_granted(
    guest: Any, two_instances: Any, ttl: str
) -> None:
    await put_token(guest, as_attacker(), ttl=ttl)


@pytest.mark.parametrize(
    "path",
    [
        "/2021-03-23/api/token",
        "/latest/api/token/",
        "/2009-04-04/api/token",
        "/openstack/api/token",
        "/latest//api/token",
    ],
)
async def test_a_token_put_on_any_other_path_is_403(
    guest: Any, two_instances: Any, path: str
) -> None:
    response = await guest.put(path, headers=as_attacker(**{TTL: "60"}))
    assert response.status == 403
    assert_no_victim_data(await response.read())


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_on_the_token_path_are_405(
    guest: Any, two_instances: Any, method: str
) -> None:
    response = await guest.request(method, TOKEN_PATH, headers=as_attacker(**{TTL: "60"}))
    assert response.status == 405
    assert response.headers["Allow"] == "PUT"


async def test_a_token_put_forwarded_twice_is_403(guest: Any, two_instances: Any) -> None:
    # The trusted proxy appended the guest's address; the entry before it came from a proxy
    # inside the guest, which would let anything behind it fetch the guest's token.
    response = await guest.put(
        TOKEN_PATH, headers={"X-Forwarded-For": "192.0.2.9, 10.0.0.1", TTL: "60"}
    )
    assert response.status == 403


async def test_a_get_with_a_token_forwarded_twice_is_403(guest: Any, two_instances: Any) -> None:
    token = await put_token(guest, as_attacker())
    headers = {"X-Forwarded-For": "192.0.2.9, 10.0.0.1"}
    assert (await get_with_token(guest, INSTANCE_ID, headers, token))[0] == 403


async def test_a_second_token_header_is_400(guest: Any, two_instances: Any) -> None:
    token = await put_token(guest, as_attacker())
    headers = [*as_attacker().items(), (TOKEN, token), ("X-metadata-token", token)]
    response = await guest.get(INSTANCE_ID, headers=headers)
    assert response.status == 400


async def test_the_neutral_header_names_work_too(guest: Any, two_instances: Any) -> None:
    response = await guest.put(
        TOKEN_PATH, headers=as_attacker(**{"X-metadata-token-ttl-seconds": "60"})
    )
    token = await response.text()
    assert response.status == 200
    ok = await guest.get(INSTANCE_ID, headers=as_attacker(**{"X-metadata-token": token}))
    assert ok.status == 200


async def test_the_victim_is_unaffected_by_the_attackers_tokens(
    guest: Any, two_instances: Any
) -> None:
    _, victim = two_instances
    await put_token(guest, as_attacker())
    response = await guest.get(INSTANCE_ID, headers=as_victim())
    assert (response.status, await response.text()) == (200, victim["ec2_id"])
