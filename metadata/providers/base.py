"""A provider is the lazy object behind one slice: nothing is read until a path that renders
the slice asks for it, and then only that slice.

Most slices are kept by the slice source (`metadata.sources`): their provider asks the
source, and the loader (`metadata.loader`) gathers the asks of one request into one read. A
derived slice (dynamic vendor data, security groups) is computed from the slices it
`requires` instead.
A provider knows no HTTP listener and no other provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from metadata.records import Slice


class Provider:
    slice: Slice
    # True: the slice source reads it; False: `derive` computes it from `requires`.
    sourced: ClassVar[bool] = False
    # Per instance of a provider: the same slice may need more in one mode than another.
    requires: frozenset[Slice] = frozenset()

    async def derive(self, uuid: str, inputs: Mapping[Slice, Any]) -> Any:
        """The slice from the slices it requires (never called for a sourced slice)."""
        raise NotImplementedError

    def derive_now(self, uuid: str, inputs: Mapping[Slice, Any]) -> Any | None:
        """`derive` when it needs no I/O (for the express lane, which cannot await);
        None: only `derive` can tell."""
        return None


class SourcedProvider(Provider):
    """The provider of a slice the source reads: the loader gathers it into the source read."""

    sourced = True

    def __init__(self, name: Slice) -> None:
        self.slice = name
