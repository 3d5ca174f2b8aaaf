"""Boot storms: many new instances booting at once, in the two arrival patterns that matter.

- side by side: N guests at a time, each a fresh instance walking cloud-init's boot in order
  on its own keep-alive connection (one agent per guest);
- overlapping: N connections taking the next request of the boot sequence in turn, so one
  guest's consecutive requests are in flight together on different connections (several
  agents in one guest, or a client with a connection per request).

Each run is bounded by time and by boots, on loopback only: no boot starts after the time
is up, and the boots started are finished. The driver is `loadtests/wire.py` (prebuilt
requests, no per-request Python beyond framing the answer), so that it is not what is
measured; `ceiling` runs it against the floor server to show how far it goes. The figures
are the client's (boots/s, boot time from the first request sent to the last answered,
errors: a boot with any answer not 200) and, when the server has an admin API, its own
counters (statements and cache misses per boot).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from loadtests.wire import Target, drive

Headers = Callable[[int], Mapping[str, str]]
PATTERNS = ("side-by-side", "overlapping")
GRACE_SECONDS = 30.0  # after the time bound, for the boots already started to finish


@dataclass
class StormResult:
    pattern: str
    boots: int
    seconds: float
    boot_times: list[float]
    errors: int
    statements: int | None = None
    misses: int | None = None

    @property
    def boots_per_second(self) -> float:
        return self.boots / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.boot_times:
            return 0.0
        ordered = sorted(self.boot_times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def per_boot(self, count: int | None) -> str:
        return f"{count / self.boots:.2f}" if count is not None and self.boots else "-"


@dataclass(slots=True)
class _Boot:
    """One guest's boot in progress: its requests, how many are unanswered, when it began."""

    requests: tuple[bytes, ...]
    remaining: int
    started: float
    failed: bool = False


@dataclass
class _Storm:
    """The guests still to boot and the boots done, shared by every connection."""

    target: Target
    guests: Iterator[int]
    paths: Sequence[str]
    headers: Headers
    deadline: float
    boot_times: list[float] = field(default_factory=list)
    errors: int = 0

    def __post_init__(self) -> None:
        self.prefixes = self.target.prefixes(list(self.paths))

    def next_boot(self) -> _Boot | None:
        if time.monotonic() >= self.deadline:
            return None
        n = next(self.guests, None)
        if n is None:
            return None
        requests = self.target.requests(self.prefixes, self.headers(n))
        return _Boot(requests, len(requests), time.perf_counter())

    def answered(self, boot: _Boot, ok: bool) -> None:
        boot.failed = boot.failed or not ok
        boot.remaining -= 1
        if boot.remaining == 0:
            if boot.failed:
                self.errors += 1
            else:
                self.boot_times.append(time.perf_counter() - boot.started)


class _BootWalk:
    """The boots of a storm walked one after the other, request by request."""

    def __init__(self, storm: _Storm) -> None:
        self.storm = storm
        self.boot: _Boot | None = None
        self.index = 0

    def next_request(self) -> tuple[_Boot, bytes] | None:
        """The next request of the boot being walked, else the first of the next boot."""
        boot = self.boot
        if boot is None or self.index == len(boot.requests):
            boot = self.boot = self.storm.next_boot()
            self.index = 0
            if boot is None:
                return None
        self.index += 1
        return boot, boot.requests[self.index - 1]


class _OwnGuest(_BootWalk):
    """Side by side: this connection's guest walks its whole boot in order, then the next."""

    def take(self) -> bytes | None:
        taken = self.next_request()
        return None if taken is None else taken[1]

    def answered(self, ok: bool) -> None:
        assert self.boot is not None
        self.storm.answered(self.boot, ok)


class _Interleaved(_BootWalk):
    """Overlapping: the boots laid end to end, each request to whichever connection is free
    (one walk of the boots, shared by every connection)."""


class _SharedLane:
    """One connection of the overlapping pattern: the boot its request in flight is of."""

    def __init__(self, shared: _Interleaved) -> None:
        self.shared = shared
        self.boot: _Boot | None = None

    def take(self) -> bytes | None:
        item = self.shared.next_request()
        if item is None:
            return None
        self.boot, request = item
        return request

    def answered(self, ok: bool) -> None:
        assert self.boot is not None
        self.shared.storm.answered(self.boot, ok)


async def _run(pattern: str, storm: _Storm, connections: int) -> StormResult:
    if pattern == PATTERNS[0]:
        feeds: list[_OwnGuest | _SharedLane] = [_OwnGuest(storm) for _ in range(connections)]
    else:
        shared = _Interleaved(storm)
        feeds = [_SharedLane(shared) for _ in range(connections)]
    started = time.monotonic()
    tasks = [asyncio.ensure_future(drive(storm.target, feed)) for feed in feeds]
    limit = storm.deadline - started + GRACE_SECONDS
    _, late = await asyncio.wait(tasks, timeout=max(limit, 0.0))
    for task in late:  # a server that stopped answering: what is in flight fails
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    return StormResult(pattern, len(storm.boot_times), elapsed, storm.boot_times, storm.errors)


async def side_by_side(
    url: str,
    guests: Iterator[int],
    paths: Sequence[str],
    headers: Headers,
    connections: int,
    seconds: float,
) -> StormResult:
    """`connections` guests at a time, each walking `paths` in order on its own connection."""
    storm = _Storm(Target(url), guests, paths, headers, time.monotonic() + seconds)
    return await _run(PATTERNS[0], storm, connections)


async def overlapping(
    url: str,
    guests: Iterator[int],
    paths: Sequence[str],
    headers: Headers,
    connections: int,
    seconds: float,
) -> StormResult:
    """`connections` connections, each taking the next (guest, path) of the boot sequences
    laid end to end: a boot's consecutive requests go out together on different ones."""
    storm = _Storm(Target(url), guests, paths, headers, time.monotonic() + seconds)
    return await _run(PATTERNS[1], storm, connections)


DRIVERS = {PATTERNS[0]: side_by_side, PATTERNS[1]: overlapping}
