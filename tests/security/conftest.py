"""The adversarial suite: two instances, a guest client with the guest listener's real
server limits, and the check every attack ends with: nothing of the victim leaks."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from metadata.app import build_guest_app
from metadata.guest.limits import GUEST_SERVER_LIMITS
from metadata.services import Services
from tests.conftest import AIOHTTP_CLIENT
from tests.documents import guest_headers, instance_address, sample_document

# 77: its address 10.0.0.77 is no prefix of the attacker's gateway 10.0.0.254
ATTACKER, VICTIM = 1, 77
# Newest first: "k2" signs, "k1" still verifies (a rotation in progress).
TOKEN_KEYS = {"k2": "new-token-key-0123456789", "k1": "old-token-key-0123456789"}
LOOPBACK_ATTACKER = 3  # reached by its own address, 127.0.0.1, through no proxy


def victim_markers() -> list[bytes]:
    """Strings that appear only in the victim's data."""
    doc = sample_document(VICTIM)
    return [
        s.encode()
        for s in (
            doc["uuid"],
            "i-" + doc["uuid"].replace("-", "")[:17],
            instance_address(VICTIM),
            f"AAAAC3Nza{VICTIM} ",
            f"web-{VICTIM}",
            f"203.0.113.{VICTIM}",
        )
    ]


def assert_no_victim_data(body: bytes) -> None:
    for marker in victim_markers():
        assert marker not in body, marker


def loopback_document(n: int = LOOPBACK_ATTACKER) -> dict[str, Any]:
    """An instance whose fixed IP is 127.0.0.1: the test client is that guest itself."""
    doc = sample_document(n)
    doc["ports"][0]["fixed_ips"] = [{"address": "127.0.0.1", "cidr": "127.0.0.0/8"}]
    doc["ports"][0]["floating_ips"] = []
    return doc


@pytest.fixture
def security_settings() -> dict[str, Any]:
    return {"token_keys": TOKEN_KEYS}


@pytest.fixture
def settings_overrides(security_settings: dict[str, Any]) -> dict[str, Any]:
    return security_settings


UNTRUSTED = {"token_keys": TOKEN_KEYS, "trusted_proxies": ()}


@pytest.fixture
async def guest(aiohttp_client: AIOHTTP_CLIENT, services: Services) -> TestClient[Any, Any]:
    """The guest app behind the same server limits as `metadata serve` gives it."""
    # aiohttp_client drops server_kwargs on the floor: start the server with them first.
    server = TestServer(build_guest_app(services))
    await server.start_server(**GUEST_SERVER_LIMITS)
    client: TestClient[Any, Any] = await aiohttp_client(server)
    return client


@pytest.fixture
async def two_instances(put_instance: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    attacker = await put_instance(sample_document(ATTACKER))
    victim = await put_instance(sample_document(VICTIM))
    return attacker, victim


def as_attacker(**extra: str) -> dict[str, str]:
    return {**guest_headers(ATTACKER), **extra}


def as_victim(**extra: str) -> dict[str, str]:
    return {**guest_headers(VICTIM), **extra}
