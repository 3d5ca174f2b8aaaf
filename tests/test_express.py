"""The express lane (metadata/guest/express.py, protocol.py): warm reads answered inside the
connection protocol, byte for byte what the full chain answers, in order, with every check
of the full chain, and never after a change."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from metadata.config import RateLimit
from metadata.services import Services
from tests import backends
from tests.conftest import PROXY_SECRET
from tests.documents import guest_headers, instance_address, sample_document
from tests.guest_http import GuestTestServer

LEAF = "/latest/meta-data/local-ipv4"
OTHER = "/latest/meta-data/hostname"


def signed(uuid: str, tenant: str) -> dict[str, str]:
    signature = hmac.new(PROXY_SECRET.encode(), uuid.encode(), hashlib.sha256).hexdigest()
    return {"X-Instance-ID": uuid, "X-Tenant-ID": tenant, "X-Instance-ID-Signature": signature}


class Raw:
    """One keep-alive connection speaking HTTP/1.1 by hand: requests may be pipelined."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @staticmethod
    def request(path: str, headers: dict[str, str], method: str = "GET") -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: 169.254.169.254"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, *requests: bytes) -> None:
        self.writer.write(b"".join(requests))
        await self.writer.drain()

    async def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        headers = dict(line.split(": ", 1) for line in header_lines)
        length = 0 if head_only else int(headers.get("Content-Length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10)
        return int(status_line.split()[1]), headers, body

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        await self.send(self.request(path, headers))
        return await self.response()


@pytest.fixture(params=["memory", "redis"])
def coherence(request: pytest.FixtureRequest) -> str:
    """Every test on both coherences: who is asking known at once, or after Redis's round
    trip (a Redis database of this test process's own, emptied first)."""
    if request.param == "memory":
        return "memory://"
    url = backends.require_redis()
    db = 1 + (os.getpid() + 11) % 15
    backends.flush_redis(db)
    return f"{url.rsplit('/', 1)[0]}/{db}"


@pytest.fixture
def overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings_overrides(coherence: str, overrides: dict[str, Any]) -> dict[str, Any]:
    return {"cache_url": coherence} | overrides


@pytest.fixture
async def server(services: Services) -> AsyncIterator[GuestTestServer]:
    server = GuestTestServer(services)
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def raw(server: GuestTestServer) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    yield Raw(reader, writer)
    writer.close()


def answered(server: GuestTestServer) -> int:
    count: int = server.guest_server.lane.answered
    return count


def first_read_by_lane(coherence: str) -> int:
    """With memory:// a new caller's first request is identified and answered in the lane
    too (identity's read started there); with Redis it takes the full chain."""
    return 0 if coherence.startswith("redis") else 1


# Makes a request take the full chain; no leaf's ETag is this, so it answers 200 in full.
FULL_CHAIN = {"If-None-Match": '"no-such-tag"'}


async def test_a_warm_read_takes_the_lane_and_answers_what_the_full_chain_did(
    server: GuestTestServer, raw: Raw, put_instance: Any, coherence: str
) -> None:
    await put_instance(sample_document(1))
    headers = guest_headers(1)
    cold = await raw.get(LEAF, headers)
    first = first_read_by_lane(coherence)
    assert answered(server) == first
    full = await raw.get(LEAF, headers | FULL_CHAIN)
    assert answered(server) == first
    warm = await raw.get(LEAF, headers)
    assert answered(server) == first + 1
    for other in (cold, full):
        assert warm[0] == other[0] == 200
        assert warm[2] == other[2] == instance_address(1).encode()
        # the same headers, in the same order, but for the time of day
        assert list(warm[1]) == list(other[1])
        assert {k: v for k, v in warm[1].items() if k != "Date"} == {
            k: v for k, v in other[1].items() if k != "Date"
        }


async def test_signed_headers_take_the_lane_once_their_signature_was_verified(
    server: GuestTestServer, raw: Raw, put_instance: Any, coherence: str
) -> None:
    doc = await put_instance(sample_document(2))
    good = signed(doc["uuid"], doc["project_id"])
    assert (await raw.get(LEAF, good))[0] == 200
    assert (await raw.get(LEAF, good))[2] == instance_address(2).encode()
    lane = first_read_by_lane(coherence) + 1
    assert answered(server) == lane
    # a forged signature or another tenant is never answered by the lane
    forged = good | {"X-Instance-ID-Signature": "0" * 64}
    assert (await raw.get(LEAF, forged))[0] == 403
    assert (await raw.get(LEAF, good | {"X-Tenant-ID": "someone-else"}))[0] == 404
    assert answered(server) == lane


async def test_pipelined_requests_are_answered_in_order_whichever_way_each_goes(
    server: GuestTestServer, raw: Raw, put_instance: Any
) -> None:
    await put_instance(sample_document(3))
    headers = guest_headers(3)
    hostname = (await raw.get(OTHER, headers))[2]
    assert (await raw.get(LEAF, headers))[0] == 200
    before = answered(server)
    await raw.send(
        raw.request(LEAF, headers),
        raw.request("/latest/meta-data/no-such-leaf", headers),
        raw.request(OTHER, headers),
        raw.request(LEAF, headers, method="HEAD"),
        raw.request(LEAF, headers),
    )
    results = [await raw.response() for _ in range(3)]
    results.append(await raw.response(head_only=True))
    results.append(await raw.response())
    assert [status for status, _, _ in results] == [200, 404, 200, 200, 200]
    assert results[0][2] == results[4][2] == instance_address(3).encode()
    assert results[2][2] == hostname
    # only the leading warm read took the lane: the rest queued behind the 404, in order
    assert answered(server) == before + 1
    assert (await raw.get(LEAF, headers))[0] == 200
    assert answered(server) == before + 2


async def test_a_write_is_served_at_once_not_the_answer_of_before(
    server: GuestTestServer, raw: Raw, put_instance: Any, admin: TestClient[Any, Any]
) -> None:
    doc = await put_instance(sample_document(4))
    headers = guest_headers(4)
    path = "/latest/user-data"
    first = await raw.get(path, headers)
    assert (await raw.get(path, headers))[2] == first[2]
    lane = answered(server)
    response = await admin.put(f"/v1/instances/{doc['uuid']}/user-data", data=b"#!/bin/sh\nnew")
    assert response.status in (200, 204), await response.text()
    status, reply_headers, body = await raw.get(path, headers)
    assert (status, body) == (200, b"#!/bin/sh\nnew")
    assert reply_headers["ETag"] != first[1]["ETag"]
    assert answered(server) == lane
    assert (await raw.get(path, headers))[2] == b"#!/bin/sh\nnew"
    assert answered(server) == lane + 1


async def test_conditional_reads_and_the_seed_are_as_the_full_chain_answers(
    server: GuestTestServer, raw: Raw, put_instance: Any
) -> None:
    await put_instance(sample_document(5))
    headers = guest_headers(5)
    tag = (await raw.get("/latest/user-data", headers))[1]["ETag"]
    assert (await raw.get("/latest/user-data", headers | {"If-None-Match": tag}))[0] == 304
    path = "/openstack/latest/meta_data.json"
    seeds = {(await raw.get(path, headers))[2] for _ in range(3)}
    assert len(seeds) == 3  # a new random_seed every time, through the lane too
    assert answered(server) >= 2


async def test_the_stats_count_lane_answers_as_cache_hits(
    server: GuestTestServer,
    raw: Raw,
    put_instance: Any,
    admin: TestClient[Any, Any],
    coherence: str,
) -> None:
    await put_instance(sample_document(6))
    for _ in range(4):
        assert (await raw.get(LEAF, guest_headers(6)))[0] == 200
    # the first one's statement is counted whichever way it was answered
    assert answered(server) == 3 + first_read_by_lane(coherence)
    rows = await (await admin.get("/v1/stats/paths")).json()
    row = next(r for r in rows["paths"] if r["path"] == "/{version}/meta-data/local-ipv4")
    assert (row["hits"], row["cache_hits"], row["db_statements"]) == (4, 3, 1)


@pytest.mark.parametrize("overrides", [{"token_mode": "required"}], ids=["tokens-required"])
async def test_a_required_token_is_checked_in_the_lane(
    server: GuestTestServer, raw: Raw, put_instance: Any
) -> None:
    await put_instance(sample_document(7))
    headers = guest_headers(7)
    await raw.send(
        raw.request(
            "/latest/api/token", headers | {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, "PUT"
        )
    )
    _, _, token = await raw.response()
    with_token = headers | {"X-aws-ec2-metadata-token": token.decode()}
    assert (await raw.get(LEAF, with_token))[0] == 200
    assert (await raw.get(LEAF, with_token))[0] == 200
    lane = answered(server)
    assert lane >= 1
    assert (await raw.get(LEAF, headers))[0] == 401
    assert (await raw.get(LEAF, headers | {"X-aws-ec2-metadata-token": "x.y"}))[0] == 401
    assert answered(server) == lane


@pytest.mark.parametrize("overrides", [{"rate_limit": RateLimit(0.001, 3)}], ids=["burst-3"])
async def test_the_rate_limit_holds_in_the_lane(
    server: GuestTestServer, raw: Raw, put_instance: Any, coherence: str
) -> None:
    await put_instance(sample_document(8))
    statuses = [(await raw.get(LEAF, guest_headers(8)))[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert answered(server) == 2 + first_read_by_lane(coherence)


BOOT = (
    "/openstack/latest/meta_data.json",
    "/openstack/latest/user_data",
    "/openstack/latest/vendor_data2.json",
    "/openstack/latest/network_data.json",
    "/latest/meta-data/instance-id",
    "/latest/meta-data/local-ipv4",
)


async def test_a_new_instance_boot_is_one_statement_then_the_lane_renders_the_rest(
    server: GuestTestServer, put_instance: Any, admin: TestClient[Any, Any], coherence: str
) -> None:
    async def boot(n: int) -> tuple[list[bytes], int, int]:
        await put_instance(sample_document(n))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        raw = Raw(reader, writer)
        before = (answered(server), await statements(admin))
        bodies = []
        for path in BOOT:
            status, _, body = await raw.get(path, guest_headers(n))
            assert status == 200, path
            bodies.append(body)
        writer.close()
        return bodies, answered(server) - before[0], await statements(admin) - before[1]

    for n in range(20, 24):  # the boot planner learns what a boot goes on to need
        await boot(n)
    bodies, lane, sql = await boot(24)
    # every one, the first identified in the lane, vendor_data2.json's dynamic part (no
    # vendor service configured) derived without I/O; with Redis the slices live there, so
    # the full chain reads them
    rendered_here = 0 if coherence.startswith("redis") else len(BOOT)
    assert (lane, sql) == (rendered_here, 1)
    assert bodies[4] != bodies[5] and bodies[5] == instance_address(24).encode()
    # rendered once: read again, the same bytes from the kept answers
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    again = [(await Raw(reader, writer).get(path, guest_headers(24)))[2] for path in BOOT[1:]]
    writer.close()
    assert again == bodies[1:]


async def statements(admin: TestClient[Any, Any]) -> int:
    rows = await (await admin.get("/v1/stats/paths")).json()
    return sum(int(row["db_statements"]) for row in rows["paths"])


async def test_requests_sent_while_one_waits_for_redis_are_answered_after_it_in_order(
    server: GuestTestServer, raw: Raw, put_instance: Any
) -> None:
    await put_instance(sample_document(9))
    headers = guest_headers(9)
    hostname = (await raw.get(OTHER, headers))[2]
    assert (await raw.get(LEAF, headers))[0] == 200
    for _ in range(3):
        # separate writes: the later ones may arrive while the first waits for its round trip
        await raw.send(raw.request(LEAF, headers))
        await raw.send(raw.request("/latest/meta-data/no-such-leaf", headers))
        await raw.send(raw.request(OTHER, headers))
        got = [await raw.response() for _ in range(3)]
        assert [(status, body) for status, _, body in got][::2] == [
            (200, instance_address(9).encode()),
            (200, hostname),
        ]
        assert got[1][0] == 404


async def boot_at_once(server: GuestTestServer, headers: dict[str, str]) -> list[int]:
    """A boot's requests all sent at once, each on its own connection (a guest's agents)."""
    connections = [await asyncio.open_connection("127.0.0.1", server.port) for _ in BOOT]
    raws = [Raw(reader, writer) for reader, writer in connections]
    for raw, path in zip(raws, BOOT, strict=True):
        raw.writer.write(raw.request(path, headers))
    statuses = [(await raw.response())[0] for raw in raws]
    for raw in raws:
        raw.writer.close()
    return statuses


async def test_a_new_instance_boot_sent_at_once_waits_for_one_read_in_the_lane(
    server: GuestTestServer, raw: Raw, put_instance: Any, services: Services, coherence: str
) -> None:
    for n in range(30, 35):
        await put_instance(sample_document(n))
    for n in range(30, 34):  # the boot planner learns what a boot goes on to need
        for path in BOOT:
            assert (await raw.get(path, guest_headers(n)))[0] == 200
    before = (answered(server), services.db.counter.total)
    assert await boot_at_once(server, guest_headers(34)) == [200] * len(BOOT)
    lane, sql = answered(server) - before[0], services.db.counter.total - before[1]
    # one read, started in the lane by the first request, which the others waited for
    expected = 0 if coherence.startswith("redis") else len(BOOT)
    assert (lane, sql) == (expected, 1)
    assert (await raw.get(LEAF, guest_headers(34)))[2] == instance_address(34).encode()
    assert services.loader.pending_reads() == 0


async def test_an_unknown_caller_asking_at_once_is_refused_after_one_read(
    server: GuestTestServer, services: Services
) -> None:
    before = services.db.counter.total
    assert await boot_at_once(server, guest_headers(77)) == [404] * len(BOOT)
    # the error of the read the lane started goes with each request to the full chain,
    # which answers it without reading again
    assert services.db.counter.total - before == 1
    assert answered(server) == 0


@pytest.mark.parametrize("overrides", [{"token_mode": "required"}], ids=["tokens-required"])
async def test_a_first_read_refused_after_its_read_still_counts_the_statement(
    server: GuestTestServer, raw: Raw, put_instance: Any, admin: TestClient[Any, Any]
) -> None:
    await put_instance(sample_document(36))
    assert (await raw.get(LEAF, guest_headers(36)))[0] == 401
    rows = await (await admin.get("/v1/stats/paths")).json()
    row = next(r for r in rows["paths"] if r["path"] == "/{version}/meta-data/local-ipv4")
    assert (row["hits"], row["cache_misses"], row["db_statements"], row["errors"]) == (1, 1, 1, 1)
    assert answered(server) == 0


class RecordingTransport(asyncio.Transport):
    """A connection's transport that keeps what is written, and can act on a write."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.on_write: Any = None
        self.closing = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))
        if self.on_write is not None:
            self.on_write, on_write = None, self.on_write
            on_write()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_a_request_arriving_before_aiohttps_loop_waits_again_takes_the_lane(
    server: GuestTestServer, raw: Raw, put_instance: Any
) -> None:
    await put_instance(sample_document(37))
    headers = guest_headers(37)
    for _ in range(2):
        assert (await raw.get(LEAF, headers))[0] == 200
    protocol = server.guest_server()
    transport = RecordingTransport()
    protocol.connection_made(transport)
    loop = asyncio.get_running_loop()
    # The next request comes in just after the full chain wrote its answer, before
    # aiohttp's request loop is back waiting (as on a busy machine).
    transport.on_write = lambda: loop.call_soon(protocol.data_received, Raw.request(LEAF, headers))
    before = answered(server)
    protocol.data_received(Raw.request(LEAF, headers | FULL_CHAIN))
    for _ in range(1000):
        if len(transport.written) >= 2:
            break
        await asyncio.sleep(0)
    assert answered(server) == before + 1
    answers = b"".join(transport.written)
    assert answers.count(b"HTTP/1.1 200 OK") == 2
    assert answers.endswith(instance_address(37).encode())
    transport.close()
    protocol.connection_lost(None)


async def test_version_listings_take_the_lane_with_the_full_chains_bytes(
    server: GuestTestServer, raw: Raw
) -> None:
    for path in ("/", "/openstack", "/openstack/"):
        before = answered(server)
        full = await raw.get(path, FULL_CHAIN)
        assert answered(server) == before
        lane = await raw.get(path, {})
        assert answered(server) == before + 1
        assert lane[0] == full[0] == 200
        assert lane[2] == full[2] and b"latest" in lane[2]
        assert list(lane[1]) == list(full[1])
        assert {k: v for k, v in lane[1].items() if k != "Date"} == {
            k: v for k, v in full[1].items() if k != "Date"
        }


async def test_a_first_read_the_lane_fails_to_render_is_answered_by_the_full_chain(
    server: GuestTestServer,
    raw: Raw,
    put_instance: Any,
    admin: TestClient[Any, Any],
) -> None:
    await put_instance(sample_document(38))
    lane = server.guest_server.lane

    def broken(*_: Any) -> None:
        raise RuntimeError("a rendering bug")

    lane._render_cached = broken
    status, _, body = await raw.get(LEAF, guest_headers(38))
    assert (status, body) == (200, instance_address(38).encode())
    assert answered(server) == 0
    rows = await (await admin.get("/v1/stats/paths")).json()
    row = next(r for r in rows["paths"] if r["path"] == "/{version}/meta-data/local-ipv4")
    assert (row["hits"], row["db_statements"], row["errors"]) == (1, 1, 0)
