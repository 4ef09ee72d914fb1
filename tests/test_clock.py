"""The fake clock the lease and throttle tests stand on: time moves only when a test says."""

from __future__ import annotations

import asyncio
import time

import pytest

from pact_bot.clock import SYSTEM_CLOCK, FakeClock


async def test_sleepers_wake_only_when_time_passes_their_deadline_in_order() -> None:
    clock = FakeClock(start=1000.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("late", 20), ("early", 5))]
    await clock.advance(4.9)
    assert woke == [] and clock.sleepers == 2
    await clock.advance(20)
    assert woke == [("early", 5), ("late", 20)]  # each saw the time of its own deadline
    assert clock.monotonic() == 24.9 and clock.now() == 1024.9
    await asyncio.gather(*tasks)


async def test_a_loop_that_sleeps_again_wakes_once_per_period_within_one_step() -> None:
    clock = FakeClock()
    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            await clock.sleep(10)
            beats.append(clock.monotonic())

    task = asyncio.create_task(heartbeat())
    await clock.advance(35)
    assert beats == [10, 20, 30]
    task.cancel()


async def test_time_does_not_go_back_and_zero_sleeps_return_at_once() -> None:
    clock = FakeClock()
    await asyncio.wait_for(clock.sleep(0), 1)
    with pytest.raises(ValueError):
        await clock.advance(-1)


async def test_the_system_clock_really_sleeps() -> None:
    before = SYSTEM_CLOCK.monotonic()
    await SYSTEM_CLOCK.sleep(0.01)
    assert SYSTEM_CLOCK.monotonic() - before >= 0.01
    assert abs(SYSTEM_CLOCK.now() - time.time()) < 1
