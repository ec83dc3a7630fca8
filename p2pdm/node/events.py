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
"""

from __future__ import annotations

from types import TracebackType
from typing import Final

import trio

from p2pdm.errors import P2PDMError

__all__ = ["MAX_EVENT_LISTENERS", "EventBus", "Listener", "TooManyListeners"]

#: Clients waiting for events at once (long polls + SSE + WebSockets). A node
#: serves its owner's bots and UIs on one machine: a few dozen is plenty, and
#: each open stream costs a task and a socket.
MAX_EVENT_LISTENERS: Final = 64


class TooManyListeners(P2PDMError):
    """Too many clients are waiting for events at once; try again shortly."""


class Listener:
    """One slot of :class:`EventBus`; released once, by ``with`` or :meth:`release`."""

    def __init__(self, bus: EventBus) -> None:
        self._bus: EventBus | None = bus

    def release(self) -> None:
        if self._bus is not None:
            self._bus.listeners -= 1
            self._bus = None

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
    """Wakes waiting clients when the store's event log grows."""

    def __init__(self, max_listeners: int = MAX_EVENT_LISTENERS) -> None:
        self.max_listeners = max_listeners
        self.listeners = 0
        self._changed = trio.Event()

    def notify(self) -> None:
        """Wake everyone waiting (called by the store after it adds events)."""
        self._changed.set()
        self._changed = trio.Event()

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
