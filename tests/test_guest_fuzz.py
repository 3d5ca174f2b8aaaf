"""Random paths, methods and headers sent to the guest app never get a 5xx."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metadata.admin.routes import build_admin_app
from metadata.app import build_guest_app
from metadata.config import Settings
from metadata.services import Services
from tests.conftest import ADMIN_TOKEN, PROXY_SECRET
from tests.documents import instance_address, sample_document
from tests.guest_http import full_document

SEGMENTS = [
    "latest",
    "openstack",
    "ec2",
    "meta-data",
    "user-data",
    "meta_data.json",
    "password",
    "public-keys",
    "0",
    "0=k1",
    "openssh-key",
    "placement",
    "network",
    "interfaces",
    "macs",
    "2009-04-04",
    "1.0",
    "2013-04-04",
    "..",
    ".",
    "",
    "%2F",
    "%2e%2e",
    "%00",
    "%ff",
    "%",
    "%zz",
    "é",
    "\u2028",
    "a" * 3000,
    "block-device-mapping",
    "fa:16:3e:aa:00:05",
    "dynamic",
]
HEADER_NAMES = [
    "X-Forwarded-For",
    "X-Instance-ID",
    "X-Tenant-ID",
    "X-Instance-ID-Signature",
    "X-aws-ec2-metadata-token",
    "X-aws-ec2-metadata-token-ttl-seconds",
    "Content-Length",
    "Transfer-Encoding",
    "Host",
    "X-Other",
]
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            instance_address(5),
            instance_address(6),
            "::ffff:10.0.0.5",
            f"{instance_address(5)}, 127.0.0.1",
            "garbage",
            "",
            "0" * 64,
            sample_document(5)["uuid"],
            "project-5",
            "-1",
            "99999999999999999999",
            "1," * 40,
            "chunked",
        ]
    ),
    st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
        max_size=80,
    ),
)
METHODS = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=10),
)


class Server:
    """The guest and admin apps on an event loop of their own, for a synchronous test."""

    def __init__(self, database: Path) -> None:
        self.settings = Settings(
            database_url=f"sqlite+aiosqlite:///{database}",
            admin_tokens={"admin": ADMIN_TOKEN},
            admin_token_file=str(database.parent / "admin-token"),
            trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),),
            proxy_shared_secret=PROXY_SECRET,
            rate_limit=None,
        )
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stop: asyncio.Event | None = None
        self.ports: list[int] = []
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self.run(),))

    async def run(self) -> None:
        self.stop = asyncio.Event()
        async with Services.open(self.settings) as services:
            runners = []
            for app in (build_guest_app(services), build_admin_app(services)):
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.SockSite(runner, self._socket())
                await site.start()
                runners.append(runner)
            self.ready.set()
            await self.stop.wait()
            for runner in runners:
                await runner.cleanup()

    def _socket(self) -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.ports.append(sock.getsockname()[1])
        return sock

    def __enter__(self) -> Server:
        self.thread.start()
        assert self.ready.wait(20)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.stop is not None
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(20)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("fuzz") / "metadata.db") as running:
        for doc in (full_document(5), sample_document(6)):
            admin = http.client.HTTPConnection("127.0.0.1", running.ports[1], timeout=10)
            admin.request(
                "PUT",
                f"/v1/instances/{doc['uuid']}",
                json.dumps(doc),
                {"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert admin.getresponse().status in (200, 201)
            admin.close()
        yield running


def send(port: int, method: str, target: bytes, headers: list[tuple[str, str]]) -> int:
    """Write the request byte for byte and read the status line."""
    lines = [
        method.encode() + b" " + target + b" HTTP/1.1",
        b"Host: 169.254.169.254",
        b"Connection: close",
    ]
    lines += [f"{k}: {v}".encode() for k, v in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1."), data[:100]
    return int(data.split(b" ", 2)[1])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=METHODS,
    segments=st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=20)), max_size=8),
    trailing_slash=st.booleans(),
    headers=st.lists(st.tuples(st.sampled_from(HEADER_NAMES), HEADER_VALUES), max_size=5),
)
def test_random_requests_never_get_a_server_error(
    server: Server,
    method: str,
    segments: list[str],
    trailing_slash: bool,
    headers: list[tuple[str, str]],
) -> None:
    path = "/" + "/".join(segments) + ("/" if trailing_slash else "")
    # Bytes a client could put on the wire: spaces and controls would end the request line.
    target = "".join(c if c > " " and c != "\x7f" else "%20" for c in path).encode("utf-8")
    headers = [(k, v) for k, v in headers if k not in ("Content-Length", "Transfer-Encoding")]
    status = send(server.ports[0], method, target, headers)
    assert status < 500, (method, target, headers)


@settings(max_examples=100, deadline=None)
@given(path=st.text(max_size=60), value=HEADER_VALUES)
def test_forwarded_for_values_never_get_a_server_error(
    server: Server, path: str, value: str
) -> None:
    target = "/latest/meta-data/" + "".join(c if c > " " and c != "\x7f" else "_" for c in path)
    status = send(server.ports[0], "GET", target.encode(), [("X-Forwarded-For", value)])
    assert status < 500, (target, value)


def test_the_fuzz_server_answers_an_identified_guest(server: Server) -> None:
    status = send(
        server.ports[0],
        "GET",
        b"/latest/meta-data/instance-id",
        [("X-Forwarded-For", instance_address(5))],
    )
    assert status == 200
