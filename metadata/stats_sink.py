"""Statistics across replicas: each process flushes its counters to one Redis hash in a
batch every second; reading the statistics merges what every replica flushed.

One HINCRBY per changed field per second per process, never a write per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from metadata.stats import COUNTERS, PathStats, Statistics, StatsKey

log = logging.getLogger(__name__)
HASH = "md:stats"
SEP = "\t"
BUCKET = "bucket:"  # field names of histogram buckets: bucket:0, bucket:1, ...


def _field(key: StatsKey, name: str) -> str:
    return SEP.join((key[0], key[1], name))


class RedisStatsSink:
    def __init__(self, client: Any, stats: Statistics, interval: float = 1.0) -> None:
        self._redis = client
        self._stats = stats
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        stats.track_pending = True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        pending = self._stats.take_pending()
        if not pending:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, stats in pending.items():
                    for name in COUNTERS:
                        value = getattr(stats, name)
                        if value:
                            pipe.hincrby(HASH, _field(key, name), value)
                    pipe.hincrbyfloat(HASH, _field(key, "seconds_sum"), stats.seconds_sum)
                    for i, count in enumerate(stats.buckets):
                        if count:
                            pipe.hincrby(HASH, _field(key, f"{BUCKET}{i}"), count)
                await pipe.execute()
        except Exception as exc:
            # Keep the counts for the next try rather than lose them.
            log.warning("could not flush statistics to Redis: %s", exc)
            for key, stats in pending.items():
                self._stats.pending.setdefault(key, PathStats()).add(stats)

    async def cluster_table(self) -> dict[StatsKey, PathStats]:
        """Every replica's flushed statistics (this one's flushed first)."""
        await self.flush()
        raw = await self._redis.hgetall(HASH)
        table: dict[StatsKey, PathStats] = {}
        for field, value in raw.items():
            path, version, name = field.decode().split(SEP)
            stats = table.setdefault((path, version), PathStats())
            if name.startswith(BUCKET):
                stats.buckets[int(name[len(BUCKET) :])] += int(value)
            elif name == "seconds_sum":
                stats.seconds_sum += float(value)
            else:
                setattr(stats, name, getattr(stats, name) + int(value))
        return table

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
