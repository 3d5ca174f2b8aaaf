"""The slice source interface: what the loader and identity ask of wherever instance data
lives (the project's own store; a cloud's own databases).

A source answers in whole slices (the records of `metadata.records`), each read tagged with
the instance's generation, so that the cache above it can tell a current slice from an old
one. Every method sends at most one statement to the data it reads; the caller counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from metadata.records import Slice


@dataclass(frozen=True, slots=True)
class SliceRead:
    """Slices of one instance, all of one generation."""

    uuid: str
    generation: int
    slices: dict[Slice, Any]


class SliceSource(Protocol):
    # True when the source can map a guest's fixed address to its instance; a source that
    # cannot answers only signed requests.
    identifies_by_address: bool

    async def read(self, uuid: str, names: frozenset[Slice]) -> SliceRead | None:
        """The named slices of one instance and its generation, in one statement
        (None: no such instance)."""
        ...

    async def read_by_address(self, address: str, names: frozenset[Slice]) -> list[SliceRead]:
        """Every instance owning this fixed address (at most two: ambiguity is refused), with
        the named slices, in one statement."""
        ...

    async def generation(self, uuid: str) -> int | None:
        """The instance's current generation alone (None: no such instance)."""
        ...
