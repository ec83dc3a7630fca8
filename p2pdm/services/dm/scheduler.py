"""The outbox scheduler: when to send what is queued, and to whom.

How this works: :class:`Scheduler` wakes when something is queued, when a
retry falls due or at least every ``SCHEDULER_MAX_SLEEP``; it reads the due
outbox entries (``MAX_DUE_BATCH`` a pass), expires the ones past expiry and
runs one sender task per recipient, at most ``MAX_ACTIVE_SENDERS`` at once;
more recipients wait for a free slot. A recipient a dial just failed for
waits out its backoff instead of being dialled per message; a recipient
that connects is retried at once (:meth:`Scheduler.retry_now`), cutting
short the dial, lookup or deposit its sender may be busy with. A running
sender is woken, not doubled, when more is queued for its recipient.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.ratelimit import FailureLog
from p2pdm.net.timers import Alarm
from p2pdm.services.dm.outbox import OutboxBook
from p2pdm.services.limits import MAX_ACTIVE_SENDERS, MAX_DUE_BATCH, SCHEDULER_MAX_SLEEP

__all__ = ["Scheduler"]


class Scheduler:
    """Runs ``send_to(peer)`` for each recipient with something due, one task per recipient.

    ``logs``: failure logs whose windows are flushed on every pass.
    """

    def __init__(
        self,
        book: OutboxBook,
        send_to: Callable[[PeerId], Awaitable[None]],
        logs: tuple[FailureLog, ...] = (),
    ) -> None:
        self.book = book
        self.send_to = send_to
        self.logs = logs
        self._wake = Alarm()
        #: Recipients with a running sender, and the event that wakes it.
        self._senders: dict[PeerId, trio.Event] = {}
        #: Peers a dial just failed for, and the trio time to try them again:
        #: a new message for them waits for that, not a dial per message.
        self._unreachable_until: dict[PeerId, float] = {}
        #: Senders busy reaching their peer or depositing, and the scope that
        #: cuts that short (:meth:`interruptible`).
        self._interruptible: dict[PeerId, trio.CancelScope] = {}

    def wake(self, peer: PeerId | None = None) -> None:
        """Something was queued: run the scheduler (and the peer's sender) now."""
        if peer is not None and peer in self._senders:
            self._senders[peer].set()  # its sender reads the outbox itself
            return
        self._wake.set()

    def arm(self, peer: PeerId) -> trio.Event:
        """A fresh wake-up event for ``peer``'s running sender: set by :meth:`wake` from now on."""
        event = self._senders[peer] = trio.Event()
        return event

    def unreachable(self, peer: PeerId, for_seconds: float) -> None:
        """A dial to ``peer`` failed: leave it alone for ``for_seconds``."""
        self._unreachable_until[peer] = trio.current_time() + for_seconds

    def reachable(self, peer: PeerId) -> None:
        self._unreachable_until.pop(peer, None)

    @contextmanager
    def interruptible(self, peer: PeerId) -> Iterator[None]:
        """A block of ``peer``'s sender that :meth:`retry_now` cuts short: trying to
        reach the peer (stale addresses, a DHT lookup) and depositing at mailboxes
        take seconds, while the peer that just connected can be sent to at once.
        A cut-short deposit is harmless: mailboxes dedupe repeated deposits."""
        scope = self._interruptible[peer] = trio.CancelScope()
        try:
            with scope:
                yield
        finally:
            if self._interruptible.get(peer) is scope:
                del self._interruptible[peer]

    def retry_now(self, peer: PeerId) -> None:
        """``peer`` is reachable again (it connected): send what waits for it now."""
        self.reachable(peer)
        self.book.due_now(peer)
        scope = self._interruptible.get(peer)
        if scope is not None:
            scope.cancel()  # its sender ends; the next pass starts a fresh one
        self.wake(peer)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                self._wake = Alarm()
                now = self.book.now_ms()
                due = self.book.store.outbox_due(now, MAX_DUE_BATCH)
                self.book.expire([item for item in due if item.expires_at_ms <= now])
                live = (item.recipient for item in due if item.expires_at_ms > now)
                clock = trio.current_time()
                self._unreachable_until = {
                    p: t for p, t in self._unreachable_until.items() if t > clock
                }
                for peer in dict.fromkeys(live):
                    if peer in self._unreachable_until:
                        continue
                    if peer in self._senders:
                        self._senders[peer].set()
                    elif len(self._senders) < MAX_ACTIVE_SENDERS:
                        self._senders[peer] = trio.Event()
                        nursery.start_soon(self._sender, peer)
                for failures in self.logs:
                    failures.flush(clock)
                # On the shared timers: a quiet node's pass every few seconds
                # costs no cancel scope of its own (p2pdm.net.timers).
                await self._wake.wait(SCHEDULER_MAX_SLEEP)

    async def _sender(self, peer: PeerId) -> None:
        try:
            await self.send_to(peer)
        finally:
            self._senders.pop(peer, None)
            self._wake.set()
