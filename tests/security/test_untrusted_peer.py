"""X-Forwarded-For from a peer that is not a trusted proxy: never believed, and with
tokens refused outright (as EC2 refuses it)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.documents import instance_address, sample_document
from tests.security.conftest import UNTRUSTED, VICTIM, assert_no_victim_data, loopback_document

TOKEN_PATH = "/latest/api/token"
TTL = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN = "X-aws-ec2-metadata-token"


@pytest.fixture
def security_settings() -> dict[str, Any]:
    return dict(UNTRUSTED)


@pytest.fixture
async def attacker(put_instance: Any) -> dict[str, Any]:
    await put_instance(sample_document(VICTIM))
    doc: dict[str, Any] = await put_instance(loopback_document())
    return doc


async def test_a_spoofed_forwarded_for_reads_the_senders_own_data(
    guest: Any, attacker: dict[str, Any]
) -> None:
    response = await guest.get(
        "/latest/meta-data/instance-id", headers={"X-Forwarded-For": instance_address(VICTIM)}
    )
    body = await response.read()
    assert (response.status, body) == (200, attacker["ec2_id"].encode())
    assert_no_victim_data(body)


async def test_a_token_put_with_forwarded_for_from_an_untrusted_peer_is_403(
    guest: Any, attacker: dict[str, Any]
) -> None:
    response = await guest.put(
        TOKEN_PATH, headers={"X-Forwarded-For": instance_address(VICTIM), TTL: "60"}
    )
    assert response.status == 403
    assert_no_victim_data(await response.read())


async def test_a_get_with_a_token_and_forwarded_for_from_an_untrusted_peer_is_403(
    guest: Any, attacker: dict[str, Any]
) -> None:
    token = await (await guest.put(TOKEN_PATH, headers={TTL: "60"})).text()
    plain = await guest.get("/latest/user-data", headers={TOKEN: token})
    assert plain.status == 200
    spoofed = await guest.get(
        "/latest/user-data", headers={TOKEN: token, "X-Forwarded-For": instance_address(VICTIM)}
    )
    assert spoofed.status == 403
    assert_no_victim_data(await spoofed.read())
