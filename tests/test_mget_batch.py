"""GETs of one event-loop tick share one MGET against the real Redis, each caller gets its
own values, and a failure reaches every caller of the batch."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from metadata.mget_batch import BatchedGet
from tests import backends

pytestmark = pytest.mark.redis


@pytest.fixture
async def client() -> AsyncIterator[Any]:
    backends.require_redis()
    redis = aioredis.Redis(host=backends.REDIS_HOST, port=backends.REDIS_PORT)
    yield redis
    await redis.aclose()


@pytest.fixture
async def prefix(client: Any) -> AsyncIterator[str]:
    name = f"test-mget-{uuid.uuid4().hex}:"
    yield name
    keys = [key async for key in client.scan_iter(f"{name}*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=[False, True], ids=["client", "own-connection"])
def own(request: pytest.FixtureRequest) -> bool:
    """Through the client's commands, or on a connection of its pool kept for the batcher."""
    own_connection: bool = request.param
    return own_connection


async def test_the_gets_of_one_tick_share_one_round_trip(
    client: Any, prefix: str, own: bool
) -> None:
    await client.mset({f"{prefix}{n}": str(n) for n in range(40)})
    gets = BatchedGet(client, own_connection=own)
    answers = await asyncio.gather(
        *(gets.get(f"{prefix}{n}", f"{prefix}absent-{n}") for n in range(40))
    )
    assert answers == [[str(n).encode(), None] for n in range(40)]
    assert gets.round_trips == 1


async def test_a_get_reads_what_was_written_before_it_was_asked(
    client: Any, prefix: str, own: bool
) -> None:
    gets = BatchedGet(client, own_connection=own)
    for generation in range(1, 4):
        await client.set(f"{prefix}g", generation)
        assert await gets.get(f"{prefix}g") == [str(generation).encode()]
    assert gets.round_trips == 3
    await gets.close()


async def test_the_own_connection_is_replaced_after_redis_dropped_it(
    client: Any, prefix: str
) -> None:
    await client.set(f"{prefix}g", 1)
    name = f"test-mget-{uuid.uuid4().hex}"
    named = aioredis.Redis(host=backends.REDIS_HOST, port=backends.REDIS_PORT, client_name=name)
    gets = BatchedGet(named, own_connection=True)
    try:
        assert await gets.get(f"{prefix}g") == [b"1"]
        for entry in await client.client_list():
            if entry["name"] == name:
                await client.client_kill_filter(_id=entry["id"])  # Redis drops it
        with pytest.raises(aioredis.ConnectionError):
            await gets.get(f"{prefix}g")
        assert await gets.get(f"{prefix}g") == [b"1"]  # a new connection, not the broken one
    finally:
        await gets.close()
        await named.aclose()


async def test_a_failed_round_trip_reaches_every_caller_of_its_batch(own: bool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    dead = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    gets = BatchedGet(dead, own_connection=own)
    try:
        results = await asyncio.gather(*(gets.get("k") for _ in range(5)), return_exceptions=True)
    finally:
        await gets.close()
        await dead.aclose()
    assert all(isinstance(r, aioredis.ConnectionError) for r in results), results
    assert gets.round_trips == 1


class HeldAnswers:
    """The real client, whose MGET answers are held back (read, then kept until `release`):
    an MGET on its way, deterministically."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.released = asyncio.Event()
        self.first_read = asyncio.Event()
        self.sent: list[tuple[str, ...]] = []

    async def mget(self, *keys: str) -> Any:
        self.sent.append(keys)
        values = await self.client.mget(*keys)
        self.first_read.set()
        await self.released.wait()
        return values


async def test_gets_asked_while_an_mget_is_on_its_way_share_the_next_which_reads_later(
    client: Any, prefix: str
) -> None:
    await client.set(f"{prefix}g", 1)
    held = HeldAnswers(client)
    gets = BatchedGet(held)
    first = asyncio.ensure_future(gets.get(f"{prefix}g"))
    await held.first_read.wait()
    await client.set(f"{prefix}g", 2)  # written after the first MGET read, before these ask
    later = [asyncio.ensure_future(gets.get(f"{prefix}g")) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert len(held.sent) == 1  # nothing else is sent while one MGET is on its way
    held.released.set()
    assert await first == [b"1"]
    assert await asyncio.gather(*later) == [[b"2"]] * 5
    assert held.sent == [(f"{prefix}g",), (f"{prefix}g",) * 5]
    assert gets.round_trips == 2
