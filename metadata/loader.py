"""Where a slice comes from: the slice cache at the instance's generation, else one read of
the slice source that brings every missing slice (and whatever the boot planner predicts) at
once; derived slices are computed from the slices they require.

Reads of one instance are single flight (metadata/single_flight.py): a request that misses
while a read of the same instance is in flight waits for it and takes what it brought, so a
boot whose requests arrive all at once costs what it costs when they arrive in order.
Exactness is kept: a request whose caller knows the instance's generation accepts only a
read of that generation or newer; identity's reads (the generation not yet known) are
shared only between requests that took the same write epoch, so none of them takes a read
that began before a write it has seen committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from metadata.cache import SliceCache
from metadata.errors import InstanceNotFound
from metadata.providers import Provider
from metadata.records import InstanceCore, Slice
from metadata.single_flight import SingleFlight
from metadata.sources import SliceRead, SliceSource

Loaded = tuple[dict[Slice, Any], int]
# Run by the one read of a flight before it lands (identity remembers the generation there,
# so that a request arriving just after finds it and reads nothing).
OnRead = Callable[[int], Awaitable[None]]
FlightKey = tuple[str, int | None]  # (uuid, write epoch of identity's reads; None: loads)


class RequestCost:
    """What one request cost: filled in along the way, read by statistics."""

    __slots__ = ("cold", "db_statements")

    def __init__(self) -> None:
        self.db_statements = 0
        self.cold = False


class SliceLoader:
    def __init__(
        self, source: SliceSource, providers: Mapping[Slice, Provider], cache: SliceCache
    ) -> None:
        self._source = source
        self._providers = providers
        self.cache = cache
        # keyed by (uuid, write epoch of identity's reads, or None for the loads)
        self._flights: SingleFlight[FlightKey, Loaded] = SingleFlight()
        # per key, the slices the next flight is to read (taken when it starts)
        self._wanted: dict[FlightKey, set[Slice]] = {}
        self._address_wanted: dict[tuple[str, int], set[Slice]] = {}
        self._address_flights: SingleFlight[tuple[str, int], list[SliceRead]] = SingleFlight()

    def pending_reads(self) -> int:
        """Reads asked for and not started: nothing is left behind once requests are done."""
        return (
            len(self._wanted)
            + len(self._address_wanted)
            + len(self._flights)
            + len(self._address_flights)
        )

    def sourced(self, names: frozenset[Slice]) -> frozenset[Slice]:
        """The slices of `names` that the source reads (derived ones are computed later)."""
        return frozenset(n for n in names if self._providers[n].sourced)

    async def fetch(
        self,
        uuid: str,
        names: frozenset[Slice],
        cost: RequestCost | None,
        known: Mapping[Slice, Any] | None = None,
    ) -> tuple[dict[Slice, Any], int]:
        """The slices from the source in one statement, with the instance's generation;
        derived slices are then computed from the slices they require."""
        derived = [self._providers[n] for n in names if not self._providers[n].sourced]
        read = {n for n in names if self._providers[n].sourced}
        for provider in derived:
            read |= provider.requires - (known or {}).keys()
        found = await self._source.read(uuid, frozenset(read))
        if cost is not None:
            cost.db_statements += 1
        if found is None:
            raise InstanceNotFound("no such instance")
        loaded = dict(found.slices)
        for provider in derived:
            inputs = {**(known or {}), **loaded}
            loaded[provider.slice] = await provider.derive(uuid, inputs)
        return loaded, found.generation

    async def _read_and_keep(
        self,
        key: FlightKey,
        cost: RequestCost | None,
        known: Mapping[Slice, Any],
        on_read: OnRead | None = None,
    ) -> Loaded:
        """One flight: the read of every slice asked for by the requests of this key so far
        (they joined in the same tick, or wait behind the flight before), then the slices
        kept in the cache for everyone."""
        names = frozenset(self._wanted.pop(key, ()))
        loaded, actual = await self.fetch(key[0], names, cost, known)
        await self.cache.set_many(key[0], actual, loaded)
        if on_read is not None:
            await on_read(actual)
        return loaded, actual

    async def _shared_read(
        self,
        uuid: str,
        names: frozenset[Slice],
        cost: RequestCost | None,
        known: Mapping[Slice, Any],
        *,
        at_least: int = 0,
        epoch: int | None = None,
        on_read: OnRead | None = None,
    ) -> Loaded:
        """The slices `names` of one instance: from the read in flight for it when that one
        brings them all (at generation `at_least` or newer), else from a read of our own
        (after the one in flight landed)."""
        key = (uuid, epoch)
        while True:
            if self._flights.in_flight(key) is None or key in self._wanted:
                # the flight has not started reading yet: its read takes our slices too
                # (an entry lives only from a flight's start to its first step: no leak)
                self._wanted.setdefault(key, set()).update(names)
            loaded, actual = await self._flights.run(
                key, lambda: self._read_and_keep(key, cost, known, on_read)
            )
            if names <= loaded.keys() and actual >= at_least:
                return loaded, actual
            # We joined a read of other slices (or of an older generation): it has landed,
            # and the next flight, ours or a fellow waiter's, reads what all of us lack.

    def cached_now(
        self, uuid: str, generation: int, needs: frozenset[Slice]
    ) -> dict[Slice, Any] | None:
        """The needed slices when the in-process cache holds them all at this generation,
        derived ones computed from cached slices where that needs no I/O (answered without
        awaiting, for the express lane); None: `load` them."""
        cache = self.cache
        if not cache.is_local:
            return None
        found = cache.local_many(uuid, generation, needs)
        if len(found) == len(needs):
            return found
        for name in needs - found.keys():
            provider = self._providers[name]
            if provider.sourced:
                return None
            inputs = cache.local_many(uuid, generation, provider.requires)
            value = (
                provider.derive_now(uuid, inputs) if len(inputs) == len(provider.requires) else None
            )
            if value is None:
                return None
            found[name] = value
        return found

    async def load(
        self,
        uuid: str,
        generation: int,
        needs: frozenset[Slice],
        cost: RequestCost | None = None,
        prefetch: frozenset[Slice] = frozenset(),
    ) -> Loaded:
        """The needed slices and the generation they belong to (newer than asked when a
        write landed in between: then everything comes from that newer generation)."""
        found = await self.cache.get_many(uuid, generation, needs)
        missing = needs - found.keys()
        if not missing:
            return found, generation
        derived = await self._derive_from_cache(uuid, generation, missing, found)
        if derived is not None:
            found.update(derived)
            return found, generation
        if not found and cost is not None:
            cost.cold = True
        wanted = frozenset(missing | (prefetch - found.keys()) if not found else missing)
        loaded, actual = await self._shared_read(uuid, wanted, cost, found, at_least=generation)
        if actual != generation and found:
            # Cached slices are of an older generation than the rows just read: re-read
            # all, so that an answer never mixes two generations.
            loaded, actual = await self._shared_read(
                uuid, needs | wanted, cost, {}, at_least=actual
            )
            found = {}
        found.update((n, loaded[n]) for n in needs - found.keys())
        return found, actual

    async def _derive_from_cache(
        self, uuid: str, generation: int, missing: frozenset[Slice], found: Mapping[Slice, Any]
    ) -> dict[Slice, Any] | None:
        """The missing slices when all are derived and what they require is cached at this
        generation (identity's read brought it): no read of the source."""
        providers = [self._providers[n] for n in missing]
        if any(p.sourced for p in providers):
            return None
        requires = frozenset().union(*(p.requires for p in providers)) - found.keys()
        inputs = {**found, **await self.cache.get_many(uuid, generation, requires)}
        if not requires <= inputs.keys():
            return None
        derived = {p.slice: await p.derive(uuid, inputs) for p in providers}
        await self.cache.set_many(uuid, generation, derived)
        return derived

    async def core(
        self,
        uuid: str,
        generation: int | None,
        cost: RequestCost | None = None,
        also: frozenset[Slice] = frozenset(),
        epoch: int = -1,
        on_read: OnRead | None = None,
    ) -> InstanceCore | None:
        """The core slice: from the cache when the generation is known, else the source,
        in the same read as `also` (the slices the request will go on to need), shared
        with the requests that took the same write epoch."""
        if generation is not None:
            cached = await self.cache.get_many(uuid, generation, [Slice.CORE])
            if Slice.CORE in cached:
                core: InstanceCore = cached[Slice.CORE]
                return core
        if cost is not None:
            cost.cold = True
        try:
            loaded, _ = await self._shared_read(
                uuid, self.sourced(also | {Slice.CORE}), cost, {}, epoch=epoch, on_read=on_read
            )
        except InstanceNotFound:
            return None
        result: InstanceCore = loaded[Slice.CORE]
        return result

    async def by_address(
        self,
        address: str,
        also: frozenset[Slice],
        epoch: int,
        cost: RequestCost | None = None,
        on_read: Callable[[list[SliceRead]], Awaitable[None]] | None = None,
    ) -> list[SliceRead]:
        """The instances owning a fixed address, with the slices `also` of each (kept in
        the cache when the owner is unambiguous): one statement for the concurrent callers
        that took the same write epoch."""

        key = (address, epoch)
        if self._address_flights.in_flight(key) is None or key in self._address_wanted:
            self._address_wanted.setdefault(key, set()).update(self.sourced(also))

        async def read_and_keep() -> list[SliceRead]:
            names = frozenset(self._address_wanted.pop(key, ()))
            found = await self._source.read_by_address(address, names)
            if cost is not None:
                cost.db_statements += 1
            if len(found) == 1:
                await self.cache.set_many(found[0].uuid, found[0].generation, found[0].slices)
            if on_read is not None:
                await on_read(found)
            return found

        if cost is not None:
            cost.cold = True
        return await self._address_flights.run(key, read_and_keep)
