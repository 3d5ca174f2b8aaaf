"""Loads the slices a path needs: each from its provider, one statement each, only if asked.

This is the one place that decides where a slice comes from; the cache plugs in here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from metadata.errors import InstanceNotFound
from metadata.providers import Provider
from metadata.records import InstanceCore, Slice

# A stable order, so that the statements of a path always come in the same sequence.
ORDER = {s: i for i, s in enumerate(Slice)}


class RequestCost:
    """What one request cost: filled in by the loader, read by statistics."""

    __slots__ = ("db_statements", "slices_cached", "slices_loaded")

    def __init__(self) -> None:
        self.db_statements = 0
        self.slices_loaded = 0
        self.slices_cached = 0


class SliceLoader:
    def __init__(self, providers: Mapping[Slice, Provider]) -> None:
        self._providers = providers

    async def load_one(self, uuid: str, name: Slice, cost: RequestCost | None = None) -> Any:
        value = await self._providers[name].load(uuid)
        if cost is not None:
            cost.db_statements += 1
            cost.slices_loaded += 1
        return value

    async def load(
        self,
        uuid: str,
        needs: Iterable[Slice],
        cost: RequestCost | None = None,
        known: Mapping[Slice, Any] | None = None,
    ) -> dict[Slice, Any]:
        """The slices in `needs`; `known` holds slices already loaded for this request."""
        loaded: dict[Slice, Any] = dict(known or {})
        for name in sorted(needs, key=ORDER.__getitem__):
            if name not in loaded:
                loaded[name] = await self.load_one(uuid, name, cost)
        if Slice.CORE in loaded and loaded[Slice.CORE] is None:
            raise InstanceNotFound("no such instance")
        return loaded

    async def core(self, uuid: str, cost: RequestCost | None = None) -> InstanceCore | None:
        core: InstanceCore | None = await self.load_one(uuid, Slice.CORE, cost)
        return core
