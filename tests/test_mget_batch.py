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


async def test_the_gets_of_one_tick_share_one_round_trip(client: Any, prefix: str) -> None:
    await client.mset({f"{prefix}{n}": str(n) for n in range(40)})
    gets = BatchedGet(client)
    answers = await asyncio.gather(
        *(gets.get(f"{prefix}{n}", f"{prefix}absent-{n}") for n in range(40))
    )
    assert answers == [[str(n).encode(), None] for n in range(40)]
    assert gets.round_trips == 1


async def test_a_get_reads_what_was_written_before_it_was_asked(client: Any, prefix: str) -> None:
    gets = BatchedGet(client)
    for generation in range(1, 4):
        await client.set(f"{prefix}g", generation)
        assert await gets.get(f"{prefix}g") == [str(generation).encode()]
    assert gets.round_trips == 3


async def test_a_failed_round_trip_reaches_every_caller_of_its_batch() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once closed
    dead = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    gets = BatchedGet(dead)
    try:
        results = await asyncio.gather(*(gets.get("k") for _ in range(5)), return_exceptions=True)
    finally:
        await dead.aclose()
    assert all(isinstance(r, aioredis.ConnectionError) for r in results), results
    assert gets.round_trips == 1
