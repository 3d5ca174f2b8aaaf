"""Where a slice comes from: the slice cache at the instance's generation, else one
statement that brings every missing slice (and whatever the boot planner predicts) at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement

from metadata.cache import SliceCache
from metadata.errors import InstanceNotFound
from metadata.providers import Provider
from metadata.records import InstanceCore, Slice
from metadata.store import schema as t
from metadata.store.bundle import load_bundle
from metadata.store.engine import Database

GENERATION = t.instances.c.generation.label("generation")


class RequestCost:
    """What one request cost: filled in along the way, read by statistics."""

    __slots__ = ("cold", "db_statements", "slices_cached", "slices_loaded")

    def __init__(self) -> None:
        self.db_statements = 0
        self.slices_loaded = 0
        self.slices_cached = 0
        self.cold = False


class SliceLoader:
    def __init__(self, db: Database, providers: Mapping[Slice, Provider],
                 cache: SliceCache) -> None:  # fmt: skip
        self._db = db
        self._providers = providers
        self.cache = cache

    async def fetch(self, uuid: str, names: frozenset[Slice], cost: RequestCost | None,
                    known: Mapping[Slice, Any] | None = None,
                    ) -> tuple[dict[Slice, Any], int]:  # fmt: skip
        """The slices from the database in one statement, with the instance's generation;
        derived slices are then computed from the slices they require."""
        derived = [self._providers[n] for n in names if not self._providers[n].is_sql]
        sql = {n for n in names if self._providers[n].is_sql}
        for provider in derived:
            sql |= provider.requires - (known or {}).keys()
        loaded, generation = await self._fetch_sql(uuid, frozenset(sql), cost)
        for provider in derived:
            inputs = {**(known or {}), **loaded}
            loaded[provider.slice] = await provider.derive(uuid, inputs)
        return loaded, generation

    async def _fetch_sql(self, uuid: str, names: frozenset[Slice], cost: RequestCost | None
                         ) -> tuple[dict[Slice, Any], int]:  # fmt: skip
        providers = [self._providers[n] for n in names]
        columns: list[ColumnElement[Any]] = [GENERATION]
        for provider in providers:
            columns.extend(provider.columns())
        async with self._db.read() as conn:
            row = await load_bundle(conn, uuid, columns)
        if cost is not None:
            cost.db_statements += 1
            cost.slices_loaded += len(names)
        if row is None:
            raise InstanceNotFound("no such instance")
        return {p.slice: p.decode(row) for p in providers}, int(row["generation"])

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
