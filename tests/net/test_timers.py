"""The shared timers: sleeps and alarms on one trio deadline per slot."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.net.timers import TIMER_SLOT_SECONDS, Alarm, sleep, sleep_until, timers

T = TypeVar("T")


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


def _slot_after(when: float) -> float:
    return math.ceil(when / TIMER_SLOT_SECONDS) * TIMER_SLOT_SECONDS


def test_sleepers_wake_in_order_never_early_at_most_one_slot_late() -> None:
    delays = [3.0, 0.2, 2.5, 0.0625, 1.0, 0.3, 2.5, 7.77]  # distinct slots but the 2.5s

    async def main() -> list[tuple[float, float]]:
        woke: list[tuple[float, float]] = []

        async def sleeper(delay: float) -> None:
            start = trio.current_time()
            await sleep(delay)
            woke.append((delay, trio.current_time() - start))

        async with trio.open_nursery() as nursery:
            for delay in delays:
                nursery.start_soon(sleeper, delay)
        return woke

    woke = _run(main)
    assert [d for d, _ in woke] == sorted(delays)
    for delay, slept in woke:
        assert delay <= slept <= delay + TIMER_SLOT_SECONDS
        assert slept == _slot_after(delay)  # MockClock starts at 0


def test_sleep_until_the_past_or_zero_is_a_checkpoint() -> None:
    async def main() -> None:
        await trio.sleep(1.0)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await sleep(0)  # a checkpoint sees the cancellation
        start = trio.current_time()
        await sleep_until(start - 5)
        await sleep(0)
        assert trio.current_time() == start
        with pytest.raises(ValueError):
            await sleep(-1)
        with pytest.raises(ValueError):
            await sleep_until(math.nan)

    _run(main)


def test_many_loops_share_a_few_slots_a_second() -> None:
    """A thousand 2-second loops started at scattered times: each runs its rounds,
    and the timers' task wakes at most once per slot instead of once per sleep."""
    loops, period, span = 1000, 2.0, 60.0
    rounds = [0] * loops

    async def loop(i: int) -> None:
        await trio.sleep(i * 0.0137 % period)  # scattered phases, as nodes start
        while True:
            rounds[i] += 1
            await sleep(period)

    async def main() -> int:
        async with trio.open_nursery() as nursery:
            for i in range(loops):
                nursery.start_soon(loop, i)
            await trio.sleep(span)
            nursery.cancel_scope.cancel()
        assert timers().slots == 0  # every cancelled sleeper left its slot
        return timers().wakeups

    wakeups = _run(main)
    # Each period is 2 s plus at most one slot.
    low = span / (period + TIMER_SLOT_SECONDS) - 1
    assert all(low <= r <= span / period + 1 for r in rounds)
    assert sum(rounds) > 25 * loops
    assert wakeups <= span / TIMER_SLOT_SECONDS + 1  # vs ~30,000 expired scopes


def test_a_cancelled_sleeper_leaves_at_once_and_the_others_still_wake() -> None:
    async def main() -> None:
        woke: list[str] = []

        async def sleeper(name: str, delay: float) -> None:
            await sleep(delay)
            woke.append(name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper, "a", 1.0)
            with trio.move_on_after(0.5):
                await sleep(1.0)  # the same slot as "a"
            assert trio.current_time() == 0.5
            assert woke == []
            with trio.move_on_after(0.2):
                await sleep(100.0)  # a slot of its own, abandoned
        assert woke == ["a"]
        assert trio.current_time() == 1.0

    _run(main)


def test_slots_abandoned_again_and_again_stay_bounded() -> None:
    async def main() -> None:
        shared = timers()
        for i in range(1000):
            with trio.move_on_after(0.01):
                await sleep(3600.0 + i)  # each its own slot, each left
        assert shared.slots == 0
        assert shared.heap_size <= 2
        start = trio.current_time()
        await sleep(1.0)  # the timers still work
        assert start + 1.0 <= trio.current_time() <= start + 1.0 + TIMER_SLOT_SECONDS

    _run(main)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 20, allow_nan=False),
            st.none() | st.floats(0, 20, allow_nan=False),
        ),
        max_size=30,
    )
)
def test_each_sleeper_wakes_at_its_slot_or_when_cancelled(
    plan: list[tuple[float, float | None]],
) -> None:
    """Against a restatement: a sleeper of ``delay`` cancelled at ``cancel``
    ends at whichever comes first of its slot and its cancellation."""

    async def main() -> list[tuple[float, bool]]:
        ends: list[tuple[float, bool]] = [(math.nan, False)] * len(plan)

        async def sleeper(i: int, delay: float, cancel: float | None) -> None:
            with trio.move_on_after(math.inf if cancel is None else cancel) as scope:
                await sleep(delay)
            ends[i] = (trio.current_time(), scope.cancelled_caught)

        async with trio.open_nursery() as nursery:
            for i, (delay, cancel) in enumerate(plan):
                nursery.start_soon(sleeper, i, delay, cancel)
        assert timers().slots == 0
        return ends

    ends = _run(main)
    for (delay, cancel), (end, cancelled) in zip(plan, ends, strict=True):
        due = _slot_after(delay) if delay > 0 else 0.0
        if cancel is not None and cancel < due:
            assert (end, cancelled) == (cancel, True)
        elif cancel is not None and cancel == due:
            assert end == due
        else:
            assert (end, cancelled) == (due, False)


def test_alarm_wakes_its_waiters_before_their_time() -> None:
    async def main() -> None:
        alarm = Alarm()
        results: list[tuple[bool, float]] = []

        async def waiter(seconds: float) -> None:
            results.append((await alarm.wait(seconds), trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, 10.0)
            nursery.start_soon(waiter, math.inf)
            nursery.start_soon(waiter, 0.5)
            await trio.sleep(3.0)
            assert results == [(False, 0.5)]
            alarm.set()
            alarm.set()  # once is enough
        assert results == [(False, 0.5), (True, 3.0), (True, 3.0)]
        assert timers().slots == 0  # the 10 s waiter left its slot when woken
        assert await alarm.wait(1.0) is True
        assert alarm.is_set()
        assert await Alarm().wait(0) is False
        with pytest.raises(ValueError):
            await Alarm().wait(-1)

    _run(main)


def test_alarm_waiters_can_be_cancelled() -> None:
    async def main() -> None:
        alarm = Alarm()
        with trio.move_on_after(1.0):
            await alarm.wait(5.0)
        with trio.move_on_after(1.0):
            await alarm.wait()
        assert timers().slots == 0
        alarm.set()  # nobody left to wake
        await trio.sleep(10.0)  # and no stray wake-up of the 5 s slot

    _run(main)


def test_real_clock() -> None:
    """The same on trio's real clock: never early, woken by the shared task."""

    async def main() -> None:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for delay in (0.02, 0.05, 0.05, 0.1):
                nursery.start_soon(sleep, delay)
        elapsed = trio.current_time() - start
        assert elapsed >= 0.1
        alarm = Alarm()
        start = trio.current_time()
        assert await alarm.wait(0.05) is False
        assert trio.current_time() - start >= 0.05
        async with trio.open_nursery() as nursery:
            nursery.start_soon(alarm.wait, 30.0)
            await trio.sleep(0.01)
            alarm.set()
        assert trio.current_time() - start < 10.0
        assert timers().wakeups >= 1

    async def bounded() -> None:
        with trio.fail_after(20):
            await main()

    trio.run(bounded)
