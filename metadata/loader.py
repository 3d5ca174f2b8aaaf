"""Where a slice comes from: the slice cache at the instance's generation, else one read of
the slice source that brings every missing slice (and whatever the boot planner predicts) at
once; derived slices are computed from the slices they require.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metadata.cache import SliceCache
from metadata.errors import InstanceNotFound
from metadata.providers import Provider
from metadata.records import InstanceCore, Slice
from metadata.sources import SliceSource


class RequestCost:
    """What one request cost: filled in along the way, read by statistics."""

    __slots__ = ("cold", "db_statements", "slices_cached", "slices_loaded")

    def __init__(self) -> None:
        self.db_statements = 0
        self.slices_loaded = 0
        self.slices_cached = 0
        self.cold = False


class SliceLoader:
    def __init__(self, source: SliceSource, providers: Mapping[Slice, Provider],
                 cache: SliceCache) -> None:  # fmt: skip
        self._source = source
        self._providers = providers
        self.cache = cache

    async def fetch(self, uuid: str, names: frozenset[Slice], cost: RequestCost | None,
                    known: Mapping[Slice, Any] | None = None,
                    ) -> tuple[dict[Slice, Any], int]:  # fmt: skip
        """The slices from the source in one statement, with the instance's generation;
        derived slices are then computed from the slices they require."""
        derived = [self._providers[n] for n in names if not self._providers[n].sourced]
        read = {n for n in names if self._providers[n].sourced}
        for provider in derived:
            read |= provider.requires - (known or {}).keys()
        found = await self._source.read(uuid, frozenset(read))
        if cost is not None:
            cost.db_statements += 1
            cost.slices_loaded += len(read)
        if found is None:
            raise InstanceNotFound("no such instance")
        loaded = dict(found.slices)
        for provider in derived:
            inputs = {**(known or {}), **loaded}
            loaded[provider.slice] = await provider.derive(uuid, inputs)
        return loaded, found.generation

    async def load(self, uuid: str, generation: int, needs: frozenset[Slice],
                   cost: RequestCost | None = None, prefetch: frozenset[Slice] = frozenset(),
                   ) -> tuple[dict[Slice, Any], int]:  # fmt: skip
        """The needed slices and the generation they belong to (newer than asked when a
        write landed in between: then everything comes from that newer generation)."""
        found = await self.cache.get_many(uuid, generation, needs)
        if cost is not None:
            cost.slices_cached += len(found)
        missing = needs - found.keys()
        if not missing:
            return found, generation
        if not found and cost is not None:
            cost.cold = True
        wanted = missing | (prefetch - found.keys()) if not found else missing
        loaded, actual = await self.fetch(uuid, frozenset(wanted), cost, found)
        if actual != generation and found:
            # Cached slices are of an older generation than the rows just read: re-read
            # all, so that an answer never mixes two generations.
            loaded, actual = await self.fetch(uuid, needs | frozenset(wanted), cost)
            found = {}
        await self.cache.set_many(uuid, actual, loaded)
        found.update(loaded)
        return found, actual

    async def core(self, uuid: str, generation: int | None, cost: RequestCost | None = None
                   ) -> InstanceCore | None:  # fmt: skip
        """The core slice: from the cache when the generation is known, else the database."""
        if generation is not None:
            cached = await self.cache.get_many(uuid, generation, [Slice.CORE])
            if Slice.CORE in cached:
                core: InstanceCore = cached[Slice.CORE]
                return core
        try:
            loaded, actual = await self.fetch(uuid, frozenset({Slice.CORE}), cost)
        except InstanceNotFound:
            return None
        await self.cache.set_many(uuid, actual, loaded)
        result: InstanceCore = loaded[Slice.CORE]
        return result
