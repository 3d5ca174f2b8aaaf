"""Helpers for guest-facing tests: documents with every optional piece or none, raw HTTP
requests (paths the client library would normalise), and a crawler that follows listings
the way cloud-init does."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import BaseTestServer
from multidict import CIMultiDict

from metadata.app import build_guest_entry
from metadata.guest.entry import guest_server
from metadata.guest.limits import GUEST_SERVER_LIMITS
from metadata.services import Services
from tests.documents import instance_address, sample_document


class GuestTestServer(BaseTestServer):  # type: ignore[type-arg]
    """The guest listener as `metadata serve` runs it (the low-level server with the
    express lane), on a free loopback port, for `aiohttp_client`."""

    def __init__(self, services: Services, **kwargs: Any) -> None:
        self._services = services
        super().__init__(**kwargs)

    async def _make_runner(self, **kwargs: Any) -> web.ServerRunner:
        self.guest_server = guest_server(build_guest_entry(self._services), **GUEST_SERVER_LIMITS)
        return web.ServerRunner(self.guest_server, **kwargs)


def full_document(n: int) -> dict[str, Any]:
    """Every optional piece set: kernel and ramdisk, several keys, two ports each with
    IPv4, IPv6 and a floating IP, a block-device mapping with ephemeral and swap,
    tagged devices, pinned CPUs and instance tags served in the EC2 tree."""
    address = instance_address(n)
    net = ".".join(address.split(".")[:3])
    return sample_document(
        n,
        kernel_id="aki-00000001",
        ramdisk_id="ari-00000002",
        security_groups=["default", "web"],
        block_device_mapping={"ami": "vda", "root": "/dev/vda", "ephemeral0": "vdb", "swap": "vdc"},
        keys=[
            {"name": "k1", "type": "ssh", "data": f"ssh-ed25519 AAAAfirst{n} k1"},
            {"name": "k2", "type": "ssh", "data": f"ssh-rsa AAAAsecond{n} k2"},
        ],
        ports=[
            {
                "id": f"port-{n}-aaaaaaaa-0",
                "mac": f"fa:16:3e:aa:00:{n & 255:02x}",
                "network_id": "net-1",
                "mtu": 1450,
                "fixed_ips": [
                    {
                        "address": address,
                        "cidr": f"{net}.0/24",
                        "gateway": f"{net}.254",
                        "dns": ["10.255.0.2"],
                    },
                    {
                        "address": f"fd00:{n:x}::5",
                        "cidr": f"fd00:{n:x}::/64",
                        "gateway": f"fd00:{n:x}::1",
                    },
                ],
                "floating_ips": [f"203.0.113.{n & 255}"],
            },
            {
                "id": f"port-{n}-bbbbbbbb-1",
                "mac": f"fa:16:3e:bb:00:{n & 255:02x}",
                "network_id": "net-2",
                "mtu": 9000,
                "fixed_ips": [
                    {"address": f"192.168.{n & 255}.7", "cidr": f"192.168.{n & 255}.0/24"},
                    {"address": f"fd01:{n:x}::7", "cidr": f"fd01:{n:x}::/64", "mode": "slaac"},
                ],
                "floating_ips": [f"198.51.100.{n & 255}"],
            },
        ],
        devices=[
            {
                "type": "nic",
                "bus": "pci",
                "address": "0000:00:03.0",
                "mac": f"fa:16:3e:aa:00:{n & 255:02x}",
                "tags": ["uplink"],
                "vlan": 101,
                "vf_trusted": True,
            }
        ],
        dedicated_cpus=[2, 3],
        tags={"Name": f"web-{n}", "team": "infra"},
        instance_metadata_tags=True,
    )


def minimal_document(n: int) -> dict[str, Any]:
    """No keys, no ports (so no address: reach it with signed headers), no user data."""
    doc = sample_document(n, keys=[], ports=[], metadata={}, vendor_data={})
    del doc["user_data"]
    return doc


@dataclass
class RawResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes = b""


async def raw_request(
    client: Any,
    method: str,
    target: bytes | str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> RawResponse:
    """One request written byte for byte: the client library would normalise `//`, `.`
    and `..` away before the server saw them."""
    if isinstance(target, str):
        target = target.encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        b"Host: 169.254.169.254",
        b"Connection: close",
        b"Content-Length: " + str(len(body)).encode(),
    ]
    lines += [f"{k}: {v}".encode("utf-8", "surrogateescape") for k, v in headers or []]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed.add(name.strip(), value.strip())
    return RawResponse(int(status_line.split()[1]), parsed, rest)


@dataclass
class Crawl:
    """What a crawl found: leaf path -> body, directory path -> listed names."""

    leaves: dict[str, bytes] = field(default_factory=dict)
    directories: dict[str, list[str]] = field(default_factory=dict)
    content_types: dict[str, str] = field(default_factory=dict)


async def crawl(client: Any, path: str, headers: dict[str, str]) -> Crawl:
    """Follow every listed name below `path` (which ends in /), failing on anything but 200.

    `0=name` entries are rewritten to `0/`, as cloud-init does with public-keys."""
    found = Crawl()
    pending = [path]
    while pending:
        directory = pending.pop()
        response = await client.get(directory, headers=headers)
        body = await response.read()
        assert response.status == 200, (directory, response.status, body)
        found.content_types[directory] = response.headers["Content-Type"]
        names = body.decode().split("\n") if body else []
        assert names, f"{directory} is an empty listing"
        found.directories[directory] = names
        for name in names:
            assert name and name == name.strip(), (directory, names)
            if "=" in name:
                name = name.split("=", 1)[0] + "/"
            if name.endswith("/"):
                pending.append(directory + name)
                continue
            leaf = await client.get(directory + name, headers=headers)
            assert leaf.status == 200, (directory + name, leaf.status)
            found.leaves[directory + name] = await leaf.read()
            found.content_types[directory + name] = leaf.headers["Content-Type"]
    return found


def user_data_of(doc: dict[str, Any]) -> bytes:
    return base64.b64decode(doc["user_data"])


def signed_headers(doc: dict[str, Any], secret: str) -> dict[str, str]:
    """Headers as Neutron's metadata proxy sends them for this instance."""
    from metadata.guest.identify import sign

    return {
        "X-Instance-ID": doc["uuid"],
        "X-Tenant-ID": doc["project_id"],
        "X-Instance-ID-Signature": sign(secret, doc["uuid"]),
    }
