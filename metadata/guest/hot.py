"""The warm shortcut's tier: answers already rendered, per (instance, generation, raw path).

A hit costs one dict lookup: no slice cache, no parsing, no rendering. Keys carry the
generation, so a write never has to find old entries: they are never asked for again and
age out of the bounded map. Each entry carries what the rest of the chain needs to know of
its path (statistics key, ETag, token default), read from the path's tree row when it was
rendered, so a warm request never walks the tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from metadata.guest.tree import Answer
from metadata.lru import LRU
from metadata.stats import StatsKey


@dataclass(frozen=True, slots=True)
class HotAnswer:
    answer: Answer
    # the statistics key of the path this answer belongs to
    stats_key: StatsKey
    # the path's row: whether the answer carries an ETag, and `token_mode=required`'s default
    etag: bool
    token_by_default: bool
    # the status line and headers up to Content-Length, for the express lane (wire.py)
    head: bytes | None = None


class HotAnswers:
    """Rendered answers per (instance uuid, generation, raw path), bounded."""

    def __init__(self, max_entries: int) -> None:
        self._entries: LRU[tuple[str, int, str], HotAnswer] = LRU(max_entries)

    def get(self, uuid: str, generation: int, raw_path: str) -> HotAnswer | None:
        return self._entries.get((uuid, generation, raw_path))

    def put(self, uuid: str, generation: int, raw_path: str, entry: HotAnswer) -> None:
        self._entries.set((uuid, generation, raw_path), entry)

    def __len__(self) -> int:
        return len(self._entries)
