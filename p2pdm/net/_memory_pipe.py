"""One direction of an in-memory connection: bytes with their delivery times, bounded.

How this works: a write is queued with the time it may be read (``now +
delay``, never before the previous write: bytes stay in order, as TCP keeps
them), and at most PIPE_BUFFER_BYTES wait in a pipe before the writer blocks
(a socket buffer's worth of flow control). All waiting is ``trio`` waiting,
so under ``trio.testing.MockClock`` latency costs no wall time. Used by
:mod:`p2pdm.net.memory_transport` and :mod:`p2pdm.net.tcp_faults`.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import trio
from libp2p.io.exceptions import ConnectionClosedError

__all__ = ["MAX_READ_BYTES", "PIPE_BUFFER_BYTES", "Pipe"]

#: Bytes a pipe holds before its writer blocks: a socket send + receive
#: buffer's worth, so a stalled reader stalls its writer as TCP would.
PIPE_BUFFER_BYTES: Final = 256 << 10
#: Largest single read handed out: Yamux's frame payload cap.
MAX_READ_BYTES: Final = 64 << 10


class Pipe:
    """One direction of a connection (see the module's docstring)."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_last_delivery",
        "_readable",
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
                with trio.move_on_at(at):
                    await self._readable.park()  # woken early only by a reset
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
