"""Waking the clients that wait for events: long polls, Server-Sent Events, WebSockets.

How this works: the events themselves live in the store (its event log,
written in the same transaction as each change). :class:`EventBus` only
says "something was added": the store calls :meth:`EventBus.notify` after
each such write, which sets the current :class:`trio.Event` and puts a fresh
one in its place. A waiter reads the log, and if nothing new is there for
it, waits on the current event; both happen without a checkpoint between
them, so no notification can slip through. A waiter woken by a write that
was rolled back just finds nothing and waits again.

Each waiting client holds a slot (:meth:`EventBus.listener`); at most
:data:`MAX_EVENT_LISTENERS` at once, so a stuck or hostile local client
cannot pile up open streams.

Ephemeral events (``typing``) are never written to the store, so they have
no id and no later client can read them. :meth:`EventBus.publish` hands one
to every slot that follows them (:meth:`Listener.follow`) and wakes the
waiters; each slot keeps at most :data:`MAX_EPHEMERAL_QUEUED` of them until
its client takes them, dropping the oldest when its client is slow.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Final

import trio

from p2pdm.core.model import EventType, LogEvent
from p2pdm.errors import P2PDMError

__all__ = [
    "EPHEMERAL_EVENTS",
    "MAX_EPHEMERAL_QUEUED",
    "MAX_EVENT_LISTENERS",
    "EventBus",
    "Listener",
    "TooManyListeners",
]

#: Clients waiting for events at once (long polls + SSE + WebSockets). A node
#: serves its owner's bots and UIs on one machine: a few dozen is plenty, and
#: each open stream costs a task and a socket.
MAX_EVENT_LISTENERS: Final = 64
#: Ephemeral events one client may have waiting: a client that reads slower
#: than they come loses the oldest (a typing signal is worth nothing once the
#: next one came), and a stuck client holds no more than this.
MAX_EPHEMERAL_QUEUED: Final = 32
#: Event types that are never stored: live to whoever follows, then gone.
EPHEMERAL_EVENTS: Final = frozenset({EventType.TYPING})


class TooManyListeners(P2PDMError):
    """Too many clients are waiting for events at once; try again shortly."""


class Listener:
    """One slot of :class:`EventBus`; released once, by ``with`` or :meth:`release`."""

    def __init__(self, bus: EventBus) -> None:
        self._bus: EventBus | None = bus
        self._wants: Callable[[LogEvent], bool] | None = None
        self._queued: deque[LogEvent] = deque()
        #: Ephemeral events dropped because the client did not take them in time.
        self.dropped = 0

    def follow(self, wants: Callable[[LogEvent], bool] = lambda event: True) -> Listener:
        """Receive the ephemeral events ``wants`` accepts from now on."""
        if self._bus is not None:
            self._wants = wants
            self._bus.followers.add(self)
        return self

    def offer(self, event: LogEvent) -> None:
        """Queue ``event`` if this slot follows such events (the oldest goes when full)."""
        if self._wants is None or not self._wants(event):
            return
        if len(self._queued) >= MAX_EPHEMERAL_QUEUED:
            self._queued.popleft()
            self.dropped += 1
        self._queued.append(event)

    def take(self) -> list[LogEvent]:
        """The ephemeral events queued since the last call, oldest first."""
        taken = list(self._queued)
        self._queued.clear()
        return taken

    def release(self) -> None:
        if self._bus is not None:
            self._bus.listeners -= 1
            self._bus.followers.discard(self)
            self._bus = None
            self._queued.clear()

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class EventBus:
    """Wakes waiting clients when the store's event log grows, and carries the
    ephemeral events that are never stored."""

    def __init__(self, max_listeners: int = MAX_EVENT_LISTENERS) -> None:
        self.max_listeners = max_listeners
        self.listeners = 0
        #: Slots that receive ephemeral events.
        self.followers: set[Listener] = set()
        self._changed = trio.Event()

    def notify(self) -> None:
        """Wake everyone waiting (called by the store after it adds events)."""
        self._changed.set()
        self._changed = trio.Event()

    def publish(self, event: LogEvent) -> None:
        """Hand an ephemeral event to every slot following it, and wake the waiters.
        Nothing is stored: a client that is not following now never sees it."""
        for follower in self.followers:
            follower.offer(event)
        self.notify()

    def listener(self) -> Listener:
        """Take a slot; raises :class:`TooManyListeners` when all are taken."""
        if self.listeners >= self.max_listeners:
            raise TooManyListeners(
                f"{self.listeners} clients are already waiting for events; try again shortly"
            )
        self.listeners += 1
        return Listener(self)

    async def wait(self, timeout_s: float) -> bool:
        """Wait for the next :meth:`notify`, at most ``timeout_s``; True if it came."""
        changed = self._changed
        with trio.move_on_after(timeout_s):
            await changed.wait()
        return changed.is_set()
