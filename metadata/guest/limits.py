"""Limits that keep one guest from starving the others: a token bucket per instance, a
global bound on guest requests in flight (boot-critical requests first: which paths are is
said by their rows in the tree, `Leaf.boot_critical`), and request sizes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from metadata.config import RateLimit
from metadata.errors import (
    HeadersTooLarge,
    TooManyRequests,
    URITooLong,
)
from metadata.lru import LRU

# Passed to the guest listener's low-level `web.Server`. aiohttp refuses longer lines and
# fields itself (400) before a handler runs; idle keep-alive connections are closed after
# 15 s, so a guest cannot hold sockets open for free.
GUEST_SERVER_LIMITS: dict[str, Any] = {
    "max_line_size": 4096,
    "max_field_size": 4096,
    "max_headers": 64,
    "keepalive_timeout": 15.0,
}
# The longest metadata path is well under 200 bytes; beyond this nothing can match.
MAX_PATH_BYTES = 1024
# Guests send a handful of headers; a proxy adds a few more.
MAX_HEADERS = 48
# How long a request may wait for a slot before it is turned away: under botocore's 1 s.
MAX_QUEUE_WAIT = 0.25


def check_request_size(request: web.BaseRequest) -> None:
    if len(request.raw_path) > MAX_PATH_BYTES:
        raise URITooLong(f"the path is over {MAX_PATH_BYTES} bytes")
    if len(request.headers) > MAX_HEADERS:
        raise HeadersTooLarge(f"more than {MAX_HEADERS} headers")


class RateLimiter:
    """One token bucket per instance. Keys are resolved instance uuids, so the table is
    bounded by the instances that exist (and by `max_entries`: a forgotten bucket is full)."""

    def __init__(
        self, limit: RateLimit, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = limit.rate
        self.burst = float(limit.burst)
        self._clock = clock
        self._buckets: LRU[str, tuple[float, float]] = LRU(max_entries)

    def admit(self, key: str) -> None:
        """Take one token from `key`'s bucket, or raise TooManyRequests (nothing is taken)."""
        now = self._clock()
        bucket = self._buckets.get(key)
        tokens = self.burst
        if bucket is not None:
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        if tokens < 1.0:
            raise TooManyRequests(max(1, math.ceil((1.0 - tokens) / self.rate)))
        self._buckets.set(key, (tokens - 1.0, now))


class Overloaded(Exception):
    pass


class ConcurrencyGate:
    """At most `limit` guest requests in flight. Ordinary requests may use all but a
    reserve; boot-critical ones may use the reserve too and are woken first when a slot
    frees. A request that gets no slot within MAX_QUEUE_WAIT is turned away."""

    def __init__(self, limit: int, max_wait: float = MAX_QUEUE_WAIT) -> None:
        self.limit = limit
        self.ordinary_limit = max(1, limit - max(1, limit // 8)) if limit > 1 else 1
        self.max_wait = max_wait
        self.in_flight = 0
        self._critical: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        """A slot at once if one is free for any request and nobody queues: the common case
        costs no coroutine."""
        if self.in_flight < self.ordinary_limit and not self._ordinary and not self._critical:
            self.in_flight += 1
            return True
        return False

    async def acquire(self, critical: bool) -> None:
        bound = self.limit if critical else self.ordinary_limit
        queue = self._critical if critical else self._ordinary
        if self.in_flight < bound and not queue:
            self.in_flight += 1
            return
        if len(queue) >= self.limit:
            raise Overloaded
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.max_wait)
        except TimeoutError:
            self._give_up(waiter, queue)
            raise Overloaded from None
        except asyncio.CancelledError:
            self._give_up(waiter, queue)
            raise

    def _give_up(self, waiter: asyncio.Future[None], queue: deque[asyncio.Future[None]]) -> None:
        if waiter.done() and not waiter.cancelled():
            self.release()  # the slot was handed over just as we gave up
        else:
            waiter.cancel()
            if waiter in queue:
                queue.remove(waiter)

    def release(self) -> None:
        self.in_flight -= 1
        self._hand_over()

    def _hand_over(self) -> None:
        for queue, bound in ((self._critical, self.limit), (self._ordinary, self.ordinary_limit)):
            while queue and self.in_flight < bound:
                waiter = queue.popleft()
                if not waiter.done():
                    self.in_flight += 1
                    waiter.set_result(None)
