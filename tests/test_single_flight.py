"""Single flight: concurrent callers of one key share one load; other keys do not wait."""

from __future__ import annotations

import asyncio

import pytest

from metadata.single_flight import SingleFlight


class CountingLoad:
    """A load that counts its calls and finishes only when told to."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        return self.calls


async def test_concurrent_callers_of_one_key_share_one_load() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    load = CountingLoad()
    callers = [asyncio.ensure_future(flight.run("a", load)) for _ in range(24)]
    await asyncio.sleep(0)
    load.release.set()
    assert await asyncio.gather(*callers) == [1] * 24
    assert load.calls == 1
    assert len(flight) == 0


async def test_a_load_after_the_flight_landed_runs_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    load = CountingLoad()
    load.release.set()
    assert await flight.run("a", load) == 1
    assert await flight.run("a", load) == 2


async def test_different_keys_load_separately() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    load = CountingLoad()
    first = asyncio.ensure_future(flight.run("a", load))
    second = asyncio.ensure_future(flight.run("b", load))
    load.release.set()
    await asyncio.gather(first, second)
    assert load.calls == 2


async def test_every_waiter_sees_the_loads_error() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def failing() -> int:
        await asyncio.sleep(0)
        raise LookupError("no such instance")

    callers = [asyncio.ensure_future(flight.run("a", failing)) for _ in range(3)]
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(r, LookupError) for r in results)
    assert len(flight) == 0


async def test_a_caller_that_goes_away_does_not_cancel_the_load_for_the_others() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    load = CountingLoad()
    leaving = asyncio.ensure_future(flight.run("a", load))
    staying = asyncio.ensure_future(flight.run("a", load))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    load.release.set()
    assert await staying == 1


async def test_wait_returns_none_when_nothing_is_in_flight() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    assert await flight.wait("a") is None
    load = CountingLoad()
    started = asyncio.ensure_future(flight.run("a", load))
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(flight.wait("a"))
    await asyncio.sleep(0)
    load.release.set()
    assert await waiting == 1 and await started == 1
