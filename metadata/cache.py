"""The slice cache tier: provider slices keyed by (instance, generation, slice), in
aiocache: a bounded in-process LRU by default, Redis when replicas share one cloud. Keys
carry the generation, so a write never needs to find old entries: they are simply never
asked for again and age out. (Rendered answers, the tier above, are metadata/guest/hot.py.)

When Redis fails, the slice tier falls back to the in-process LRU with a logged warning and
tries Redis again a few seconds later; no guest request fails for it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlparse

from aiocache import RedisCache, SimpleMemoryCache
from aiocache.serializers import NullSerializer

from metadata import codec
from metadata.records import Slice

log = logging.getLogger(__name__)
REDIS_TIMEOUT = 0.5  # seconds: a slow Redis must not hold a guest longer than a DB read
RETRY_AFTER = 5.0  # seconds before trying a Redis that failed again
# Slice names as they appear in keys (an enum's `.value` is a Python-level lookup).
_NAMES = {name: name.value for name in Slice}


class LruMemoryCache(SimpleMemoryCache):  # type: ignore[misc]
    """aiocache's in-process cache, bounded: least recently used entries go first, and
    expiry is checked on read instead of one timer per key."""

    def __init__(self, max_entries: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[Any, float]] = OrderedDict()

    def peek(self, key: str, now: float) -> Any:
        """The entry's value (None: absent or expired), made the most recently used. Plain
        and synchronous: the slice tier reads through it on every request, without
        aiocache's per-call layers (timeout, plugins, key building: ~20 us a call)."""
        entry = self._cache.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires and expires < now:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return value

    def keep(self, key: str, value: Any, expires: float) -> None:
        """Keep an entry until `expires` (0: no expiry), dropping the least recently used."""
        self._cache[key] = (value, expires)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _get(self, key: str, encoding: str = "utf-8", _conn: Any = None) -> Any:
        return self.peek(key, time.monotonic())

    async def _multi_get(
        self, keys: list[str], encoding: str = "utf-8", _conn: Any = None
    ) -> list[Any]:
        now = time.monotonic()
        return [self.peek(key, now) for key in keys]

    async def _set(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        _cas_token: Any = None,
        _conn: Any = None,
    ) -> bool:
        self.keep(key, value, time.monotonic() + ttl if ttl else 0.0)
        return True

    async def _multi_set(
        self, pairs: Iterable[tuple[str, Any]], ttl: float | None = None, _conn: Any = None
    ) -> bool:
        expires = time.monotonic() + ttl if ttl else 0.0
        for key, value in pairs:
            self.keep(key, value, expires)
        return True

    async def _delete(self, key: str, _conn: Any = None) -> int:
        return 1 if self._cache.pop(key, None) is not None else 0

    async def _exists(self, key: str, _conn: Any = None) -> bool:
        return await self._get(key) is not None

    async def _clear(self, namespace: str | None = None, _conn: Any = None) -> bool:
        self._cache.clear()
        return True

    def __len__(self) -> int:
        return len(self._cache)


def redis_cache(url: str, ttl: int) -> Any:
    parsed = urlparse(url)
    db = (parsed.path or "/0").strip("/") or "0"
    return RedisCache(
        serializer=NullSerializer(),
        endpoint=parsed.hostname or "127.0.0.1",
        port=parsed.port or 6379,
        db=int(db),
        password=parsed.password,
        namespace="md",
        timeout=REDIS_TIMEOUT,
        ttl=ttl,
        create_connection_timeout=REDIS_TIMEOUT,
        ssl=parsed.scheme == "rediss",
    )


class SliceCache:
    """Slices by (uuid, generation, slice name) in aiocache, with a local fallback."""

    def __init__(self, url: str, ttl: int, max_entries: int) -> None:
        self.ttl = ttl
        self.local = LruMemoryCache(max_entries, namespace="md")
        self.shared: Any = redis_cache(url, ttl) if url.startswith(("redis", "rediss")) else None
        self._shared_down_until = 0.0

    def shared_usable(self) -> bool:
        return self.shared is not None and time.monotonic() >= self._shared_down_until

    def shared_failed(self, exc: BaseException) -> None:
        if time.monotonic() >= self._shared_down_until:
            log.warning(
                "Redis cache unavailable (%s: %s); using the in-process cache for %.0f s",
                type(exc).__name__,
                exc,
                RETRY_AFTER,
            )
        self._shared_down_until = time.monotonic() + RETRY_AFTER

    @staticmethod
    def key(uuid: str, generation: int, name: Slice) -> str:
        return f"s:{uuid}:{generation}:{_NAMES[name]}"

    async def get_many(
        self, uuid: str, generation: int, names: Iterable[Slice]
    ) -> dict[Slice, Any]:
        if self.shared_usable():
            names = list(names)
            if not names:
                return {}
            keys = [self.key(uuid, generation, n) for n in names]
            try:
                raw = await self.shared.multi_get(keys)
                return {
                    n: codec.decode(n, v) for n, v in zip(names, raw, strict=True) if v is not None
                }
            except Exception as exc:
                self.shared_failed(exc)
        # The in-process tier directly (it is read on every request of a boot).
        return self.local_many(uuid, generation, names)

    def local_many(self, uuid: str, generation: int, names: Iterable[Slice]) -> dict[Slice, Any]:
        """What the in-process tier holds of `names`, without awaiting: the whole truth
        only when no shared tier is configured (`is_local`)."""
        prefix = f"s:{uuid}:{generation}:"
        now = time.monotonic()
        peek = self.local.peek
        found = {}
        for n in names:
            value = peek(prefix + _NAMES[n], now)
            if value is not None:
                found[n] = value
        return found

    @property
    def is_local(self) -> bool:
        """Slices live in this process only (memory://)."""
        return self.shared is None

    async def set_many(self, uuid: str, generation: int, values: dict[Slice, Any]) -> None:
        if not values:
            return
        if self.shared_usable():
            try:
                await self.shared.multi_set(
                    [
                        (self.key(uuid, generation, n), codec.encode(n, v))
                        for n, v in values.items()
                    ],
                    ttl=self.ttl,
                )
                return
            except Exception as exc:
                self.shared_failed(exc)
        prefix = f"s:{uuid}:{generation}:"
        expires = time.monotonic() + self.ttl if self.ttl else 0.0
        for n, v in values.items():
            self.local.keep(prefix + _NAMES[n], v, expires)

    async def close(self) -> None:
        if self.shared is not None:
            try:
                await self.shared.close()
            except Exception as exc:  # closing a dead connection must not fail shutdown
                log.debug("closing the Redis cache: %s", exc)
