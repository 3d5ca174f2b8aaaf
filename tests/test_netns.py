"""End to end through a real network: a guest namespace asks 169.254.169.254:80 and
[fd00:ec2::254]:80, served by `metadata serve` in a server namespace, and is told its own
instance-id, identified by nothing but its source address (IPv4 or IPv6). And the IMDSv2
hop limit across a router namespace: a guest one routing hop away gets no token answer with
limit 1, and gets one with 2. Needs root and iproute2; skipped otherwise."""

from __future__ import annotations

import contextlib
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
METADATA_ADDRESS_V6 = "fd00:ec2::254"
SERVER_LINK_V6, GUEST_ADDRESS_V6 = "fd00:200::1", "fd00:200::5"
GUEST_LISTEN = f"{METADATA_ADDRESS}:80,[{METADATA_ADDRESS_V6}]:80"
# The routed network: guest -- router -- server, each link its own subnet.
ROUTER_GUEST_SIDE, ROUTED_GUEST = "10.201.0.1", "10.201.0.5"
ROUTER_SERVER_SIDE, ROUTED_SERVER = "10.202.0.1", "10.202.0.2"


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


def require_namespaces() -> None:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2)")


@contextlib.contextmanager
def namespaces(*roles: str) -> Iterator[list[str]]:
    """Fresh namespaces, one per role, removed afterwards; a skip when none can be made."""
    require_namespaces()
    suffix = f"{os.getpid()}-{secrets.token_hex(3)}"
    made: list[str] = []
    try:
        for role in roles:
            name = f"md-{role}-{suffix}"
            try:
                ip("netns", "add", name)
            except subprocess.CalledProcessError as exc:
                pytest.skip(f"`ip netns add` failed: {exc.stderr.strip()}")
            made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        yield made
    finally:
        for name in reversed(made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def link(left: str, left_name: str, right: str, right_name: str) -> None:
    """A veth pair between two namespaces; both ends are made inside them, so nothing
    appears in this machine's own namespace."""
    ip(
        "-n",
        left,
        "link",
        "add",
        left_name,
        "type",
        "veth",
        "peer",
        "name",
        right_name,
        "netns",
        right,
    )
    ip("-n", left, "link", "set", left_name, "up")
    ip("-n", right, "link", "set", right_name, "up")


def address(namespace: str, cidr: str, device: str) -> None:
    # nodad: an IPv6 address is usable at once, not after duplicate detection
    ip("-n", namespace, "addr", "add", cidr, "dev", device, *(["nodad"] if ":" in cidr else []))


@pytest.fixture
def network() -> Iterator[Network]:
    with namespaces("server", "guest") as (server, guest):
        made = Network(server, guest)
        link(made.server, "veth0", made.guest, "veth0")
        address(made.server, f"{SERVER_LINK}/24", "veth0")
        address(made.server, f"{METADATA_ADDRESS}/32", "lo")
        address(made.guest, f"{GUEST_ADDRESS}/24", "veth0")
        address(made.guest, f"{STRANGER_ADDRESS}/24", "veth0")
        ip("-n", made.guest, "route", "add", f"{METADATA_ADDRESS}/32", "via", SERVER_LINK)
        address(made.server, f"{SERVER_LINK_V6}/64", "veth0")
        address(made.server, f"{METADATA_ADDRESS_V6}/128", "lo")
        address(made.guest, f"{GUEST_ADDRESS_V6}/64", "veth0")
        ip(
            "-n",
            made.guest,
            "-6",
            "route",
            "add",
            f"{METADATA_ADDRESS_V6}/128",
            "via",
            SERVER_LINK_V6,
        )
        yield made


@contextlib.contextmanager
def serving(
    namespace: str, workdir: Path, listen: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`metadata serve` inside the namespace until the block ends."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    environ |= {
        "METADATA_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/metadata.db",
        "METADATA_ADMIN_TOKEN": ADMIN_TOKEN,
        "METADATA_RATE_LIMIT": "off",
        "METADATA_SHUTDOWN_GRACE": "2",
        **env,
    }
    log = workdir / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                sys.executable,
                "-m",
                "metadata",
                "serve",
                "--listen",
                listen,
                "--admin-listen",
                ADMIN_LISTEN,
            ],
            env=environ,
            cwd=workdir,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        healthz = (
            "import urllib.request; "
            f"urllib.request.urlopen('http://{ADMIN_LISTEN}/healthz', timeout=2).read()"
        )
        deadline = time.monotonic() + 30
        while in_namespace(namespace, healthz).returncode != 0:
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


