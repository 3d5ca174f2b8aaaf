"""Generations for instances that Nova never versions, bounded by METADATA_NOVA_MAX_STALENESS.

A generation is a time in milliseconds. An announced change (a notification, a user-data
overlay write) bumps the instance to "now" through the same coherence as store mode, so
every replica (Redis) sees it at once. Coherence forgets a generation after the staleness
bound; an instance whose generation is not known is at the start of its current staleness
window (windows of `max_staleness` seconds, offset per instance so they do not all turn at
once). Each window is a new generation: a cached slice is re-read from Nova at most one
window after it was read, whether or not Nova announced anything, and generations only grow.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable
from typing import Any

from metadata.coherence import Coherence
from metadata.mget_batch import Values
from metadata.store.events import WriteEvent


class NovaGenerations:
    def __init__(
        self, coherence: Coherence, max_staleness: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._coherence = coherence
        self._window = max(int(max_staleness * 1000), 1)
        self._clock = clock
        # After a resync, no generation is older than it: every cached slice misses once.
        self._resynced_at = 0

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def window_start(self, uuid: str) -> int:
        offset = zlib.crc32(uuid.encode()) % self._window
        now = self._now()
        return (now - offset) // self._window * self._window + offset

    async def current(self, uuid: str) -> int:
        return self.current_from(uuid, await self._coherence.generation(uuid))

    def current_from(self, uuid: str, known: int | None) -> int:
        """The generation, given what coherence knows of it (None: nothing)."""
        floor = max(self.window_start(uuid), self._resynced_at)
        return floor if known is None or known < floor else known

    async def bump(self, uuid: str, gone: bool = False) -> int | None:
        """A change Nova announced (or our overlay write): a newer generation everywhere;
        `gone` (deleted) forgets it instead."""
        if gone:
            await self._coherence.written(WriteEvent(uuid, None))
            return None
        known = await self._coherence.generation(uuid) or 0
        generation = max(self._now(), known + 1)
        await self._coherence.written(WriteEvent(uuid, generation))
        return generation

    def resync(self) -> None:
        """After a broker reconnect (messages may have been lost while away): everything
        this process cached is re-validated on its next read."""
        self._resynced_at = self._now()


class NovaCoherence(Coherence):
    """The shared coherence with generations that also turn with each staleness window:
    what identity remembers for a Nova instance is never older than the bound."""

    def __init__(self, inner: Coherence, generations: NovaGenerations) -> None:
        self.inner = inner
        self._generations = generations
        self.answers_at_once = inner.answers_at_once

    def known_generation(self, uuid: str) -> int | None:
        if not self.answers_at_once:
            return None
        return self._generations.current_from(uuid, self.inner.known_generation(uuid))

    def generation_soon(self, uuid: str) -> asyncio.Future[Values] | None:
        return self.inner.generation_soon(uuid)

    def generation_from(self, uuid: str, values: Values) -> int | None:
        return self._generations.current_from(uuid, self.inner.generation_from(uuid, values))

    async def address(self, ip: str) -> tuple[str, int] | None:
        return None  # Nova mode never identifies by address

    async def generation(self, uuid: str) -> int | None:
        return await self._generations.current(uuid)

    async def epoch(self) -> int:
        return await self.inner.epoch()

    async def remember(self, epoch: int, uuid: str, generation: int, ip: str | None = None) -> None:
        await self.inner.remember(epoch, uuid, generation, ip)

    async def written(self, event: Any) -> None:
        await self.inner.written(event)
