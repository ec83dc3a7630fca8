"""The libp2p host as p2pdm sees it: :class:`Host`, made by :func:`~p2pdm.net._open.open_host`.

How this works: a :class:`Host` wraps a running py-libp2p host and its
Kademlia DHT. Everything that crosses its edge is a p2pdm type:
:class:`~p2pdm.core.identity.PeerId`, multiaddr strings,
:class:`~p2pdm.net.stream.Stream`, and p2pdm errors (libp2p's are mapped at
the edge, :mod:`p2pdm.net._edge`). Its DHT methods (records, providers, peer
routing) come from :class:`~p2pdm.net._dht.Dht`; its background upkeep is
:mod:`p2pdm.net._maintenance`; the libp2p workarounds it relies on are in
:mod:`p2pdm.net._patches`.

Addresses: anything handed in may carry a trailing ``/p2p/<peerid>`` (it
must then name the peer in question); everything handed out carries it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import secrets
import weakref
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from typing import cast

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream
from libp2p.custom_types import TProtocol
from libp2p.host.ping import ID as PING_PROTOCOL_ID
from libp2p.host.ping import PING_LENGTH
from libp2p.identity.identify_push.identify_push import ID_PUSH as IDENTIFY_PUSH_PROTOCOL_ID
from libp2p.identity.identify_push.identify_push import push_identify_to_peers
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStoreError

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.reachability import Reachability
from p2pdm.errors import P2PDMError, PeerUnreachable, ProtocolViolation, StreamRefused
from p2pdm.limits import MAX_ADDRS
from p2pdm.net import _maintenance
from p2pdm.net._dht import Dht
from p2pdm.net._dht_guard import DhtGuard, DhtStoreStats
from p2pdm.net._edge import (
    NETWORK_ERRORS,
    PeerFilter,
    StreamHandler,
    asks,
    dial_failure,
    from_id,
    quietly,
    to_id,
    unreachable,
)
from p2pdm.net._holepunch import HolePunchStats
from p2pdm.net._patches import close_connections, reset_by_peer
from p2pdm.net._relay import (
    CircuitV2Protocol,
    RelayLimits,
    RelayStats,
    Reservation,
    dial_circuit,
    is_circuit,
    reservations_held,
    reserve,
    reserved_peers,
)
from p2pdm.net.addrs import full_addr, transport_addr
from p2pdm.net.limits import (
    DIAL_TIMEOUT_SECONDS,
    DIRECT_BEFORE_RELAY_SECONDS,
    IDENTIFY_PUSH_TIMEOUT_SECONDS,
    MAX_CONCURRENT_HANDLERS,
    OPEN_STREAM_TIMEOUT_SECONDS,
    PEERSTORE_ADDR_TTL_SECONDS,
    PING_TIMEOUT_SECONDS,
    SEEDED_ADDR_TTL_SECONDS,
    SEEDED_ADDRS_PARSED,
)
from p2pdm.net.stream import Stream
from p2pdm.net.upkeep import IdleTracker, Upkeep

__all__ = ["Host"]

logger = logging.getLogger(__name__)

#: :func:`transport_addr` of the addresses a simulation seeds routing tables
#: with, kept parsed (multiaddrs are values: the hosts share them).
_seeded_addr = functools.lru_cache(maxsize=SEEDED_ADDRS_PARSED)(transport_addr)


def _is_relayed(conn: INetConn) -> bool:
    """Whether ``conn`` runs through a circuit relay (its addresses say /p2p-circuit)."""
    try:
        addrs = conn.get_transport_addresses()
    except Exception:  # no addresses to read: not a relayed one we made
        return False
    return any("p2p-circuit" in str(addr) for addr in addrs)


class _Libp2pRawStream:
    """A libp2p stream as a :class:`p2pdm.net.stream.RawStream`."""

    __slots__ = ("_stream",)

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream

    async def receive_some(self, max_bytes: int) -> bytes:
        try:
            return await self._stream.read(max_bytes)
        except StreamEOF:
            if reset_by_peer(self._stream):  # not a clean EOF (pitfall 17)
                raise PeerUnreachable("stream reset by the peer or connection lost") from None
            return b""
        except NETWORK_ERRORS as exc:
            raise PeerUnreachable("stream reset by the peer or connection lost") from exc

    async def send_all(self, data: bytes) -> None:
        with unreachable("stream reset or connection lost"):
            await self._stream.write(data)

    async def close_write(self) -> None:
        # NetStream has close_write; the INetStream interface does not promise it.
        close_write = getattr(self._stream, "close_write", self._stream.close)
        with unreachable("stream reset or connection lost"):
            await close_write()

    async def reset(self) -> None:
        with suppress(*NETWORK_ERRORS):
            await self._stream.reset()

    async def close(self) -> None:
        with suppress(*NETWORK_ERRORS):
            await self._stream.close()


class Host(Dht):
    """A running libp2p host as p2pdm sees it. Made by :func:`open_host` only."""

    def __init__(
        self,
        identity: Identity,
        lp_host: IHost,
        dht: KadDHT,
        bootstrap: Sequence[tuple[PeerId, multiaddr.Multiaddr]],
        upkeep: Upkeep,
        dht_guard: DhtGuard,
    ) -> None:
        super().__init__(dht)
        self.peer_id: PeerId = identity.peer_id
        self._host = lp_host
        self._swarm = cast("Swarm", lp_host.get_network())
        self._dht_guard = dht_guard
        self._bootstrap = list(bootstrap)
        self._bootstrap_ids = {to_id(peer) for peer, _ in self._bootstrap}
        self._upkeep = upkeep
        self._idle: IdleTracker[INetConn] = IdleTracker(upkeep.idle_timeout)
        self._last_bootstrap_round = -math.inf
        #: Dials of a bootstrap peer that failed since the start: with no
        #: connection at all, a sign that this node's network is away.
        self.failed_bootstrap_dials = 0
        #: Set once the host has joined the DHT through its bootstrap peers
        #: (or found it had none); :func:`open_host` with a ``join_delay``
        #: returns before that.
        self.joined = trio.Event()
        #: Simulations only: where this host's join would lead, known from the
        #: simulation's plan. Set before a delayed join fires, it replaces the
        #: join's self-lookup: the join dials the bootstrap peers as always,
        #: then puts these peers (with their addresses) in the routing table
        #: (:meth:`seed_routing_table`); every later lookup is a real one.
        self.table_seed: Callable[[], Sequence[tuple[PeerId, Sequence[str]]]] | None = None
        self._dials: dict[PeerId, trio.Event] = {}
        self._handler_limits: dict[str, trio.CapacityLimiter] = {}
        # Set once a bootstrap peer has fetched our identify (so it knows our
        # addresses and will put us in its routing table when we query it).
        self._identified_by = {pid: trio.Event() for pid in self._bootstrap_ids}
        self._allowed: PeerFilter | None = None
        #: Numbers given to connections (:meth:`connections`); gone with them.
        self._conn_numbers: weakref.WeakKeyDictionary[INetConn, int] = weakref.WeakKeyDictionary()
        self._conn_counter = itertools.count(1)
        #: Whether others can dial us, from the last check (``_autonat``).
        self.reachability = Reachability()
        #: "auto": the DHT serves only while :attr:`reachability` says public.
        self.dht_mode_setting = "server"
        #: What our relay did, if we serve as one (``open_host(relay=…)``).
        self.relay_stats = RelayStats()
        #: Hole punches tried on relayed connections (``_holepunch``).
        self.hole_punch_stats = HolePunchStats()
        self.relay_limits: RelayLimits | None = None
        self._relay_proto: CircuitV2Protocol | None = None
        #: Reservations we hold on relays, by relay (``_relay_keeper``).
        self.reservations: dict[PeerId, Reservation] = {}
        #: Relayed addresses of a peer, from outside the DHT (its signed
        #: record): :meth:`find_peer` adds them to what the DHT answers.
        self.relayed_addrs_of: Callable[[PeerId], Awaitable[list[str]]] | None = None
        #: p2pdm nodes found on the LAN by mDNS and their addresses (``_mdns``).
        self.lan_peers: dict[PeerId, list[str]] = {}
        #: Called with each peer mDNS found and we connected to.
        self.lan_peer_listeners: list[Callable[[PeerId], None]] = []
        #: Called when :attr:`reachability` changes status.
        self.reachability_listeners: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Host({self.peer_id})"

    # --- addresses and peers -------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Our dialable addresses, each ending in ``/p2p/<our PeerID>``."""
        return [full_addr(addr, self.peer_id) for addr in self._host.get_addrs()]

    def connected_peers(self) -> list[PeerId]:
        """Peers with an open connection (Ed25519 peers only)."""
        peers = (from_id(pid) for pid, conns in self._swarm.connections.items() if conns)
        return [peer for peer in peers if peer is not None]

    def connections(self) -> dict[PeerId, frozenset[int]]:
        """Peers with an open connection, each connection known by a number that
        is never reused: a peer that reconnected shows a number not seen before."""
        found: dict[PeerId, frozenset[int]] = {}
        for pid, conns in self._swarm.connections.items():
            peer = from_id(pid)
            if peer is not None and conns:
                found[peer] = frozenset(self._connection_number(conn) for conn in conns)
        return found

    def _connection_number(self, conn: INetConn) -> int:
        number = self._conn_numbers.get(conn)
        if number is None:
            number = self._conn_numbers[conn] = next(self._conn_counter)
        return number

    def has_direct_connection(self, peer: PeerId) -> bool:
        """Whether an open connection to ``peer`` is direct (not through a relay)."""
        return any(
            not conn.is_closed and not _is_relayed(conn)
            for conn in self._swarm.get_connections(to_id(peer))
        )

    async def find_peer(
        self,
        peer: PeerId,
        timeout: float,  # noqa: ASYNC109
        *,
        fresh: bool = False,
    ) -> list[str]:
        """Addresses of ``peer`` from DHT peer routing, and its relayed addresses
        (:attr:`relayed_addrs_of`) looked up at the same time. Raises
        PeerUnreachable if neither finds any."""
        relayed: list[str] = []
        routed: list[str] = []
        lost: PeerUnreachable | None = None

        async def look_up_relayed() -> None:
            if self.relayed_addrs_of is not None:
                with trio.move_on_after(timeout), suppress(P2PDMError):
                    relayed.extend(await self.relayed_addrs_of(peer))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(look_up_relayed)
            try:
                routed = await super().find_peer(peer, timeout, fresh=fresh)
            except PeerUnreachable as exc:
                lost = exc
        lan = self.lan_peers.get(peer, [])
        if lost is not None and not relayed and not lan:
            raise lost
        return list(dict.fromkeys([*lan, *routed, *relayed]))[:MAX_ADDRS]

    async def seed_routing_table(self, peers: Sequence[tuple[PeerId, Sequence[str]]]) -> int:
        """Put ``peers`` and their addresses in our peerstore and DHT routing table,
        without asking anyone; returns how many went in. For simulations, whose
        plan knows every node (``Host.table_seed``); a peer of no address is
        skipped."""
        peerstore = self._host.get_peerstore()
        table = self._dht.routing_table
        added = 0
        for peer, addrs in peers:
            if peer == self.peer_id:
                continue
            parsed = [_seeded_addr(addr, peer) for addr in addrs[:MAX_ADDRS]]
            if not parsed:
                continue
            pid = to_id(peer)
            peerstore.add_addrs(pid, parsed, SEEDED_ADDR_TTL_SECONDS)
            if await table.add_peer(PeerInfo(pid, parsed)):
                added += 1
        return added

    async def add_to_routing_table(self, peer: PeerId) -> None:
        """Put a connected ``peer`` in our DHT routing table (one found without the DHT)."""
        with suppress(*NETWORK_ERRORS):
            info = self._host.get_peerstore().peer_info(to_id(peer))
            await self._dht.routing_table.add_peer(info)

    async def reserve(self, relay: PeerId, addrs: Sequence[str] = ()) -> Reservation:
        """A reservation on ``relay`` (kept in :attr:`reservations`). Raises PeerUnreachable."""
        held = await reserve(self._host, self.peer_id, relay, list(addrs), self.connect)
        self.reservations[relay] = held
        return held

    def relayed_addrs(self) -> list[str]:
        """Our addresses through the relays we hold reservations on."""
        return [addr for held in self.reservations.values() for addr in held.addrs]

    def relay_connections_kept(self) -> set[ID]:
        """Peers whose connections are never closed as idle: relays we hold a
        reservation on, and (serving as a relay) peers holding one on us;
        circuits need those connections open."""
        kept = {to_id(relay) for relay in self.reservations}
        if self._relay_proto is not None:
            kept.update(reserved_peers(self._relay_proto))
        return kept

    def relay_reservations_held(self) -> int:
        """Reservations our relay holds for others now (0 if we are no relay)."""
        return 0 if self._relay_proto is None else reservations_held(self._relay_proto)

    def dht_mode(self) -> str:
        """The DHT mode in force now: "server" or "client"."""
        return "server" if self._dht.mode == DHTMode.SERVER else "client"

    def is_connected(self, peer: PeerId) -> bool:
        return any(not conn.is_closed for conn in self._swarm.get_connections(to_id(peer)))

    def peer_protocols(self, peer: PeerId) -> set[str]:
        """Protocols the peer announced through identify; empty until identify has run."""
        try:
            return set(self._host.get_peerstore().get_protocols(to_id(peer)))
        except PeerStoreError:
            return set()

    def peer_addrs(self, peer: PeerId) -> list[str]:
        """Addresses libp2p knows for ``peer`` (identify, DHT, dials); [] if none."""
        try:
            addrs = self._host.get_peerstore().addrs(to_id(peer))
        except PeerStoreError:
            return []
        return [full_addr(addr, peer) for addr in addrs[:MAX_ADDRS]]

    def dht_store_stats(self) -> DhtStoreStats:
        """What our DHT holds for other peers, and the writes it refused or evicted."""
        return self._dht_guard.stats()

    def dht_peers(self) -> list[PeerId]:
        """Peers in our DHT routing table."""
        peers = (from_id(pid) for pid in self._dht.routing_table.get_peer_ids())
        return [peer for peer in peers if peer is not None]

    # --- connections -----------------------------------------------------------

    async def connect(self, peer: PeerId, addrs: Sequence[str] = ()) -> None:
        """Make sure a connection to ``peer`` is open, dialing ``addrs`` in order.

        Without ``addrs``, the addresses libp2p already knows (from the DHT or an
        earlier connect) are used. Raises PeerUnreachable (also after
        DIAL_TIMEOUT_SECONDS), SchemaError for an address of another peer.
        """
        if peer == self.peer_id:
            raise ValueError("a host does not dial itself")
        if not self._permits_peer(peer):
            await trio.lowlevel.checkpoint()
            raise PeerUnreachable(f"cannot connect to {peer.short()}: filtered out")
        if self.is_connected(peer):
            return
        pid = to_id(peer)
        peerstore = self._host.get_peerstore()
        circuits = [text for text in addrs[:MAX_ADDRS] if is_circuit(text)]
        targets = [transport_addr(t, peer) for t in addrs[:MAX_ADDRS] if not is_circuit(t)]
        if targets:
            peerstore.add_addrs(pid, targets, PEERSTORE_ADDR_TTL_SECONDS)
        elif not circuits:
            with suppress(PeerStoreError):
                targets = peerstore.addrs(pid)[:MAX_ADDRS]
        if not targets and not circuits:
            raise PeerUnreachable(f"no known address for {peer.short()}", "no known address")
        pending = self._dials.get(peer)
        if pending is not None:  # another task is dialing: share its connection
            with trio.move_on_after(DIAL_TIMEOUT_SECONDS):
                await pending.wait()
            if self.is_connected(peer):
                return
        done = self._dials[peer] = trio.Event()
        try:
            await self._dial(peer, pid, targets, circuits)
        finally:
            done.set()
            if self._dials.get(peer) is done:
                del self._dials[peer]

    async def _dial(
        self,
        peer: PeerId,
        pid: ID,
        targets: list[multiaddr.Multiaddr],
        circuits: Sequence[str] = (),
    ) -> None:
        """Direct addresses first (DIRECT_BEFORE_RELAY_SECONDS of them when
        there are relayed ones), then through relays."""
        # The caller decided to try now: lift libp2p's 60 s "recently failed" block.
        self._swarm.unblock_peer(pid)
        failures: list[str] = []
        reasons: list[str] = []
        direct_budget = DIRECT_BEFORE_RELAY_SECONDS if circuits else DIAL_TIMEOUT_SECONDS
        with trio.move_on_after(direct_budget):
            for addr in targets:
                try:
                    await self._swarm.dial_addr(addr, pid)
                except NETWORK_ERRORS as exc:
                    reasons.append(dial_failure(exc))
                    failures.append(f"{addr}: {reasons[-1]}")
                    continue
                return
        for circuit in circuits:
            try:
                await dial_circuit(self._host, peer, circuit, self.connect)
            except P2PDMError as exc:
                reasons.append(str(exc.args[-1]) if exc.args else "relay failed")
                failures.append(f"{circuit}: {exc}")
                continue
            return
        if len(failures) < len(targets) + len(circuits):
            reasons.append(f"no answer within {DIAL_TIMEOUT_SECONDS:g} s")
            failures.append(reasons[-1])
        raise PeerUnreachable(
            f"cannot connect to {peer.short()}: " + "; ".join(failures),
            ", ".join(dict.fromkeys(reasons)),
        )

    async def disconnect(self, peer: PeerId) -> None:
        """Close every connection to ``peer`` (its streams are reset)."""
        with suppress(*NETWORK_ERRORS):
            await self._swarm.close_peer(to_id(peer))

    # --- peer filter -----------------------------------------------------------

    def set_peer_filter(self, allowed: PeerFilter | None) -> None:
        """Talk only to peers for which ``allowed(peer)`` is true; None lifts the filter.

        While a filter is set, a refused peer is unreachable both ways, as if
        it were offline: dials and new streams to it raise PeerUnreachable at
        once (so delivery falls back to mailboxes), its connections to us are
        dropped right after the handshake, and connections to it open now are
        closed (in the background; their streams are reset). DHT lookups find
        refused peers unreachable and libp2p drops them from the routing
        table; when a bootstrap peer is allowed again, the host rejoins the
        DHT through it in the background. ``allowed`` runs for every dial,
        connection and new stream: keep it cheap; if it raises, the peer is
        refused.
        """
        before = self._allowed
        self._allowed = allowed
        tasks = self._tasks
        if tasks is None:
            return
        refused = [
            conn
            for conn in self._swarm.get_connections()
            if not self._permits(conn.muxed_conn.peer_id)
        ]
        if refused:
            tasks.start_soon(close_connections, refused)
        regained = before is not None and any(
            not asks(before, peer) and self._permits_peer(peer) for peer, _ in self._bootstrap
        )
        if regained:
            tasks.start_soon(_maintenance.rejoin, self)

    def _permits_peer(self, peer: PeerId) -> bool:
        return self._allowed is None or asks(self._allowed, peer)

    def _permits(self, pid: ID) -> bool:
        """The filter on a libp2p ID (peers without an Ed25519 key are refused while it is set)."""
        if self._allowed is None:
            return True
        peer = from_id(pid)
        return peer is not None and asks(self._allowed, peer)

    async def _open_libp2p_stream(
        self, peer: PeerId, protocol: str, addrs: Sequence[str]
    ) -> INetStream:
        try:
            with trio.fail_after(OPEN_STREAM_TIMEOUT_SECONDS):
                await self.connect(peer, addrs)
                with unreachable(f"{peer.short()} refused a {protocol} stream", StreamRefused):
                    return await self._host.new_stream(to_id(peer), [TProtocol(protocol)])
        except trio.TooSlowError:
            raise PeerUnreachable(
                f"no {protocol} stream to {peer.short()} within {OPEN_STREAM_TIMEOUT_SECONDS:g} s",
                f"no answer within {OPEN_STREAM_TIMEOUT_SECONDS:g} s",
            ) from None

    async def open_stream(self, peer: PeerId, protocol: str, addrs: Sequence[str] = ()) -> Stream:
        """A new stream to ``peer`` speaking ``protocol``, connecting first if needed.

        Raises PeerUnreachable if the peer cannot be reached or does not
        speak ``protocol``.
        """
        raw = await self._open_libp2p_stream(peer, protocol, addrs)
        return Stream(_Libp2pRawStream(raw), peer, protocol)

    async def ping(self, peer: PeerId) -> float:
        """Round-trip time to ``peer`` in seconds (libp2p ping). Raises PeerUnreachable."""
        stream = await self._open_libp2p_stream(peer, PING_PROTOCOL_ID, ())
        payload = secrets.token_bytes(PING_LENGTH)
        echo = b""
        try:
            with trio.fail_after(PING_TIMEOUT_SECONDS), unreachable("ping failed"):
                start = trio.current_time()
                await stream.write(payload)
                while len(echo) < PING_LENGTH:  # each read returns >= 1 byte or raises
                    echo += await stream.read(PING_LENGTH - len(echo))
                rtt = trio.current_time() - start
        except trio.TooSlowError:
            raise PeerUnreachable(f"no ping reply within {PING_TIMEOUT_SECONDS:g} s") from None
        finally:
            await quietly(stream.close, "closing a ping stream")
        if echo != payload:
            raise ProtocolViolation(f"{peer.short()} answered a ping with other bytes")
        return rtt

    def set_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol`` with ``handler``, replacing any earlier one.

        Whatever the handler raises is logged and the stream reset; the host
        serves on. At most MAX_CONCURRENT_HANDLERS streams of one protocol
        are handled at once; more are reset. The stream is closed when the
        handler returns.
        """
        if not protocol.startswith("/"):
            raise ValueError(f"protocol ids start with '/': {protocol!r}")
        limiter = self._handler_limits.setdefault(
            protocol, trio.CapacityLimiter(MAX_CONCURRENT_HANDLERS)
        )

        async def serve(raw: INetStream) -> None:
            remote = from_id(raw.muxed_conn.peer_id)
            if remote is None:
                logger.info("reset a %s stream from a non-Ed25519 peer", protocol)
                await _Libp2pRawStream(raw).reset()
                return
            stream = Stream(_Libp2pRawStream(raw), remote, protocol)
            try:
                await handler(stream)
            except P2PDMError as exc:
                logger.info("%s with %s ended: %s", protocol, remote.short(), exc)
                await stream.reset()
            else:
                await stream.close()

        self._host.set_stream_handler(TProtocol(protocol), self._guarded(protocol, serve, limiter))

    async def announce_protocols(self) -> None:
        """Tell connected peers, by identify push, which protocols we serve now.

        Identify runs once, when a connection opens: peers that connected
        before a :meth:`set_handler` (those met while joining the DHT, which
        :func:`open_host` does first) would not know of the new protocol.
        Only peers that take identify push are told; best effort, at most
        IDENTIFY_PUSH_TIMEOUT_SECONDS.
        """
        peerstore = self._host.get_peerstore()
        peers: set[ID] = set()
        for pid in self._host.get_connected_peers():
            with suppress(PeerStoreError):
                if IDENTIFY_PUSH_PROTOCOL_ID in peerstore.get_protocols(pid):
                    peers.add(pid)
        if peers:
            with trio.move_on_after(IDENTIFY_PUSH_TIMEOUT_SECONDS):
                await quietly(lambda: push_identify_to_peers(self._host, peers), "identify push")

    def _guarded(
        self,
        protocol: str,
        handler: Callable[[INetStream], Awaitable[None]],
        limiter: trio.CapacityLimiter,
    ) -> Callable[[INetStream], Awaitable[None]]:
        """``handler`` made harmless: bounded concurrency, and no exception escapes."""

        async def guarded(raw: INetStream) -> None:
            if not self._permits(raw.muxed_conn.peer_id):  # its connection is closing
                await _Libp2pRawStream(raw).reset()
                return
            try:
                limiter.acquire_nowait()
            except trio.WouldBlock:
                logger.info("too many %s streams at once; reset one", protocol)
                await _Libp2pRawStream(raw).reset()
                return
            try:
                await handler(raw)
            except Exception:
                logger.exception("%s handler failed; stream reset", protocol)
                await _Libp2pRawStream(raw).reset()
            finally:
                limiter.release()

        return guarded
