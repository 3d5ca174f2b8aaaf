"""Guests waiting for their user data to change (`?wait_for_change=true`, as GCP's metadata
server offers): one asyncio future per instance, woken by this process's writes and, across
replicas, by the Redis channel every committed write is published on.

A waiter holds no database connection: it reads the current ETag (one statement, the
connection returned at once), then awaits the future; each wake-up reads again and
compares. Spurious wake-ups (another field of the instance changed) cost one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from metadata.coherence import EVENTS_CHANNEL
from metadata.errors import BadRequest, ServiceUnavailable
from metadata.store.events import WriteEvent
from metadata.user_data_versions import normalise_etag

log = logging.getLogger(__name__)
# Seconds between attempts to (re)subscribe after Redis failed.
RESUBSCRIBE_AFTER = 1.0
# What the ETag reader answers when there is no user data (`last_etag=` empty names it
# too), and once the instance is gone (no ETag equals it, so a waiter ends).
ABSENT = '""'
GONE = "gone"


@dataclass(frozen=True, slots=True)
class WaitRequest:
    """`last_etag` None: wait for the next change from whatever is current now."""

    last_etag: str | None
    timeout: float


def parse_wait(query: Mapping[str, str], default: float, maximum: float) -> WaitRequest | None:
    """The wait a guest asks for, or None; timeout_sec above the maximum is cut to it."""
    if query.get("wait_for_change", "").lower() != "true":
        return None
    timeout = default
    if (text := query.get("timeout_sec")) is not None:
        try:
            timeout = float(text)
        except ValueError:
            raise BadRequest("timeout_sec must be a number of seconds") from None
        if not 0 <= timeout < float("inf"):
            raise BadRequest("timeout_sec must be a non-negative number of seconds")
    last = query.get("last_etag")
    return WaitRequest(None if last is None else normalise_etag(last), min(timeout, maximum))


class Waiters:
    """Who waits on which instance, bounded per instance and in all."""

    def __init__(self, max_per_instance: int, max_total: int) -> None:
        self.max_per_instance = max_per_instance
        self.max_total = max_total
        self.total = 0
        self._counts: dict[str, int] = {}
        # One future per instance that has waiters, replaced each time it is woken.
        self._signals: dict[str, asyncio.Future[None]] = {}

    def waiting(self, uuid: str) -> int:
        return self._counts.get(uuid, 0)

    @contextlib.contextmanager
    def slot(self, uuid: str) -> Iterator[None]:
        count = self._counts.get(uuid, 0)
        if count >= self.max_per_instance or self.total >= self.max_total:
            raise ServiceUnavailable("too many guests waiting for a change; retry")
        self._counts[uuid] = count + 1
        self.total += 1
        try:
            yield
        finally:
            self.total -= 1
            if self._counts[uuid] == 1:
                del self._counts[uuid]
                self._signals.pop(uuid, None)
            else:
                self._counts[uuid] -= 1

    def signal(self, uuid: str) -> asyncio.Future[None]:
        """The future the next change of `uuid` completes; take it before reading."""
        future = self._signals.get(uuid)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._signals[uuid] = future
        return future

    def notify(self, uuid: str) -> None:
        future = self._signals.pop(uuid, None)
        if future is not None and not future.done():
            future.set_result(None)

    def notify_all(self) -> None:
        for uuid in list(self._signals):
            self.notify(uuid)

    async def written(self, event: WriteEvent) -> None:
        """The store's write listener: this process's own writes wake its waiters."""
        self.notify(event.uuid)


async def wait_for_change(
    waiters: Waiters, uuid: str, wait: WaitRequest, current_etag: Callable[[], Awaitable[str]]
) -> None:
    """Return once `current_etag()` differs from `wait.last_etag` (or, with none given, from
    what it was at the start), or after `wait.timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait.timeout
    last = wait.last_etag
    with waiters.slot(uuid):
        while True:
            # Taken before the read: a write that commits after the read completes it.
            signal = waiters.signal(uuid)
            etag = await current_etag()
            if etag == GONE:
                return
            if last is None:
                last = etag
            elif etag != last:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(asyncio.shield(signal), remaining)
            except TimeoutError:
                return


class RedisWakeups:
    """One subscriber connection per process on the channel committed writes are published
    on; each message wakes the waiters of its instance. After a reconnect every waiter is
    woken once, since messages sent while we were away are lost."""

    def __init__(self, url: str, waiters: Waiters) -> None:
        import redis.asyncio

        # No socket timeout: the connection idles between writes by design.
        self._client: Any = redis.asyncio.Redis.from_url(url, health_check_interval=30)
        self._waiters = waiters
        self._task: asyncio.Task[None] | None = None
        self.is_subscribed = asyncio.Event()

    async def start(self, first_wait: float = 2.0) -> None:
        """Start listening; wait a little for the first subscription, never fail for it."""
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.is_subscribed.wait(), first_wait)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.is_subscribed.is_set():
                    log.warning(
                        "wake-up channel lost (%s: %s); resubscribing", type(exc).__name__, exc
                    )
                self.is_subscribed.clear()
            await asyncio.sleep(RESUBSCRIBE_AFTER)

    async def _listen(self) -> None:
        async with self._client.pubsub() as pubsub:
            await pubsub.subscribe(EVENTS_CHANNEL)
            self.is_subscribed.set()
            self._waiters.notify_all()
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    # "<uuid> <generation>", published by coherence.WRITTEN
                    self._waiters.notify(message["data"].decode().partition(" ")[0])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._client.aclose()
