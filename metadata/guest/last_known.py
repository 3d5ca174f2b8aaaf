"""Stale-if-error for identity: the last (instance, generation) resolved per address and per
signed instance, used for a bounded time while the database does not answer.

With it, a guest whose answers are cached (rendered answers and slices are keyed by the
generation) keeps being served through a database outage; without a fresh enough entry the
request still fails with 503. Only identities that resolved successfully are remembered, in
bounded LRUs, so unknown addresses and forged signatures grow nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from metadata.lru import LRU

log = logging.getLogger(__name__)
WARN_EVERY = 10.0  # seconds between two warnings while answers are served stale


class LastKnownIdentities:
    def __init__(
        self, max_age: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        # address -> (uuid, generation, when confirmed)
        self._by_address: LRU[str, tuple[str, int, float]] = LRU(max_entries)
        # signed instance uuid -> (tenant, generation, when confirmed)
        self._by_instance: LRU[str, tuple[str, int, float]] = LRU(max_entries)
        self._warned_at = -WARN_EVERY

    def confirm_address(self, address: str, uuid: str, generation: int) -> None:
        """The database or the shared coherence map just said who owns `address`."""
        if self.max_age > 0:
            self._by_address.set(address, (uuid, generation, self._clock()))

    def confirm_instance(self, uuid: str, tenant: str, generation: int) -> None:
        if self.max_age > 0:
            self._by_instance.set(uuid, (tenant, generation, self._clock()))

    def address(self, address: str, reason: BaseException) -> tuple[str, int] | None:
        """The owner and generation last confirmed for `address`, if recent enough."""
        entry = self._by_address.get(address)
        if entry is None or not self._is_fresh(entry[2], reason):
            return None
        return entry[0], entry[1]

    def instance(self, uuid: str, tenant: str, reason: BaseException) -> int | None:
        """The generation last confirmed for a signed instance of this tenant, if recent."""
        entry = self._by_instance.get(uuid)
        if entry is None or entry[0] != tenant or not self._is_fresh(entry[2], reason):
            return None
        return entry[1]

    def _is_fresh(self, confirmed: float, reason: BaseException) -> bool:
        now = self._clock()
        age = now - confirmed
        if age > self.max_age:
            return False
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "%s: answering from caches for instances confirmed within the last "
                "%g s (stale_if_error)",
                reason,
                self.max_age,
            )
        return True

    def __len__(self) -> int:
        return len(self._by_address) + len(self._by_instance)
