"""One direction of an in-memory connection: bytes with their delivery times, bounded.

How this works: a write is queued with the time it may be read (``now +
delay``, never before the previous write: bytes stay in order, as TCP keeps
them), and at most PIPE_BUFFER_BYTES wait in a pipe before the writer blocks
(a socket buffer's worth of flow control). All waiting is ``trio`` waiting,
so under ``trio.testing.MockClock`` latency costs no wall time. Used by
:mod:`p2pdm.net.memory_transport` and :mod:`p2pdm.net.tcp_faults`.

A reader waiting for bytes that are on their way parks without a timer of
its own: one :class:`_Wakeups` task per trio run (a system task) keeps the
pipes' delivery times in a heap and wakes each reader when its bytes are
due. A timer per wait (a cancel scope around every such read) was the
largest single source of trio's deadline bookkeeping in large simulations
(docs/simulation.md, "Scale: 1,000 nodes"). The wake-ups fall on a grid of
WAKE_GRID_SECONDS, so readers whose bytes are due within the same
millisecond share one.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

import trio
from libp2p.io.exceptions import ConnectionClosedError

from p2pdm.net.timers import timers

__all__ = ["MAX_READ_BYTES", "PIPE_BUFFER_BYTES", "WAKE_GRID_SECONDS", "Pipe"]

#: Bytes a pipe holds before its writer blocks: a socket send + receive
#: buffer's worth, so a stalled reader stalls its writer as TCP would.
PIPE_BUFFER_BYTES: Final = 256 << 10
#: Largest single read handed out: Yamux's frame payload cap.
MAX_READ_BYTES: Final = 64 << 10
#: Parked readers are woken on multiples of this: 2**-10 s (~1 ms, a power of
#: two, so the rounding is exact). Each distinct wake-up time is one expired
#: cancel scope and one pass of trio's scheduler; with every write's delivery
#: time drawn anew (latency + jitter) nearly every time was distinct, and these
#: wake-ups were 87 % of all expired scopes of a 30-node virtual run. Bytes
#: arrive up to 1 ms after their delivery time: below the links' modelled
#: precision (30 ms + 0-20 ms jitter by default), and never early.
WAKE_GRID_SECONDS: Final = 2**-10


class _Wakeups:
    """Wakes each pipe's parked reader when its next bytes are due, from the
    shared timers' task (:meth:`p2pdm.net.timers.Timers.call_at`): one timer
    for every pipe of a trio run instead of one per wait, and one system task
    for these and the nodes' loops."""

    def at(self, when: float, pipe: Pipe) -> None:
        """Wake ``pipe``'s reader at ``when``, rounded up to the grid (unless it was asked
        for earlier)."""
        when = math.ceil(when / WAKE_GRID_SECONDS) * WAKE_GRID_SECONDS
        if when >= pipe._wake_at:
            return
        pipe._wake_at = when

        def wake() -> None:
            if pipe._wake_at == when:
                pipe._wake_at = math.inf
                pipe._readable.unpark_all()

        timers().call_at(when, wake)


_WAKEUPS: Final = _Wakeups()


def _wakeups() -> _Wakeups:
    return _WAKEUPS


class Pipe:
    """One direction of a connection (see the module's docstring)."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_last_delivery",
        "_readable",
        "_wake_at",
        "_writable",
        "broken",
        "eof",
        "reader_gone",
    )

    def __init__(self) -> None:
        self._chunks: deque[tuple[float, bytes]] = deque()
        self._buffered = 0
        self._last_delivery = -float("inf")
        self._readable = trio.lowlevel.ParkingLot()
        self._writable = trio.lowlevel.ParkingLot()
        #: When :class:`_Wakeups` will wake our reader (inf: not asked).
        self._wake_at = math.inf
        self.eof = False  # the writer closed: read what is queued, then b""
        self.reader_gone = False  # the reader closed: further writes fail
        self.broken = False  # reset: both ends fail at once

    def break_(self) -> None:
        self.broken = True
        self._chunks.clear()
        self._buffered = 0
        self._readable.unpark_all()
        self._writable.unpark_all()

    def close_write(self) -> None:
        self.eof = True
        self._readable.unpark_all()

    def close_read(self) -> None:
        self.reader_gone = True
        self._chunks.clear()
        self._buffered = 0
        self._writable.unpark_all()

    async def write(self, data: bytes, delay: float) -> None:
        """Queue ``data`` for delivery ``delay`` seconds from now (never before earlier data)."""
        while self._buffered >= PIPE_BUFFER_BYTES and not (self.broken or self.reader_gone):
            await self._writable.park()
        if self.broken or self.reader_gone:
            raise ConnectionClosedError("connection reset by peer", transport="memory")
        at = max(trio.current_time() + delay, self._last_delivery)
        self._last_delivery = at
        self._chunks.append((at, data))
        self._buffered += len(data)
        if len(self._chunks) == 1:
            # A reader waiting for earlier bytes is woken when those are due.
            self._readable.unpark_all()
        await trio.lowlevel.checkpoint()

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` delivered bytes; b"" once the writer closed and all is read."""
        while True:
            if self.broken:
                raise ConnectionClosedError("connection reset by peer", transport="memory")
            if self._chunks:
                at = self._chunks[0][0]
                if at <= trio.current_time():
                    data = self._take(max_bytes)
                    await trio.lowlevel.checkpoint()
                    return data
                _wakeups().at(at, self)
                await self._readable.park()  # then, or by a reset
            elif self.eof:
                await trio.lowlevel.checkpoint()
                return b""
            else:
                await self._readable.park()

    def _take(self, max_bytes: int) -> bytes:
        now = trio.current_time()
        parts: list[bytes] = []
        size = 0
        while self._chunks and self._chunks[0][0] <= now and size < max_bytes:
            at, data = self._chunks.popleft()
            room = max_bytes - size
            if len(data) > room:
                self._chunks.appendleft((at, data[room:]))
                data = data[:room]
            parts.append(data)
            size += len(data)
        self._buffered -= size
        self._writable.unpark_all()
        return b"".join(parts)
