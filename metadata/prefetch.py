"""Statistics-driven prefetch: learn which slices a guest asks for together at boot.

A session starts when an instance is read cold (nothing of it cached at its generation)
and lasts a short window; every slice asked for in that window is counted against the path
that opened it. When a later instance is read cold through the same path, the slices that
most sessions opened by that path went on to need are loaded in the same statement. For
cloud-init's OpenStack boot, `meta_data.json` learns to bring user data, vendor data and
network along; for the EC2 crawl, `instance-id` learns the keys and network.

A path that was asked inside enough sessions opened by another path plans as that opener
does: when a guest's boot requests arrive all at once, whichever of them is read first
brings the whole boot's slices, so the order of arrival does not change what a boot costs.

A plan is asked on every request of a boot and stays exact (a statement per cold boot is
counted by the tests): so it is worked out from counts kept up to date as sessions are
observed (each path's most frequent opener included), never by sorting them per request.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from metadata.lru import LRU
from metadata.records import Slice
from metadata.stats import StatsKey

WINDOW_SECONDS = 5.0
MIN_SESSIONS = 3
SHARE = 0.5
_NOTHING: Counter[Slice] = Counter()


@dataclass(slots=True)
class _Session:
    started: float
    opened_by: StatsKey
    slices: set[Slice] = field(default_factory=set)
    keys: set[StatsKey] = field(default_factory=set)


class BootPlanner:
    def __init__(
        self,
        max_sessions: int = 10_000,
        *,
        window: float = WINDOW_SECONDS,
        min_sessions: int = MIN_SESSIONS,
        share: float = SHARE,
    ) -> None:
        self._sessions: LRU[str, _Session] = LRU(max_sessions)
        # keyed by path templates: bounded by the tree
        self._opened: Counter[StatsKey] = Counter()
        self._together: dict[StatsKey, Counter[Slice]] = {}
        # path -> the paths that opened the sessions it was asked in (bounded by the tree)
        self._asked_after: dict[StatsKey, Counter[StatsKey]] = {}
        self.window = window
        self.min_sessions = min_sessions
        self.share = share
        # path -> (its most frequent opener, in how many sessions), kept as they are counted
        self._top_opener: dict[StatsKey, tuple[StatsKey, int]] = {}

    def plan(self, key: StatsKey) -> frozenset[Slice]:
        """The slices worth loading with a cold read through this path: what followed it
        when it opened sessions, else what followed the path whose sessions it is usually
        part of."""
        opened = self._opened
        if opened.get(key, 0) >= self.min_sessions:
            return self._plan_of(key)
        top = self._top_opener.get(key)
        if top is not None:
            opener, sessions = top
            if sessions >= self.min_sessions and opened.get(opener, 0) >= self.min_sessions:
                return self._plan_of(opener)
        return frozenset()

    def _plan_of(self, key: StatsKey) -> frozenset[Slice]:
        opened = self._opened.get(key, 0)
        together = self._together.get(key, _NOTHING)
        return frozenset(s for s, n in together.items() if n >= self.share * opened)

    def observe(
        self,
        uuid: str,
        key: StatsKey,
        slices: frozenset[Slice] | set[Slice],
        *,
        cold: bool,
        now: float | None = None,
    ) -> None:
        now = time.monotonic() if now is None else now
        session = self._sessions.get(uuid)
        if session is None or now - session.started > self.window:
            if not cold:
                return
            session = _Session(now, key)
            self._sessions.set(uuid, session)
            self._opened[key] += 1
        if key not in session.keys:
            session.keys.add(key)
            if key != session.opened_by:
                self._count_opener(key, session.opened_by)
        if session.slices.issuperset(slices):  # most requests of a boot: nothing new
            return
        new = slices - session.slices
        session.slices |= new
        counter = self._together.setdefault(session.opened_by, Counter())
        counter.update(new)

    def _count_opener(self, key: StatsKey, opener: StatsKey) -> None:
        openers = self._asked_after.setdefault(key, Counter())
        openers[opener] += 1
        top = self._top_opener.get(key)
        if top is None or openers[opener] > top[1] or top[0] == opener:
            self._top_opener[key] = (opener, openers[opener])
