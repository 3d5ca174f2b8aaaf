"""Who owns an address and which generation an instance is at: the facts every replica must
agree on for a cached answer to be exact.

- `LocalCoherence` (memory://): one process sees every write, so its own maps are the truth.
- `RedisCoherence` (redis://): the maps live in Redis. A warm request asks once per request
  (the address owner and the generation), and the requests of one event-loop tick share
  one MGET (metadata/mget_batch.py); a write bumps the generation and
  drops the addresses it touched after its commit, so the very next request on any replica
  sees it.

Both guard against the classic cache race (a reader fetches old rows, a write commits and
invalidates, then the reader stores what it fetched): a reader remembers what it read only
if no write happened since it started (the write epoch is unchanged).

When Redis fails, `RedisCoherence` answers "unknown" and the caller asks the database (one
statement a request): slower, never stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from metadata.lru import LRU
from metadata.mget_batch import BatchedGet, Values
from metadata.store.events import WriteEvent

log = logging.getLogger(__name__)
RETRY_AFTER = 5.0
EVENTS_CHANNEL = "md:events"


class Coherence:
    # Whether `known_*` answer for certain (this process holds the truth) rather than
    # "ask": what lets the express lane answer a warm request without waiting.
    answers_at_once = False

    async def address(self, ip: str) -> tuple[str, int] | None:
        """The owner of an address and its generation, if known without the database."""
        raise NotImplementedError

    async def generation(self, uuid: str) -> int | None:
        raise NotImplementedError

    def known_generation(self, uuid: str) -> int | None:
        """The generation when this process knows it without asking anyone (memory://);
        None: ask `generation`."""
        return None

    def known_address(self, ip: str) -> tuple[str, int] | None:
        """`address`, when this process knows it without asking anyone; None: ask."""
        return None

    # For callers that cannot await (the express lane): the shared map's answer in this
    # tick's round trip, read back with `generation_from` / `address_from`. None: the map
    # is not shared, or is down; ask the awaitable way.
    def generation_soon(self, uuid: str) -> asyncio.Future[Values] | None:
        return None

    def generation_from(self, uuid: str, values: Values) -> int | None:
        return None

    def address_soon(self, ip: str) -> tuple[str, asyncio.Future[Values]] | None:
        """With the owner the address had last time: its generation comes in the same
        round trip."""
        return None

    def address_from(self, guess: str, values: Values) -> tuple[str, int] | None:
        return None

    async def epoch(self) -> int:
        """Taken before a database read; `remember` stores nothing if a write came since."""
        raise NotImplementedError

    async def remember(self, epoch: int, uuid: str, generation: int, ip: str | None = None) -> None:
        raise NotImplementedError

    async def written(self, event: WriteEvent) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class LocalCoherence(Coherence):
    """Entries live at most `ttl` seconds: writes that bypass this process (an import,
    another worker) are seen within the cache TTL, as the setting promises."""

    answers_at_once = True

    def __init__(self, max_entries: int, ttl: float = 300.0) -> None:
        self._owners: LRU[str, str] = LRU(max_entries)
        self._generations: LRU[str, tuple[int, float]] = LRU(max_entries)
        self._epoch = 0
        self._ttl = ttl

    async def address(self, ip: str) -> tuple[str, int] | None:
        return self.known_address(ip)

    async def generation(self, uuid: str) -> int | None:
        return self.known_generation(uuid)

    def known_address(self, ip: str) -> tuple[str, int] | None:
        uuid = self._owners.get(ip)
        if uuid is None:
            return None
        generation = self.known_generation(uuid)
        return None if generation is None else (uuid, generation)

    def known_generation(self, uuid: str) -> int | None:
        entry = self._generations.get(uuid)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    async def epoch(self) -> int:
        return self._epoch

    async def remember(self, epoch: int, uuid: str, generation: int, ip: str | None = None) -> None:
        if epoch != self._epoch:
            return
        self._generations.set(uuid, (generation, time.monotonic() + self._ttl))
        if ip is not None:
            self._owners.set(ip, uuid)

    async def written(self, event: WriteEvent) -> None:
        self._epoch += 1
        for ip in event.addresses:
            self._owners.pop(ip)
        if event.generation is None:
            self._generations.pop(event.uuid)
        else:
            self._generations.set(event.uuid, (event.generation, time.monotonic() + self._ttl))


# Store a generation only if newer than the one Redis has, and only if no write came since
# the reader took its epoch.  KEYS: epoch, generation[, address]  ARGV: epoch, gen, uuid, ttl
REMEMBER = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[4])
end
if KEYS[3] then redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4]) end
return 1
"""
# After a commit: a new epoch, the new generation (never lowered by a late writer; deleted
# when the instance is), the touched addresses forgotten, and the news published for
# waiters.  KEYS: epoch, generation, addresses...  ARGV: gen or '', ttl, uuid
WRITTEN = (
    """
redis.call('INCR', KEYS[1])
if ARGV[1] == '' then
  redis.call('DEL', KEYS[2])
elseif tonumber(ARGV[1]) > tonumber(redis.call('GET', KEYS[2]) or '0') then
  redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('PUBLISH', '"""
    + EVENTS_CHANNEL
    + """', ARGV[3] .. ' ' .. ARGV[1])
return 1
"""
)


class RedisCoherence(Coherence):
    def __init__(self, client: Any, ttl: int, max_entries: int) -> None:
        self._redis = client
        self._gets = BatchedGet(client, own_connection=True)
        self._ttl = max(ttl, 1)
        self._guesses: LRU[str, str] = LRU(max_entries)  # ip -> uuid seen last time
        self._down_until = 0.0
        self._remember = client.register_script(REMEMBER)
        self._written = client.register_script(WRITTEN)
        # Writes whose news could not reach Redis, retried until they do (bounded).
        self._pending: dict[str, WriteEvent] = {}
        self._retry_task: asyncio.Task[None] | None = None

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if self._usable():
            log.warning(
                "Redis unavailable for coherence (%s: %s); reading generations from "
                "the database for %.0f s",
                type(exc).__name__,
                exc,
                RETRY_AFTER,
            )
        self._down_until = time.monotonic() + RETRY_AFTER

    def generation_soon(self, uuid: str) -> asyncio.Future[Values] | None:
        return self._gets.request(f"md:g:{uuid}") if self._usable() else None

    def generation_from(self, uuid: str, values: Values) -> int | None:
        return None if values[0] is None else int(values[0])

    def address_soon(self, ip: str) -> tuple[str, asyncio.Future[Values]] | None:
        guess = self._guesses.get(ip)
        if guess is None or not self._usable():
            return None
        return guess, self._gets.request(f"md:a:{ip}", f"md:g:{guess}")

    def address_from(self, guess: str, values: Values) -> tuple[str, int] | None:
        owner, generation = values
        if owner is None or owner.decode() != guess or generation is None:
            return None
        return guess, int(generation)

    async def address(self, ip: str) -> tuple[str, int] | None:
        if not self._usable():
            return None
        try:
            guess = self._guesses.get(ip)
            if guess is not None:
                owner, generation = await self._gets.get(f"md:a:{ip}", f"md:g:{guess}")
                if owner is not None and owner.decode() == guess and generation is not None:
                    return guess, int(generation)
            else:
                (owner,) = await self._gets.get(f"md:a:{ip}")
            if owner is None:
                return None
            uuid = owner.decode()
            (generation,) = await self._gets.get(f"md:g:{uuid}")
            if generation is None:
                return None
            self._guesses.set(ip, uuid)
            return uuid, int(generation)
        except Exception as exc:
            self._failed(exc)
            return None

    async def generation(self, uuid: str) -> int | None:
        if not self._usable():
            return None
        try:
            (value,) = await self._gets.get(f"md:g:{uuid}")
        except Exception as exc:
            self._failed(exc)
            return None
        return None if value is None else int(value)

    async def epoch(self) -> int:
        if not self._usable():
            return -1
        try:
            (epoch,) = await self._gets.get("md:epoch")
            return int(epoch or 0)
        except Exception as exc:
            self._failed(exc)
            return -1

    async def remember(self, epoch: int, uuid: str, generation: int, ip: str | None = None) -> None:
        if epoch < 0 or not self._usable():
            return
        keys = ["md:epoch", f"md:g:{uuid}"] + ([f"md:a:{ip}"] if ip else [])
        try:
            await self._remember(keys=keys, args=[epoch, generation, uuid, self._ttl])
            if ip is not None:
                self._guesses.set(ip, uuid)
        except Exception as exc:
            self._failed(exc)

    async def written(self, event: WriteEvent) -> None:
        for ip in event.addresses:
            self._guesses.pop(ip)
        try:
            await self._publish(event)
        except Exception as exc:
            self._failed(exc)
            self._queue(event)

    async def _publish(self, event: WriteEvent) -> None:
        keys = ["md:epoch", f"md:g:{event.uuid}", *(f"md:a:{ip}" for ip in event.addresses)]
        generation = "" if event.generation is None else str(event.generation)
        await self._written(keys=keys, args=[generation, self._ttl, event.uuid])

    def _queue(self, event: WriteEvent) -> None:
        previous = self._pending.get(event.uuid)
        addresses = event.addresses | (previous.addresses if previous else frozenset())
        if len(self._pending) < 100_000:
            self._pending[event.uuid] = WriteEvent(event.uuid, event.generation, addresses)
        if self._retry_task is None or self._retry_task.done():
            self._retry_task = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        while self._pending:
            await asyncio.sleep(1.0)
            for uuid, event in list(self._pending.items()):
                try:
                    await self._publish(event)
                except Exception:
                    break
                if self._pending.get(uuid) is event:
                    del self._pending[uuid]

    async def close(self) -> None:
        await self._gets.close()
        if self._retry_task is not None:
            self._retry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry_task