@pytest.fixture
def server(network: Network, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with serving(network.server, tmp_path, GUEST_LISTEN) as process:
        yield process


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

ASK = """
import http.client, sys
host, source = sys.argv[1], sys.argv[2]
connection = http.client.HTTPConnection(host, 80, timeout=5, source_address=(source, 0))
connection.request("GET", "/latest/meta-data/instance-id")
response = connection.getresponse()
print(response.status, response.read().decode())
"""


def seed(namespace: str, doc: dict[str, object]) -> str:
    """PUT the document through the admin listener inside the namespace; its ec2_id."""
    seeded = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", SEED, str(doc["uuid"])],
        input=json.dumps(doc),
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert seeded.returncode == 0, seeded.stderr
    ec2_id: str = json.loads(seeded.stdout)["ec2_id"]
    return ec2_id


def test_a_guest_is_told_its_own_instance_id_by_its_source_address(
    network: Network, server: subprocess.Popen[bytes]
) -> None:
    doc = sample_document(1)
    doc["ports"][0]["fixed_ips"] = [
        {"address": GUEST_ADDRESS, "cidr": "10.200.0.0/24", "gateway": SERVER_LINK},
        {"address": GUEST_ADDRESS_V6, "cidr": "fd00:200::/64", "gateway": SERVER_LINK_V6},
    ]
    ec2_id = seed(network.server, doc)
    assert ec2_id.startswith("i-")

    def ask(host: str, source: str) -> str:
        asked = subprocess.run(
            ["ip", "netns", "exec", network.guest, sys.executable, "-c", ASK, host, source],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert asked.returncode == 0, asked.stderr
        return asked.stdout.strip()

    assert ask(METADATA_ADDRESS, GUEST_ADDRESS) == f"200 {ec2_id}"
    # The IPv6 listener, the guest known by its port's IPv6 address alone.
    assert ask(METADATA_ADDRESS_V6, GUEST_ADDRESS_V6) == f"200 {ec2_id}"
    # The same guest namespace from an address no instance has: not guessed, refused.
    assert ask(METADATA_ADDRESS, STRANGER_ADDRESS).startswith("404")
    # The admin listener sits on the server namespace's loopback, out of the guest's reach.
    admin_from_guest = in_namespace(
        network.guest,
        "import urllib.request; "
        f"urllib.request.urlopen('http://{ADMIN_LISTEN}/healthz', timeout=2)",
    )
    assert admin_from_guest.returncode != 0


@dataclass
class RoutedNetwork:
    guest: str
    router: str
    server: str


@pytest.fixture
def routed_network() -> Iterator[RoutedNetwork]:
    """guest -- router (forwarding) -- server: the server's answers cross one router."""
    with namespaces("guest", "router", "server") as (guest, router, server):
        made = RoutedNetwork(guest, router, server)
        link(made.guest, "veth0", made.router, "veth-guest")
        link(made.router, "veth-server", made.server, "veth0")
        address(made.guest, f"{ROUTED_GUEST}/24", "veth0")
        address(made.router, f"{ROUTER_GUEST_SIDE}/24", "veth-guest")
        address(made.router, f"{ROUTER_SERVER_SIDE}/24", "veth-server")
        address(made.server, f"{ROUTED_SERVER}/24", "veth0")
        address(made.server, f"{METADATA_ADDRESS}/32", "lo")
        ip("-n", made.guest, "route", "add", "default", "via", ROUTER_GUEST_SIDE)
        ip("-n", made.server, "route", "add", "default", "via", ROUTER_SERVER_SIDE)
        ip("-n", made.router, "route", "add", f"{METADATA_ADDRESS}/32", "via", ROUTED_SERVER)
        forwarding = subprocess.run(
            ["ip", "netns", "exec", made.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if forwarding.returncode != 0:
            pytest.skip(f"cannot turn on forwarding in the router: {forwarding.stderr.strip()}")
        yield made


# A token PUT, then (when one came) a read with it on the same connection. A lost answer is
# the client's read timing out: what a guest behind one more hop than allowed sees.
TOKEN_THEN_READ = f"""
import http.client, socket
connection = http.client.HTTPConnection("{METADATA_ADDRESS}", 80, timeout=3)
connection.request("PUT", "/latest/api/token",
                   headers={{"X-aws-ec2-metadata-token-ttl-seconds": "60"}})
try:
    response = connection.getresponse()
except (socket.timeout, TimeoutError):
    print("no answer")
    raise SystemExit(0)
token = response.read().decode()
print(response.status)
connection.request("GET", "/latest/meta-data/instance-id",
                   headers={{"X-aws-ec2-metadata-token": token}})
read = connection.getresponse()
print(read.status, read.read().decode())
"""


@pytest.mark.parametrize(
    ("hop_limit", "expected"),
    [
        ("1", ["no answer"]),
        ("2", ["200", "200 {ec2_id}"]),
    ],
)
def test_a_token_answer_crosses_as_many_routers_as_the_hop_limit_allows(
    routed_network: RoutedNetwork, tmp_path: Path, hop_limit: str, expected: list[str]
) -> None:
    net = routed_network
    doc = sample_document(2)
    doc["ports"][0]["fixed_ips"] = [
        {"address": ROUTED_GUEST, "cidr": "10.201.0.0/24", "gateway": ROUTER_GUEST_SIDE}
    ]
    with serving(
        net.server, tmp_path, f"{METADATA_ADDRESS}:80", METADATA_TOKEN_HOP_LIMIT=hop_limit
    ):
        ec2_id = seed(net.server, doc)
        # Any other answer crosses the router whatever the limit.
        plain = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                net.guest,
                sys.executable,
                "-c",
                ASK,
                METADATA_ADDRESS,
                ROUTED_GUEST,
            ],
            capture_output=True,
            text=True,
            timeout=15,
        )
        assert plain.stdout.strip() == f"200 {ec2_id}", plain.stderr
        asked = in_namespace(net.guest, TOKEN_THEN_READ, timeout=20)
        assert asked.returncode == 0, asked.stderr
        assert asked.stdout.split("\n")[:-1] == [e.format(ec2_id=ec2_id) for e in expected]
