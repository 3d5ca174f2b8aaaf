"""Single flight: concurrent callers that need the same load share one call of it.

A guest's boot may send its requests one after the other or all at once (several agents in
one guest, or a client that opens a connection per request). Without this, every request
that misses the cache while the first miss is still reading sends its own statement: the
read amplification a cache exists to remove. The load runs in its own task, so a caller
that goes away (a closed connection cancels its handler) does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one load in flight per key; callers arriving meanwhile wait for its result
    (or its exception). Nothing is kept once the load is done: this is not a cache."""

    def __init__(self) -> None:
        self._flights: dict[K, asyncio.Task[V]] = {}

    def in_flight(self, key: K) -> asyncio.Task[V] | None:
        return self._flights.get(key)

    async def wait(self, key: K) -> V | None:
        """The result of the load in flight for this key, or None when there is none."""
        flight = self._flights.get(key)
        if flight is None:
            return None
        return await asyncio.shield(flight)

    async def run(self, key: K, load: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """The result of the load in flight for this key, else of a new one started here."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_task(load())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: K, flight: asyncio.Task[V]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        # Every caller may have gone away: retrieve the outcome so that asyncio does not
        # log "exception was never retrieved" for an error nobody waits for any more.
        if not flight.cancelled():
            flight.exception()

    def __len__(self) -> int:
        return len(self._flights)
