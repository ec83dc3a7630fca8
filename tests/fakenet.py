"""An in-memory network of nodes for fast delivery tests: no sockets, no libp2p.

Streams are trio memory stream pairs wrapped in the real
:class:`p2pdm.net.stream.Stream`, so framing, deadlines and limits are the
production code's. Taking a node offline makes dials to it fail. The DHT is
one shared table of records (checked and kept newest-first with the real
``p2pdm.core.records`` rules) and one of providers; like the real DHT, a
provider record outlives its provider going offline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio
import trio.testing

from p2pdm.core import records
from p2pdm.core.identity import PeerId
from p2pdm.errors import PeerUnreachable, StreamRefused
from p2pdm.net.stream import Stream

Handler = Callable[[Stream], Awaitable[None]]


class _Raw:
    def __init__(self, stream: trio.abc.HalfCloseableStream) -> None:
        self._s = stream

    async def receive_some(self, max_bytes: int) -> bytes:
        return bytes(await self._s.receive_some(max_bytes))

    async def send_all(self, data: bytes) -> None:
        await self._s.send_all(data)

    async def close_write(self) -> None:
        await self._s.send_eof()

    async def reset(self) -> None:
        await self._s.aclose()

    async def close(self) -> None:
        await self._s.aclose()


class FakeNetwork:
    """Holds every fake host; each host runs its handlers in the network's nursery."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.hosts: dict[PeerId, FakeHost] = {}
        self.records: dict[str, bytes] = {}
        self.providers: dict[bytes, dict[PeerId, None]] = {}

    def host(self, peer: PeerId) -> FakeHost:
        h = FakeHost(self, peer)
        self.hosts[peer] = h
        return h


class FakeHost:
    def __init__(self, net: FakeNetwork, peer: PeerId) -> None:
        self.net = net
        self.peer_id = peer
        self.handlers: dict[str, Handler] = {}
        self.online = True
        #: Dials to a hanging host never finish (a peer behind a black hole).
        self.hanging = False
        self.disconnected: list[PeerId] = []
        self.dials = 0
        #: DHT peer lookups asked of this host: (peer, fresh), oldest first.
        self.lookups: list[tuple[PeerId, bool]] = []

    def set_handler(self, protocol: str, handler: Handler) -> None:
        self.handlers[protocol] = handler

    async def open_stream(self, peer: PeerId, protocol: str, addrs: Sequence[str] = ()) -> Stream:
        self.dials += 1
        target = self.net.hosts.get(peer)
        if target is not None and target.hanging:
            await trio.sleep_forever()
        if target is None or not target.online or not self.online:
            raise PeerUnreachable(f"{peer.short()} is offline")
        handler = target.handlers.get(protocol)
        if handler is None:
            raise StreamRefused(f"{peer.short()} does not speak {protocol}")
        ours, theirs = trio.testing.memory_stream_pair()
        self.net.nursery.start_soon(handler, Stream(_Raw(theirs), self.peer_id, protocol))
        return Stream(_Raw(ours), peer, protocol)

    async def find_peer(
        self,
        peer: PeerId,
        timeout: float,  # noqa: ASYNC109
        *,
        fresh: bool = False,
    ) -> list[str]:
        self.lookups.append((peer, fresh))
        await trio.lowlevel.checkpoint()
        target = self.net.hosts.get(peer)
        if target is None or not target.online:
            raise PeerUnreachable(f"{peer.short()} not found")
        return [f"/memory/{peer}"]

    def peer_addrs(self, peer: PeerId) -> list[str]:
        return [f"/memory/{peer}"] if peer in self.net.hosts else []

    async def disconnect(self, peer: PeerId) -> None:
        self.disconnected.append(peer)

    def _check_online(self) -> None:
        if not self.online:
            raise PeerUnreachable("this host is offline")

    async def get_record(
        self,
        key: str,
        timeout: float,  # noqa: ASYNC109
        *,
        keep: bool = True,
    ) -> bytes | None:
        self._check_online()
        return self.net.records.get(key)

    async def put_record(self, key: str, value: bytes) -> int:
        self._check_online()
        records.validate(key, value)
        old = self.net.records.get(key)
        if old is None or records.select(key, [old, value]) == 1:
            self.net.records[key] = value
        return 1  # the fake network itself holds it

    async def provide(self, key: bytes) -> None:
        self._check_online()
        self.net.providers.setdefault(key, {})[self.peer_id] = None

    async def find_providers(
        self,
        key: bytes,
        timeout: float,  # noqa: ASYNC109
    ) -> list[tuple[PeerId, list[str]]]:
        self._check_online()
        return [(p, [f"/memory/{p}"]) for p in self.net.providers.get(key, {})]
