"""Graceful shutdown of `metadata serve`: on SIGTERM the listeners stop accepting, requests
already accepted are answered within `shutdown_grace`, and the process exits 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.documents import guest_headers, sample_document
from tests.servers import free_port

ADMIN_TOKEN = "shutdown-test-admin-token-0123"
GRACE = 5.0
# Load bounds: never more than this many requests, nor longer than this many seconds.
MAX_REQUESTS = 2000
MAX_LOAD_SECONDS = 10.0
CLIENTS = 8


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    guest_url: str
    admin_url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def grace() -> float:
    """METADATA_SHUTDOWN_GRACE of the server; a test may parametrize it."""
    return GRACE


@pytest.fixture
def server(tmp_path: Path, grace: float) -> Iterator[Server]:
    guest_port, admin_port = free_port(), free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("METADATA_")}
    environ |= {
        "METADATA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/metadata.db",
        "METADATA_LISTEN": f"127.0.0.1:{guest_port}",
        "METADATA_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        "METADATA_ADMIN_TOKEN": ADMIN_TOKEN,
        "METADATA_TRUSTED_PROXIES": "127.0.0.0/8",
        "METADATA_RATE_LIMIT": "off",
        "METADATA_SHUTDOWN_GRACE": str(grace),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "metadata", "serve"],
            env=environ,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = Server(
        process, f"http://127.0.0.1:{guest_port}", f"http://127.0.0.1:{admin_port}", log
    )
    try:
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def wait_until_healthy(server: Server, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            assert server.process.poll() is None, server.output()
            try:
                async with session.get(server.admin_url + "/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail(f"server not healthy within {within}s:\n{server.output()}")


@pytest.fixture
async def admin(server: Server) -> AsyncIterator[aiohttp.ClientSession]:
    await wait_until_healthy(server)
    async with aiohttp.ClientSession(
        server.admin_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=aiohttp.ClientTimeout(total=10),
    ) as session:
        yield session


async def seed_instance(admin: aiohttp.ClientSession, n: int) -> str:
    doc = sample_document(n)
    async with admin.put(f"/v1/instances/{doc['uuid']}", json=doc) as response:
        assert response.status == 201, await response.text()
        stored = await response.json()
    ec2_id: str = stored["ec2_id"]
    return ec2_id


async def wait_for_exit(process: subprocess.Popen[bytes], within: float) -> int | None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (code := process.poll()) is not None:
            return code
        await asyncio.sleep(0.01)
    return process.poll()


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    ok_after_sigterm: int = 0
    wrong_status: Counter[int] = field(default_factory=Counter)
    wrong_body: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    # Set once a quarter of the budget is answered: the moment to send SIGTERM.
    mid_load: asyncio.Event = field(default_factory=asyncio.Event)


async def guest_client(
    url: str, expected: bytes, tally: Tally, sigterm_sent: asyncio.Event, deadline: float
) -> None:
    """One keep-alive client reading instance-id until refused, out of budget or out of time.

    aiohttp retries an idempotent request once on a fresh connection when the server closed an
    idle keep-alive one (RFC 9112 §9.3.1): such a retry meets the closed listener as refused.
    """
    timeout = aiohttp.ClientTimeout(total=GRACE + 5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while tally.sent < MAX_REQUESTS and time.monotonic() < deadline:
            tally.sent += 1
            try:
                async with session.get(url, headers=guest_headers(1)) as response:
                    body = await response.read()
            except aiohttp.ClientConnectorError:
                tally.refused += 1
                return
            except (aiohttp.ClientError, TimeoutError) as exc:
                tally.failures.append(repr(exc))
                return
            if response.status != 200:
                tally.wrong_status[response.status] += 1
            elif body != expected:
                tally.wrong_body += 1
            else:
                tally.ok += 1
                tally.ok_after_sigterm += sigterm_sent.is_set()
                if tally.ok >= MAX_REQUESTS // 4:
                    tally.mid_load.set()


async def test_sigterm_under_load_answers_every_accepted_request_and_exits_0(
    server: Server, admin: aiohttp.ClientSession
) -> None:
    ec2_id = await seed_instance(admin, 1)
    tally = Tally()
    sigterm_sent = asyncio.Event()
    deadline = time.monotonic() + MAX_LOAD_SECONDS
    url = server.guest_url + "/latest/meta-data/instance-id"
    clients = [
        asyncio.create_task(guest_client(url, ec2_id.encode(), tally, sigterm_sent, deadline))
        for _ in range(CLIENTS)
    ]
    # Mid-load: once a quarter of the budget is answered (or a second has passed).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.mid_load.wait(), timeout=1.0)
    ok_before_sigterm = tally.ok
    server.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    sigterm_sent.set()

    code = await wait_for_exit(server.process, GRACE + 5)
    exit_seconds = time.monotonic() - signalled_at
    await asyncio.wait_for(asyncio.gather(*clients), timeout=GRACE + 10)

    print(
        f"\nrequests sent {tally.sent}, answered 200 {tally.ok} "
        f"({ok_before_sigterm} before SIGTERM, {tally.ok_after_sigterm} after), "
        f"refused after stop {tally.refused}, failures {len(tally.failures)}, "
        f"exit {code} after {exit_seconds:.3f}s"
    )
    assert ok_before_sigterm > 0, server.output()
    assert tally.wrong_status == Counter(), server.output()
    assert tally.wrong_body == 0
    assert tally.failures == [], server.output()
    # Every client ended by meeting the closed listener, or ran out of budget.
    assert tally.refused == CLIENTS or tally.sent >= MAX_REQUESTS
    assert code == 0, server.output()
    assert exit_seconds < GRACE
    assert "stopping: no new connections" in server.output()
    assert "Traceback" not in server.output()


async def trickled_user_data_put(
    admin: aiohttp.ClientSession, uuid: str, chunks: int, pause: float, started: asyncio.Event
) -> int:
    """A PUT whose body arrives over chunks * pause seconds: in flight for that long."""

    async def body() -> AsyncIterator[bytes]:
        for i in range(chunks):
            yield f"line {i}\n".encode()
            started.set()
            await asyncio.sleep(pause)

    async with admin.put(f"/v1/instances/{uuid}/user-data", data=body()) as response:
        return response.status


async def test_a_slow_request_in_flight_at_sigterm_is_answered_before_exit(
    server: Server, admin: aiohttp.ClientSession
) -> None:
    uuid = sample_document(2)["uuid"]
    await seed_instance(admin, 2)
    started = asyncio.Event()
    put = asyncio.create_task(trickled_user_data_put(admin, uuid, 10, 0.15, started))
    await asyncio.wait_for(started.wait(), timeout=5)
    await asyncio.sleep(0.2)
    server.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()

    status = await asyncio.wait_for(put, timeout=GRACE + 5)
    code = await wait_for_exit(server.process, GRACE + 5)

    assert status == 204, server.output()
    assert code == 0, server.output()
    assert time.monotonic() - signalled_at < GRACE


@pytest.mark.parametrize("grace", [2.0])
async def test_a_request_outlasting_the_grace_is_cut_off_and_the_process_still_exits_0(
    server: Server, admin: aiohttp.ClientSession, grace: float
) -> None:
    uuid = sample_document(3)["uuid"]
    await seed_instance(admin, 3)
    started = asyncio.Event()
    # The body would take 4 * grace seconds to arrive.
    put = asyncio.create_task(trickled_user_data_put(admin, uuid, 40, grace / 10, started))
    await asyncio.wait_for(started.wait(), timeout=5)
    server.process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()

    code = await wait_for_exit(server.process, grace + 10)
    exit_seconds = time.monotonic() - signalled_at
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(put, timeout=5)

    assert code == 0, server.output()
    # The grace, then at most 1 s (LEFTOVER_TIMEOUT) for aiohttp to cancel the straggler,
    # then the interpreter's exit (over a second on a loaded two-core machine).
    assert grace - 0.5 <= exit_seconds < grace + 4
    assert "1 requests still in flight after 2s: cancelling them" in server.output()
