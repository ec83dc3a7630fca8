"""Work that releases the GIL (libsodium, hashlib, file writes, image
decoding) runs in a worker thread so the event loop goes on serving — except
under trio's MockClock (simulations in virtual time, tests with an autojump
clock): that clock jumps ahead while the loop waits for a thread, so
deadlines would fire on a busy machine and a seeded run would no longer
replay; there the work runs on the loop.

:class:`OffLoopCommits` runs a hot path's store work on the loop and its
commit (the fsync of ``synchronous=FULL``) in a worker thread
(:meth:`Store.commit_later`): meanwhile the loop goes on reading, opening
and acking other messages. The caller goes on (acks, events) only after the
commit returned; one such commit is in flight at a time; cancellation
waits for it (shielded, at most ``COMMIT_WAIT_SECONDS``), so the
connection is never left half-committed and what it stored is published.
Readers on the loop's hot paths (the API's requests, the delivery loop,
the withdrawer) first wait for a commit in flight (:meth:`OffLoopCommits.settled`):
a store call finding it still due would do its fsync on the loop.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Final, TypeVar

import trio
import trio.lowlevel

from p2pdm.errors import StoreError
from p2pdm.store.base import Store
from p2pdm.store.pending import PendingCommit, nothing

__all__ = ["COMMIT_WAIT_SECONDS", "OffLoopCommits", "finish_off_loop", "off_loop", "virtual_clock"]

#: How long a task waits for its commit's thread, even when cancelled: a
#: commit is one fsync (milliseconds; seconds on a disk under load). Past
#: it the task stops waiting (its messages are not acked: their senders
#: retry, and find them stored if the commit went through).
COMMIT_WAIT_SECONDS: Final = 60.0

T = TypeVar("T")


def virtual_clock() -> bool:
    """True under trio's MockClock. Never imports ``trio.testing`` (it imports
    pytest): whoever made a MockClock has imported it."""
    testing = sys.modules.get("trio.testing")
    return testing is not None and isinstance(trio.lowlevel.current_clock(), testing.MockClock)


async def off_loop(
    fn: Callable[..., T], *args: object, limiter: trio.CapacityLimiter | None = None
) -> T:
    """``fn(*args)`` in a worker thread (bounded by ``limiter``, else trio's
    default), or on the loop under a virtual clock."""
    if virtual_clock():
        return fn(*args)
    return await trio.to_thread.run_sync(fn, *args, limiter=limiter)


async def finish_off_loop(pending: PendingCommit) -> None:
    """Finish ``pending``'s commit in a worker thread, then wake the event
    listeners its writes held back. Raises StoreError if the commit failed
    (nothing of it stored; its ``on_failure`` ran) or did not finish within
    COMMIT_WAIT_SECONDS. Cancellation waits for the commit (shielded)."""
    if pending.due and not virtual_clock():
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + COMMIT_WAIT_SECONDS
            # abandon_on_cancel: only this deadline cancels (the shield keeps
            # the rest out); an abandoned thread still commits, under the lock.
            await trio.to_thread.run_sync(pending.finish, abandon_on_cancel=True)  # type: ignore[call-arg]
        if scope.cancelled_caught:
            raise StoreError(
                f"the store's commit did not finish within {COMMIT_WAIT_SECONDS:.0f} s"
            )
    pending.finish()  # done: raises its error; under a virtual clock, commits here
    pending.notify()


class OffLoopCommits:
    """Store work with its commit in a worker thread, one commit in flight at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: Taken while a commit is in flight: the next work waits here, not
        #: at the store's lock (which would stop the loop until the commit ends).
        self._turn = trio.Lock()
        #: Set when the commit now in its worker thread returns; None when none is.
        self._in_flight: trio.Event | None = None

    async def settled(self) -> None:
        """Wait, without holding the loop, while a commit of these is in its
        worker thread (returns at once when none is). A store call made after
        it does not find that commit due and do its fsync on the loop itself:
        the loop's readers on hot paths (the API's requests, the delivery
        loop) call this first. Another commit may be due again by the time
        the caller runs; the store still commits it first, as always."""
        in_flight = self._in_flight
        if in_flight is not None:
            await in_flight.wait()

    async def run(self, work: Callable[[], T], on_failure: Callable[[], None] = nothing) -> T:
        """``work()`` (sync store work: one outermost transaction or group) on
        the loop, its commit in a worker thread; its result once committed.
        Raises what ``work`` raised, or StoreError if the commit failed
        (``on_failure`` ran first, before any other store call)."""
        async with self._turn:
            with self.store.commit_later(on_failure) as pending:
                try:
                    result = work()
                except BaseException:
                    # Raised after its transaction was left due: commit it here.
                    with contextlib.suppress(StoreError):
                        pending.finish()
                    pending.notify()
                    raise
            in_flight = None
            if pending.due and not virtual_clock():
                self._in_flight = in_flight = trio.Event()
            try:
                await finish_off_loop(pending)
            finally:
                if in_flight is not None:
                    self._in_flight = None
                    in_flight.set()
        return result
