"""Real TCP with a memory network's link faults: latency, jitter and loss in real time.

How this works: a :class:`TcpFaults` holds one
:class:`~p2pdm.net.memory_transport.LinkFaults` for every connection of the
hosts opened with ``open_host(…, faults=tcp_faults)``; changing
:attr:`TcpFaults.faults` applies to every write from then on (a scenario's
``[[link]]``). Such a host's transport is libp2p's TCP, wrapped: each
connection, dialed or accepted, writes into one of the memory network's
pipes (bounded, in order) and a task per connection moves the bytes on into
the socket when they are due. The faults are the memory network's, with its
code and constants:

- latency and jitter delay every write, never before earlier bytes;
- loss ``p``: each write is lost with probability ``p`` and arrives one
  retransmission timeout later (doubling per further loss), holding up the
  bytes behind it; after MAX_RETRANSMITS losses in a row the connection
  breaks (the socket is closed). A dial waits out each lost SYN
  (SYN_RTO_SECONDS, doubling) and one round trip before it connects.

Only writes are delayed: between two such hosts each direction is delayed
once, by its writer. A peer outside (``--bootstrap``) sends undelayed.
Partitions over TCP are the host's peer filter, not this module's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import multiaddr
import trio
from libp2p.abc import IListener, IRawConnection, ITransport
from libp2p.custom_types import THandler
from libp2p.io.abc import ReadWriteCloser
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.transport.exceptions import OpenConnectionError
from libp2p.transport.tcp.tcp import TCP

from p2pdm.net._memory_pipe import MAX_READ_BYTES, Pipe
from p2pdm.net.memory_transport import MAX_RETRANSMITS, LinkFaults, syn_timeouts

__all__ = ["TcpFaults"]

logger = logging.getLogger(__name__)

#: Longest wait for a socket to close (it closes at once; a bound all the same).
CLOSE_TIMEOUT_SECONDS: Final = 1.0


class TcpFaults:
    """Latency, jitter and loss for the TCP connections of the hosts that share it.

    ``faults`` may be replaced at any time; ``seed`` fixes the loss and
    jitter draws. :attr:`stats` counts dials, accepted connections, lost
    packets and broken connections.
    """

    def __init__(self, faults: LinkFaults | None = None, *, seed: int = 0) -> None:
        self.faults = faults or LinkFaults()
        self._random = random.Random(seed)
        self.stats: dict[str, int] = dict.fromkeys(("dials", "accepted", "lost", "breaks"), 0)

    def __repr__(self) -> str:
        return f"TcpFaults({self.faults})"

    def transport(self) -> FaultyTcpTransport:
        """A transport for one host; run it with :meth:`FaultyTcpTransport.running`."""
        return FaultyTcpTransport(self)

    def _write_delay(self, conn: _FaultyConn) -> float:
        delay, losses = self.faults.write_delay(self._random)
        self.stats["lost"] += losses
        if losses > MAX_RETRANSMITS:
            self.stats["breaks"] += 1
            conn.break_()
        return delay

    async def _before_dial(self, maddr: multiaddr.Multiaddr) -> None:
        """Wait out lost SYNs and the handshake's round trip.

        Raises OpenConnectionError if every SYN is lost.
        """
        self.stats["dials"] += 1
        for syn_rto in syn_timeouts():
            if not self.faults.syn_lost(self._random):
                await trio.sleep(2 * self.faults.latency)  # SYN, SYN-ACK
                return
            self.stats["lost"] += 1
            await trio.sleep(syn_rto)
        raise OpenConnectionError(f"connection to {maddr} timed out (every SYN lost)")


class _FaultyConn(ReadWriteCloser):
    """A TCP connection whose writes pass through a delaying pipe."""

    def __init__(self, inner: ReadWriteCloser, links: TcpFaults) -> None:
        self._inner = inner
        self._links = links
        self._out = Pipe()
        self._closed = False

    async def read(self, n: int | None = None) -> bytes:
        if self._closed:  # as libp2p's TCP stream reads a locally closed socket
            await trio.lowlevel.checkpoint()
            return b""
        return await self._inner.read(n)

    async def write(self, data: bytes) -> None:
        if self._closed:  # libp2p's TCP stream ignores writes after a local close
            await trio.lowlevel.checkpoint()
            return
        await self._out.write(bytes(data), self._links._write_delay(self))

    async def close(self) -> None:
        """Close once the bytes written so far have gone out (as a socket's close)."""
        if not self._closed:
            self._closed = True
            self._out.close_write()
        await trio.lowlevel.checkpoint()

    def break_(self) -> None:
        self._out.break_()

    def get_remote_address(self) -> tuple[str, int] | None:
        return self._inner.get_remote_address()

    async def send_due_bytes(self) -> None:
        """Move bytes into the socket as they fall due; close it after the last (or a break)."""
        try:
            while data := await self._out.read(MAX_READ_BYTES):
                await self._inner.write(data)
        except Exception as exc:  # a break, or the socket failed: it is closed below
            logger.debug("faulty TCP connection ended: %r", exc)
            self._out.break_()
        finally:
            # Also when cancelled (the host stopped): the socket must not leak.
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT_SECONDS):
                try:
                    await self._inner.close()
                except Exception as exc:
                    logger.debug("closing a faulty TCP connection failed: %r", exc)


class FaultyTcpTransport(ITransport):
    """libp2p's TCP transport with :class:`TcpFaults` on every connection."""

    def __init__(self, links: TcpFaults) -> None:
        self._links = links
        self._tcp = TCP()
        self._nursery: trio.Nursery | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the connections' senders for the duration of the block; leaving closes them."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                yield
            finally:
                self._nursery = None
                nursery.cancel_scope.cancel()

    def _wrap(self, inner: ReadWriteCloser) -> _FaultyConn:
        if self._nursery is None:
            raise OpenConnectionError("the faulty TCP transport is not running")
        conn = _FaultyConn(inner, self._links)
        self._nursery.start_soon(conn.send_due_bytes)
        return conn

    async def dial(self, maddr: multiaddr.Multiaddr) -> IRawConnection:
        await self._links._before_dial(maddr)
        raw = await self._tcp.dial(maddr)
        try:
            return RawConnection(self._wrap(raw), True)
        except OpenConnectionError:
            await raw.close()
            raise

    def create_listener(self, handler_function: THandler) -> IListener:
        async def accept(inner: ReadWriteCloser) -> None:
            try:
                conn = self._wrap(inner)
            except OpenConnectionError:
                await inner.close()
                return
            self._links.stats["accepted"] += 1
            await handler_function(conn)

        return self._tcp.create_listener(accept)

    def can_dial(self, maddr: multiaddr.Multiaddr) -> bool:
        return self._tcp.can_dial(maddr)

    def can_listen(self, maddr: multiaddr.Multiaddr) -> bool:
        return self._tcp.can_listen(maddr)

    def protocols(self) -> list[str]:
        return self._tcp.protocols()
