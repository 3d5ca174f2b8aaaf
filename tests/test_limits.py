"""The per-instance token bucket and the concurrency gate, driven directly."""

from __future__ import annotations

import asyncio

import pytest

from metadata.config import RateLimit
from metadata.errors import TooManyRequests
from metadata.guest.guard import is_token_path
from metadata.guest.limits import ConcurrencyGate, Overloaded, RateLimiter
from metadata.guest.match import build_matcher


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(RateLimit(2.0, 3), 100, clock=lambda: now[0])
    for _ in range(3):
        limiter.admit("a")
    with pytest.raises(TooManyRequests) as raised:
        limiter.admit("a")
    assert raised.value.retry_after == 1
    limiter.admit("b")  # another instance has its own bucket
    now[0] = 0.5
    limiter.admit("a")
    with pytest.raises(TooManyRequests):
        limiter.admit("a")


def test_a_slow_rate_asks_for_a_longer_wait() -> None:
    limiter = RateLimiter(RateLimit(0.1, 1), 100, clock=lambda: 0.0)
    limiter.admit("a")
    with pytest.raises(TooManyRequests) as raised:
        limiter.admit("a")
    assert raised.value.retry_after == 10


@pytest.mark.parametrize(
    ("path", "critical"),
    [
        ("/latest/api/token", True),
        ("/2009-04-04/meta-data/instance-id", True),
        ("/openstack/latest/meta_data.json", True),
        ("/openstack", True),
        ("/latest/user-data", True),
        ("/latest/meta-data/hostname", False),
        ("/openstack/latest/password", False),
        ("/openstack/2018-08-27/network_data.json", True),
        ("/", True),
        ("/nowhere/meta-data/instance-id", False),
    ],
)
def test_boot_critical_paths(path: str, critical: bool) -> None:
    # what the entry asks before queueing a request for a slot (guest/entry.py)
    matcher = build_matcher({})
    assert (is_token_path(path) or matcher.is_boot_critical(path)) is critical


async def test_the_reserve_is_kept_for_boot_critical_requests() -> None:
    gate = ConcurrencyGate(8, max_wait=0.05)
    for _ in range(7):
        await gate.acquire(critical=False)
    with pytest.raises(Overloaded):
        await gate.acquire(critical=False)
    await gate.acquire(critical=True)
    assert gate.in_flight == 8
    with pytest.raises(Overloaded):
        await gate.acquire(critical=True)


async def test_a_freed_slot_goes_to_a_waiting_critical_request_first() -> None:
    gate = ConcurrencyGate(2, max_wait=1.0)
    await gate.acquire(critical=True)
    await gate.acquire(critical=True)
    ordinary = asyncio.create_task(gate.acquire(critical=False))
    critical = asyncio.create_task(gate.acquire(critical=True))
    await asyncio.sleep(0.01)
    gate.release()
    await asyncio.sleep(0.01)
    assert critical.done() and not ordinary.done()
    gate.release()
    gate.release()
    await asyncio.wait_for(ordinary, 1)
    assert gate.in_flight == 1
