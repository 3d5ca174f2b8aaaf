"""Per-path statistics: counters and a fixed-bucket latency histogram per path template.

Recording is a few integer additions in process: no lock, no I/O, no database statement.
The table is keyed by (path template, version), so its size is bounded by the tree, not by
what guests send: every unmatched path shares the one `(unmatched)` row.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Upper bounds of the latency buckets in milliseconds; the last bucket is open-ended.
BUCKETS_MS: tuple[float, ...] = (
    0.05,
    0.1,
    0.2,
    0.3,
    0.5,
    0.75,
    1,
    1.5,
    2,
    3,
    5,
    7.5,
    10,
    20,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
)
BUCKETS_S = tuple(b / 1000 for b in BUCKETS_MS)
COUNTERS = ("hits", "cache_hits", "cache_misses", "db_statements", "bytes", "errors")
UNMATCHED = ("(unmatched)", "")
StatsKey = tuple[str, str]  # (path template, version label)


@dataclass(slots=True)
class PathStats:
    hits: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    db_statements: int = 0
    bytes: int = 0
    errors: int = 0
    seconds_sum: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS_MS) + 1))

    def add(self, other: PathStats) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.seconds_sum += other.seconds_sum
        for i, count in enumerate(other.buckets):
            self.buckets[i] += count

    def percentile_ms(self, q: float) -> float | None:
        """The upper bound of the bucket holding the q-quantile (an over-estimate by at most
        one bucket's width)."""
        total = sum(self.buckets)
        if not total:
            return None
        rank = q * total
        running = 0
        for i, count in enumerate(self.buckets):
            running += count
            if running >= rank:
                return BUCKETS_MS[i] if i < len(BUCKETS_MS) else BUCKETS_MS[-1]
        return BUCKETS_MS[-1]

    def to_json(self, key: StatsKey) -> dict[str, Any]:
        path, version = key
        return {
            "path": path,
            "version": version,
            "hits": self.hits,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "db_statements": self.db_statements,
            "bytes": self.bytes,
            "errors": self.errors,
            "p50_ms": self.percentile_ms(0.50),
            "p95_ms": self.percentile_ms(0.95),
            "p99_ms": self.percentile_ms(0.99),
        }


class Statistics:
    def __init__(self) -> None:
        self.table: dict[StatsKey, PathStats] = {}
        # what has not been flushed to the shared store yet (only used with Redis)
        self.pending: dict[StatsKey, PathStats] = {}
        self.track_pending = False

    def record(
        self,
        key: StatsKey,
        *,
        cache_hit: bool,
        statements: int,
        nbytes: int,
        seconds: float,
        error: bool = False,
    ) -> None:
        targets = (self.table, self.pending) if self.track_pending else (self.table,)
        bucket = bisect.bisect_left(BUCKETS_S, seconds)
        for table in targets:
            stats = table.get(key)
            if stats is None:
                stats = table[key] = PathStats()
            stats.hits += 1
            if cache_hit:
                stats.cache_hits += 1
            else:
                stats.cache_misses += 1
            stats.db_statements += statements
            stats.bytes += nbytes
            stats.errors += error
            stats.seconds_sum += seconds
            stats.buckets[bucket] += 1

    def take_pending(self) -> dict[StatsKey, PathStats]:
        pending, self.pending = self.pending, {}
        return pending

    def snapshot(self, table: Mapping[StatsKey, PathStats] | None = None) -> list[dict[str, Any]]:
        """Every path, hottest first."""
        rows = (table if table is not None else self.table).items()
        ordered = sorted(rows, key=lambda item: (-item[1].hits, item[0]))
        return [stats.to_json(key) for key, stats in ordered]
