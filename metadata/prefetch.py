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

A plan is asked on every request of a boot, so it is kept once worked out: exact while few
sessions have been seen, then worked out again only when the sessions have grown by a
sixteenth since (the shares it compares settle; a boot storm need not re-count them for
each of its requests).
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
EXACT_SESSIONS = 64  # below this many sessions, a plan is worked out again after each
REFRESH_SHARE = 1 / 16  # above it, once the sessions have grown by this share
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
        self._sessions_seen = 0
        self._changes = 0  # observations that changed a count
        # path -> (changes and sessions seen when its plan was worked out, the plan)
        self._plans: dict[StatsKey, tuple[int, int, frozenset[Slice]]] = {}

    def plan(self, key: StatsKey) -> frozenset[Slice]:
        """The slices worth loading with a cold read through this path: what followed it
        when it opened sessions, else what followed the path whose sessions it is usually
        part of."""
        seen = self._sessions_seen
        kept = self._plans.get(key)
        if kept is not None and (
            kept[0] == self._changes
            or (seen >= EXACT_SESSIONS and seen - kept[1] < seen * REFRESH_SHARE)
        ):
            return kept[2]
        plan = self._work_out(key)
        self._plans[key] = (self._changes, seen, plan)
        return plan

    def _work_out(self, key: StatsKey) -> frozenset[Slice]:
        if self._opened[key] >= self.min_sessions:
            return self._plan_of(key)
        openers = self._asked_after.get(key)
        if openers:
            opener, sessions = openers.most_common(1)[0]
            if sessions >= self.min_sessions and self._opened[opener] >= self.min_sessions:
                return self._plan_of(opener)
        return frozenset()

    def _plan_of(self, key: StatsKey) -> frozenset[Slice]:
        opened = self._opened[key]
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
            self._sessions_seen += 1
            self._changes += 1
        if key not in session.keys:
            session.keys.add(key)
            if key != session.opened_by:
                self._asked_after.setdefault(key, Counter())[session.opened_by] += 1
                self._changes += 1
        if session.slices.issuperset(slices):  # most requests of a boot: nothing new
            return
        new = slices - session.slices
        self._changes += 1
        session.slices |= new
        counter = self._together.setdefault(session.opened_by, Counter())
        counter.update(new)
