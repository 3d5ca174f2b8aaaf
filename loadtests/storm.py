"""Boot storms: many new instances booting at once, in the two arrival patterns that matter.

- side by side: N guests at a time, each a fresh instance walking cloud-init's boot in order
  on its own keep-alive connection (one agent per guest);
- overlapping: N connections taking the next request of the boot sequence in turn, so one
  guest's consecutive requests are in flight together on different connections (several
  agents in one guest, or a client with a connection per request).

Each run is bounded by time and by boots, on loopback only. The figures are the client's
(boots/s, boot time from the first request sent to the last answered) and, when the server
has an admin API, its own counters (statements and cache misses per boot).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import aiohttp

Headers = Callable[[int], dict[str, str]]
PATTERNS = ("side-by-side", "overlapping")


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


@dataclass
class _Boot:
    """One guest's boot in progress: its requests still to answer and when it began."""

    remaining: int
    started: float = 0.0
    failed: bool = False


def one_connection() -> aiohttp.ClientSession:
    """A client that keeps to one connection, as one guest (or one agent) does."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(total=10)
    )


async def _get(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> bool:
    try:
        async with session.get(url, headers=headers) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def side_by_side(
    url: str,
    guests: Iterator[int],
    paths: Sequence[str],
    headers: Headers,
    connections: int,
    seconds: float,
) -> StormResult:
    """`connections` guests at a time, each walking `paths` in order on its own connection."""
    boot_times: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def guest_loop() -> None:
        nonlocal errors
        async with one_connection() as session:
            while time.monotonic() < deadline:
                n = next(guests, None)
                if n is None:
                    return
                sent = headers(n)
                started = time.perf_counter()
                ok = True
                for path in paths:
                    ok = await _get(session, url + path, sent) and ok
                if ok:
                    boot_times.append(time.perf_counter() - started)
                else:
                    errors += 1

    started = time.monotonic()
    await asyncio.gather(*(guest_loop() for _ in range(connections)))
    elapsed = time.monotonic() - started
    return StormResult(PATTERNS[0], len(boot_times), elapsed, boot_times, errors)


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
    boot_times: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    boots: dict[int, _Boot] = {}

    def requests() -> Iterator[tuple[int, str]]:
        for n in guests:
            boots[n] = _Boot(len(paths))
            for path in paths:
                yield n, path

    queue = requests()

    async def connection_loop() -> None:
        nonlocal errors
        async with one_connection() as session:
            while time.monotonic() < deadline:
                item = next(queue, None)
                if item is None:
                    return
                n, path = item
                boot = boots[n]
                if not boot.started:
                    boot.started = time.perf_counter()
                boot.failed = not await _get(session, url + path, headers(n)) or boot.failed
                boot.remaining -= 1
                if boot.remaining == 0:
                    del boots[n]
                    if boot.failed:
                        errors += 1
                    else:
                        boot_times.append(time.perf_counter() - boot.started)

    started = time.monotonic()
    await asyncio.gather(*(connection_loop() for _ in range(connections)))
    elapsed = time.monotonic() - started
    return StormResult(PATTERNS[1], len(boot_times), elapsed, boot_times, errors)


DRIVERS = {PATTERNS[0]: side_by_side, PATTERNS[1]: overlapping}
