"""End to end through a real network: a guest namespace asks 169.254.169.254:80, served by
`metadata serve` in a server namespace, and is told its own instance-id, identified by
nothing but its source address. Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.documents import sample_document

ADMIN_TOKEN = "netns-test-admin-token-0123456"
METADATA_ADDRESS = "169.254.169.254"
SERVER_LINK, GUEST_ADDRESS, STRANGER_ADDRESS = "10.200.0.1", "10.200.0.5", "10.200.0.6"
ADMIN_LISTEN = "127.0.0.1:9775"  # the server namespace's own loopback: guests cannot reach it


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def in_namespace(
    namespace: str, code: str, stdin: str = "", timeout: float = 10
) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet inside a namespace (the only way to reach its addresses)."""
    return subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Network:
    server: str
    guest: str


@pytest.fixture
def network() -> Iterator[Network]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2)")
    suffix = f"{os.getpid()}-{secrets.token_hex(3)}"
    made = Network(f"md-server-{suffix}", f"md-guest-{suffix}")
    try:
        ip("netns", "add", made.server)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"`ip netns add` failed: {exc.stderr.strip()}")
    try:
        ip("netns", "add", made.guest)
        # Both ends are made inside the namespaces: nothing appears on this machine's own.
        ip("-n", made.server, "link", "add", "veth0", "type", "veth",
           "peer", "name", "veth0", "netns", made.guest)  # fmt: skip
        for namespace in (made.server, made.guest):
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("-n", namespace, "link", "set", "veth0", "up")
        ip("-n", made.server, "addr", "add", f"{SERVER_LINK}/24", "dev", "veth0")
        ip("-n", made.server, "addr", "add", f"{METADATA_ADDRESS}/32", "dev", "lo")
        ip("-n", made.guest, "addr", "add", f"{GUEST_ADDRESS}/24", "dev", "veth0")
        ip("-n", made.guest, "addr", "add", f"{STRANGER_ADDRESS}/24", "dev", "veth0")
        ip("-n", made.guest, "route", "add", f"{METADATA_ADDRESS}/32", "via", SERVER_LINK)
        yield made
    finally:
        for namespace in (made.guest, made.server):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)


@pytest.fixture
def server(network: Network, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    environ |= {
        "METADATA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/metadata.db",
        "METADATA_ADMIN_TOKEN": ADMIN_TOKEN,
        "METADATA_RATE_LIMIT": "off",
        "METADATA_SHUTDOWN_GRACE": "2",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["ip", "netns", "exec", network.server, sys.executable, "-m", "metadata", "serve",
             "--listen", f"{METADATA_ADDRESS}:80", "--admin-listen", ADMIN_LISTEN],
            env=environ, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        healthz = (
            "import urllib.request; "
            f"urllib.request.urlopen('http://{ADMIN_LISTEN}/healthz', timeout=2).read()"
        )
        deadline = time.monotonic() + 30
        while in_namespace(network.server, healthz).returncode != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not healthy within 30s:\n{log.read_text()}"
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


SEED = f"""
import sys, urllib.request
doc = sys.stdin.read()
request = urllib.request.Request(
    "http://{ADMIN_LISTEN}/v1/instances/" + sys.argv[1],
    data=doc.encode(), method="PUT",
    headers={{"Authorization": "Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}},
)
print(urllib.request.urlopen(request, timeout=5).read().decode())
"""

ASK = f"""
import http.client, sys
connection = http.client.HTTPConnection("{METADATA_ADDRESS}", 80, timeout=5,
                                        source_address=(sys.argv[1], 0))
connection.request("GET", "/latest/meta-data/instance-id")
response = connection.getresponse()
print(response.status, response.read().decode())
"""


def test_a_guest_is_told_its_own_instance_id_by_its_source_address(
    network: Network, server: subprocess.Popen[bytes]
) -> None:
    doc = sample_document(1)
    doc["ports"][0]["fixed_ips"] = [
        {"address": GUEST_ADDRESS, "cidr": "10.200.0.0/24", "gateway": SERVER_LINK}
    ]
    seeded = subprocess.run(
        ["ip", "netns", "exec", network.server, sys.executable, "-c", SEED, doc["uuid"]],
        input=json.dumps(doc), capture_output=True, text=True, timeout=15,
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    ec2_id = json.loads(seeded.stdout)["ec2_id"]
    assert ec2_id.startswith("i-")

    def ask(source: str) -> str:
        asked = subprocess.run(
            ["ip", "netns", "exec", network.guest, sys.executable, "-c", ASK, source],
            capture_output=True, text=True, timeout=15,
        )  # fmt: skip
        assert asked.returncode == 0, asked.stderr
        return asked.stdout.strip()

    assert ask(GUEST_ADDRESS) == f"200 {ec2_id}"
    # The same guest namespace from an address no instance has: not guessed, refused.
    assert ask(STRANGER_ADDRESS).startswith("404")
    # The admin listener sits on the server namespace's loopback, out of the guest's reach.
    admin_from_guest = in_namespace(
        network.guest,
        "import urllib.request; "
        f"urllib.request.urlopen('http://{ADMIN_LISTEN}/healthz', timeout=2)",
    )
    assert admin_from_guest.returncode != 0
