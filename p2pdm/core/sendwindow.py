"""The sender's side of one ``/p2pdm/dm/1.0.0`` stream, without I/O.

How this works: a :class:`SendWindow` numbers what the sender writes and
remembers it until its ack comes back. :meth:`SendWindow.send` gives the
next sequence number (1, 2, …; never reused on the stream) and refuses
when ``size`` items are unacknowledged; :meth:`SendWindow.ack` takes an
ack's sequence number and returns what it acknowledges, or raises
ProtocolViolation for a number not in flight (never sent, or acked
already); :meth:`SendWindow.reset` hands back everything still in flight
when the stream ends, oldest first, to be retried. The trio code that
writes frames and reads acks (:mod:`p2pdm.services.dm.sender`) only asks
this class; it holds no state of its own about the window.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from p2pdm.errors import ProtocolViolation

__all__ = ["SendWindow", "WindowFull"]

T = TypeVar("T")


class WindowFull(Exception):
    """:meth:`SendWindow.send` with ``size`` items in flight: wait for an ack first."""


class SendWindow(Generic[T]):
    """Items written and not yet acknowledged, by sequence number; at most ``size``."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a send window holds at least one item")
        self.size = size
        self._seq = 0
        self._in_flight: dict[int, T] = {}

    @property
    def full(self) -> bool:
        """True if :meth:`send` would raise WindowFull."""
        return len(self._in_flight) >= self.size

    def __len__(self) -> int:
        return len(self._in_flight)

    def __iter__(self) -> Iterator[T]:
        """The items in flight, oldest first."""
        return iter(list(self._in_flight.values()))

    def send(self, item: T) -> int:
        """Record ``item`` as written; returns its sequence number. Raises WindowFull."""
        if self.full:
            raise WindowFull(f"{self.size} items in flight")
        self._seq += 1
        self._in_flight[self._seq] = item
        return self._seq

    def ack(self, seq: int) -> T:
        """The item acknowledged by ``seq``, no longer in flight; raises ProtocolViolation
        for a sequence number that is not in flight (never sent or acknowledged already)."""
        try:
            return self._in_flight.pop(seq)
        except KeyError:
            raise ProtocolViolation(f"ack for unknown frame {seq}") from None

    def reset(self) -> list[T]:
        """Everything still in flight, oldest first; the window is empty afterwards.

        Sequence numbers go on counting: a late ack for a reset item is unknown.
        """
        items = list(self._in_flight.values())
        self._in_flight.clear()
        return items
