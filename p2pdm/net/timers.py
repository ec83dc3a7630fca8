"""Shared timers: the periodic sleeps of many loops on one trio deadline.

How this works: ``trio.sleep`` opens a cancel scope per call, and when the
time comes trio cancels it, building and raising a ``Cancelled`` exception
that the scope then catches. A node's periodic loops (the peer watch every
2 s, network maintenance, the outbox scheduler's pass) sleep out nearly
every wait, and a simulation runs hundreds of nodes in one trio run: trio's
deadline bookkeeping was 7-15 % of a 1,000-node profile
(docs/simulation.md, "Scale: 1,000 nodes").

Here one :class:`Timers` per trio run (a system task, made at first use)
keeps the due times in a heap of *slots*. A sleeper parks on the slot of its
due time rounded up to the next multiple of TIMER_SLOT_SECONDS, with no
cancel scope of its own; the task wakes every sleeper of a slot at once and
sleeps (in one cancel scope) until the next slot. So the ~500 peer-watch
wake-ups per second of a 1,000-node network cost a handful of expired
scopes instead of ~500. A sleep lasts at least what was asked and at most
one slot more; cancelling a sleeper (its own scope, the nursery ending)
takes it off its slot at once, as ``trio.sleep`` would.

:class:`Alarm` is a ``trio.Event`` whose waiters can also give up after a
time (:meth:`Alarm.wait` with ``seconds``), on the same slots: for loops
that sleep until asked or until their next round, without
``move_on_after`` around the wait.

The rounding is a pure function of trio's clock, so a virtual-time
simulation replays exactly as before (tests/sim/test_replay.py); a real
node sees its loops run up to 62.5 ms late, which none of them notices.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from typing import Final

import trio
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

__all__ = ["TIMER_SLOT_SECONDS", "Alarm", "Timers", "sleep", "sleep_until", "timers"]

#: Sleeps are due on multiples of this: 1/16 s (a power of two, so the
#: rounding is exact in floating point). Small beside the loops' periods
#: (2 to 3,600 s), large enough that a thousand loops share a few slots a second.
TIMER_SLOT_SECONDS: Final = 1 / 16
#: The heap is rebuilt without its abandoned slots (every sleeper cancelled)
#: when those are more than this many times the live ones (plus one): a loop
#: cancelled again and again before its time leaves bounded garbage.
STALE_SLOTS_FACTOR: Final = 2


class _Slot:
    """The sleepers due at one time, in the order they parked (each with the
    alarm it also waits for, if any), or one callback (:meth:`Timers.call_at`)."""

    __slots__ = ("callback", "tasks", "when")

    def __init__(self, when: float, callback: Callable[[], None] | None = None) -> None:
        self.when = when
        self.tasks: dict[Task, Alarm | None] = {}
        self.callback = callback


class Timers:
    """The shared timers of one trio run (see the module's docstring); use :func:`timers`."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Slot]] = []
        self._slots: dict[float, _Slot] = {}
        self._order = itertools.count()
        self._stale = 0
        self._scope: trio.CancelScope | None = None
        #: Times the timers' task woke sleepers (one expired scope each).
        self.wakeups = 0
        trio.lowlevel.spawn_system_task(self._run, name="p2pdm shared timers")

    @property
    def slots(self) -> int:
        """Slots with a sleeper (for tests and statistics)."""
        return len(self._slots)

    @property
    def heap_size(self) -> int:
        """Heap entries, abandoned slots included (bounded by STALE_SLOTS_FACTOR)."""
        return len(self._heap)

    async def sleep_until(self, when: float) -> None:
        """Return at ``when`` or up to one slot later (at once, after a checkpoint, if past)."""
        if math.isnan(when):
            raise ValueError("sleep_until: the time is NaN")
        if when <= trio.current_time():
            await trio.lowlevel.checkpoint()
            return
        if math.isinf(when):
            await trio.sleep_forever()
        await self._park(self._slot(when), None)

    async def sleep(self, seconds: float) -> None:
        """Sleep at least ``seconds`` (at most one slot more); raises ValueError if negative."""
        if seconds < 0:
            raise ValueError("sleep: the time must not be negative")
        await self.sleep_until(trio.current_time() + seconds)

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` from the timers' task at ``when`` exactly (no slot rounding).

        For wake-ups that keep their own times (the memory pipes): one system
        task for both keeps the order of their wake-ups a function of the run."""
        heapq.heappush(self._heap, (when, next(self._order), _Slot(when, callback)))
        if self._scope is not None and when < self._scope.deadline:
            self._scope.deadline = when

    def _slot(self, when: float) -> _Slot:
        due = math.ceil(when / TIMER_SLOT_SECONDS) * TIMER_SLOT_SECONDS
        slot = self._slots.get(due)
        if slot is None:
            slot = self._slots[due] = _Slot(due)
            heapq.heappush(self._heap, (due, next(self._order), slot))
            if self._scope is not None and due < self._scope.deadline:
                self._scope.deadline = due
        return slot

    async def _park(self, slot: _Slot, alarm: Alarm | None) -> None:
        task = current_task()
        slot.tasks[task] = alarm
        if alarm is not None:
            alarm._tasks[task] = slot

        def abort(_: object) -> Abort:
            self._leave(slot, task)
            if alarm is not None:
                del alarm._tasks[task]
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def _leave(self, slot: _Slot, task: Task) -> None:
        """Take ``task`` off ``slot`` (woken by its alarm, or cancelled)."""
        del slot.tasks[task]
        if slot.tasks or self._slots.get(slot.when) is not slot:
            return
        del self._slots[slot.when]
        self._stale += 1
        if self._stale > STALE_SLOTS_FACTOR * len(self._slots) + 1:
            self._heap = [e for e in self._heap if e[2].tasks or e[2].callback is not None]
            heapq.heapify(self._heap)
            self._stale = 0

    async def _run(self) -> None:
        while True:
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=deadline) as self._scope:
                await trio.sleep_forever()
            self._scope = None
            self.wakeups += 1
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                _, _, slot = heapq.heappop(self._heap)
                if slot.callback is not None:
                    slot.callback()
                    continue
                if self._slots.get(slot.when) is slot:
                    del self._slots[slot.when]
                else:  # abandoned: every sleeper left it
                    self._stale = max(0, self._stale - 1)
                for task, alarm in slot.tasks.items():
                    if alarm is not None:
                        del alarm._tasks[task]
                    reschedule(task)
                slot.tasks.clear()


class Alarm:
    """A ``trio.Event`` whose waiters may give up after a time, on the shared timers.

    :meth:`set` wakes every waiter (for good: make a new alarm for the
    next round, as with ``trio.Event``); :meth:`wait` returns whether it
    was set."""

    __slots__ = ("_flag", "_tasks")

    def __init__(self) -> None:
        self._flag = False
        #: Waiting tasks → the timer slot each also waits on (None: no time limit).
        self._tasks: dict[Task, _Slot | None] = {}

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        """Wake every waiter (once; later calls do nothing)."""
        if self._flag:
            return
        self._flag = True
        for task, slot in self._tasks.items():
            if slot is not None:  # it waits on the shared timers too
                _TIMERS.get()._leave(slot, task)
            reschedule(task)
        self._tasks.clear()

    async def wait(self, seconds: float = math.inf) -> bool:
        """Wait until set or ``seconds`` have passed (up to one slot more); True if set.

        Raises ValueError if ``seconds`` is negative or NaN."""
        if not seconds >= 0:
            raise ValueError("Alarm.wait: the time must not be negative")
        if self._flag:
            await trio.lowlevel.checkpoint()
            return True
        if seconds == 0:
            await trio.lowlevel.checkpoint()
            return self._flag
        if math.isinf(seconds):
            task = current_task()
            self._tasks[task] = None

            def abort(_: object) -> Abort:
                del self._tasks[task]
                return Abort.SUCCEEDED

            await wait_task_rescheduled(abort)
            return True
        shared = timers()
        await shared._park(shared._slot(trio.current_time() + seconds), self)
        return self._flag


_TIMERS: trio.lowlevel.RunVar[Timers] = trio.lowlevel.RunVar("p2pdm_shared_timers")


def timers() -> Timers:
    """This trio run's shared timers (made, with their task, at the first call)."""
    try:
        return _TIMERS.get()
    except LookupError:
        shared = Timers()
        _TIMERS.set(shared)
        return shared


async def sleep(seconds: float) -> None:
    """``trio.sleep`` on the shared timers: at least ``seconds``, at most one slot more."""
    await timers().sleep(seconds)


async def sleep_until(when: float) -> None:
    """``trio.sleep_until`` on the shared timers: at ``when`` or up to one slot later."""
    await timers().sleep_until(when)
