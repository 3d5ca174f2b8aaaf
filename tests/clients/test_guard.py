"""The guard that confines client processes: refusals happen before any real connect or
lookup, so no packet leaves loopback; 169.254.169.254 is redirected and the source bound."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from typing import Any

import pytest

from tests.clients.conftest import GUEST_ADDRESS, HERE

pytestmark = pytest.mark.client
# Nothing listens there: the probe's spies stand in for the real connect.
GUEST_PORT = 18775

REFUSED = [
    "connect 192.0.2.1:80",
    "connect 169.254.169.254:8080",
    "connect [fd00:ec2::254]:80",
    "connect by name",
    "sendto 192.0.2.1:53",
    "sendmsg 192.0.2.1:53",
]
UNRESOLVED = [
    "getaddrinfo instance-data.",
    "getaddrinfo fd00:ec2::254",
    "gethostbyname example.com",
]


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(HERE / "probe_guard.py"), str(GUEST_PORT), GUEST_ADDRESS],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    results: dict[str, Any] = json.loads(completed.stdout)
    return results


@pytest.mark.parametrize("label", REFUSED)
def test_guard_refuses_non_loopback_before_the_real_call(label: str, probe: dict[str, Any]) -> None:
    assert probe[label] == {
        "outcome": ["ConnectionRefusedError", errno.ECONNREFUSED],
        "reached": [],
    }


def test_guard_connect_ex_reports_refusal_without_connecting(probe: dict[str, Any]) -> None:
    assert probe["connect_ex 192.0.2.1:80"] == {
        "outcome": ["returned", str(errno.ECONNREFUSED)],
        "reached": [],
    }


@pytest.mark.parametrize("label", UNRESOLVED)
def test_guard_resolves_no_outside_name(label: str, probe: dict[str, Any]) -> None:
    assert probe[label]["outcome"][0] == "gaierror"
    assert probe[label]["reached"] == []


def test_guard_redirects_the_metadata_address(probe: dict[str, Any]) -> None:
    # the spy stands for the real connect: it got the test server's address, not 169.254.
    assert probe["connect 169.254.169.254:80"]["reached"] == [
        ["connect", repr((("127.0.0.1", GUEST_PORT),))]
    ]


def test_guard_binds_the_guest_source_address(probe: dict[str, Any]) -> None:
    assert probe["metadata source"] == GUEST_ADDRESS


def test_guard_lets_loopback_and_the_literal_metadata_address_through(
    probe: dict[str, Any],
) -> None:
    assert probe["connect 127.0.0.1:9"]["reached"] == [["connect", "(('127.0.0.1', 9),)"]]
    assert probe["getaddrinfo 169.254.169.254"]["reached"] == [
        ["getaddrinfo", "('169.254.169.254', 80)"]
    ]
