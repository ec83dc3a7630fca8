"""The libp2p host: with the transports beside it, the only modules that import libp2p.

(The transports: :mod:`p2pdm.net.memory_transport` and :mod:`p2pdm.net.tcp_faults`.)

How this works: :func:`open_host` builds a py-libp2p 0.8.1 host from the node
seed (TCP, or a :class:`~p2pdm.net.memory_transport.MemoryNetwork`'s
in-memory transport + Noise, the only security transport + Yamux), a Kademlia DHT
(server or client mode) and a maintenance loop, all inside one nursery, and
hands out a :class:`Host`. Everything that crosses this module's edge is a
p2pdm type: :class:`~p2pdm.core.identity.PeerId`, multiaddr strings,
:class:`~p2pdm.net.stream.Stream`, and p2pdm errors (libp2p's are mapped at
the edge, like httpcore's ``map_exceptions``).

Addresses: anything handed in may carry a trailing ``/p2p/<peerid>`` (it
must then name the peer in question); everything handed out carries it.

The library's measured pitfalls (NOTES-libp2p.md) and what this module does:

1. plaintext accepted by default → ``sec_opt`` holds Noise only;
2. 250 ms per connect → one connection per peer (``max_connections_per_peer=1``);
3./4. leaving ``run()`` closes nothing, ``close()`` is sequential → on exit
   the listeners and all connections are closed concurrently, inside ``run()``;
5. a raising stream handler kills the host → every handler is wrapped;
6. reads have no deadline → :class:`Stream` reads under ``trio.fail_after``;
10. dial retries to dead peers → ``RetryConfig(max_retries=0)``;
11. DHT lookups leave a full mesh → idle connections are closed;
    libp2p's auto-connector (it aims at ~160 connections) is stopped and a
    bounded bootstrap re-dial takes its place;
12. client-mode peers enter server routing tables → removed once identify
    shows they do not serve the DHT;
13. disconnects logged at ERROR on stderr → the ``libp2p`` logger is tamed;
found here, not in the notes:
16. every inbound connection ever accepted keeps an inbound slot and a task
    until the host stops, so after 250 inbound connections the host refuses
    all others → inbound handling waits for *its* connection to close;
17. a stream the peer resets reads as a clean EOF (Yamux forgets it) → the
    raw stream checks ``reset_received`` and raises PeerUnreachable;
18. listeners use SO_REUSEPORT, so a second node on a taken port shares it
    silently → :func:`p2pdm.net.addrs.refuse_taken_port` probes first;
19. some libp2p loggers pin themselves to INFO → see :mod:`p2pdm.net.logs`;
20. a wildcard listen address (0.0.0.0) is announced as is, which no peer
    can dial → an ``addrs_factory`` announces the interface addresses (the
    default route's first) and loopback instead
    (:func:`p2pdm.net.addrs.dialable_addrs`);
21. a connection close cancelled midway (the host's block cancelled while
    libp2p closes a connection) leaves it marked closed with its socket open,
    and a second ``close()`` returns at once → shutdown closes the muxer too;
22. identify runs once, when a connection opens, so peers met while joining
    never learn of handlers set afterwards → :meth:`Host.announce_protocols`
    pushes identify to the connected peers that take it;
23. a DHT server puts a querier in its routing table only if identify gave it
    the querier's addresses, and joining with libp2p's full refresh costs
    twice the queries of Kademlia's self-lookup → the join looks itself up
    once the bootstrap peer has fetched our identify (docs/simulation.md);
24. nothing in libp2p refuses a peer by its ID → :meth:`Host.set_peer_filter`
    guards the swarm's dials, new streams and security upgrade
    (:func:`_refuse_filtered_peers`);
records: ``get_value`` answers from a stale local copy → :meth:`Host.get_record`
drops it and asks the network with a quorum, then keeps the newest;
floods: KadDHT stores any valid record any peer sends (up to 50,000, then
evicts the *oldest* with a 70 ms scan) → writes are rate-limited per peer,
capped per peer and in all, and a full store evicts a flooder's newest
records, never a peer's only one (:mod:`p2pdm.net._dht_guard`, wired by
:func:`_guard_dht`);
providers: standard Kademlia nodes (js-libp2p, go-libp2p) drop provider
records whose key is not a multihash, without an error → provider keys go
on the wire as the SHA-256 multihash of p2pdm's key (:func:`_provider_key`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
    suppress,
)
from contextvars import ContextVar
from typing import Literal, cast

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream, IRawConnection, ISecureConn, ITransport
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.host.ping import ID as PING_PROTOCOL_ID
from libp2p.host.ping import PING_LENGTH
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL_ID
from libp2p.identity.identify_push.identify_push import ID_PUSH as IDENTIFY_PUSH_PROTOCOL_ID
from libp2p.identity.identify_push.identify_push import push_identify_to_peers
from libp2p.io.abc import ReadWriteCloser
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Record
from libp2p.kad_dht.provider_store import ProviderRecord
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.exceptions import SwarmException
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStoreError
from libp2p.records.pubkey import PublicKeyValidator
from libp2p.records.validator import NamespacedValidator, Validator
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from libp2p.transport.exceptions import SecurityUpgradeFailure

from p2pdm.core.identity import Identity, PeerId
from p2pdm.errors import (
    ConfigError,
    P2PDMError,
    PeerUnreachable,
    ProtocolViolation,
    SchemaError,
)
from p2pdm.limits import MAX_ADDRS
from p2pdm.net._dht_guard import DEFAULT_DHT_LIMITS, DhtGuard, DhtLimits, DhtStoreStats
from p2pdm.net.addrs import (
    dialable_addrs,
    full_addr,
    parse_bootstrap,
    refuse_taken_port,
    transport_addr,
)
from p2pdm.net.limits import (
    CONNECTIONS_HIGH_WATERMARK,
    CONNECTIONS_LOW_WATERMARK,
    DHT_REFRESH_TIMEOUT_SECONDS,
    DIAL_TIMEOUT_SECONDS,
    HANDSHAKE_TIMEOUT_SECONDS,
    IDENTIFY_PUSH_TIMEOUT_SECONDS,
    IDENTIFY_WAIT_SECONDS,
    JOIN_LOOKUP_TIMEOUT_SECONDS,
    MAX_BOOTSTRAP_PEERS,
    MAX_CONCURRENT_HANDLERS,
    MAX_CONNECTIONS,
    MAX_INBOUND_CONNECTIONS,
    MAX_PROVIDER_KEY_BYTES,
    MAX_PROVIDERS,
    MAX_RECORD_BYTES,
    MAX_RECORD_KEY_BYTES,
    MIN_CONNECTED_PEERS,
    OPEN_STREAM_TIMEOUT_SECONDS,
    PEERSTORE_ADDR_TTL_SECONDS,
    PING_TIMEOUT_SECONDS,
    RECORD_PUT_TIMEOUT_SECONDS,
    RECORD_QUORUM,
    SHUTDOWN_TIMEOUT_SECONDS,
    STREAM_NEGOTIATION_TIMEOUT_SECONDS,
)
from p2pdm.net.logs import configure_libp2p_logging
from p2pdm.net.memory_transport import MemoryNetwork
from p2pdm.net.stream import Stream
from p2pdm.net.tcp_faults import TcpFaults
from p2pdm.net.upkeep import DEFAULT_UPKEEP, IdleTracker, Upkeep

__all__ = [
    "DEFAULT_LISTEN",
    "Host",
    "PeerFilter",
    "RecordSelector",
    "RecordValidator",
    "StreamHandler",
    "open_host",
]

logger = logging.getLogger(__name__)

#: Loopback only unless the caller says otherwise: a node is not exposed to
#: the network by accident.
DEFAULT_LISTEN: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)

StreamHandler = Callable[[Stream], Awaitable[None]]
#: ``validate(key, value)`` raises (a P2PDMError, ideally) if the record is bad.
RecordValidator = Callable[[bytes, bytes], None]
#: ``select(key, values)`` returns the index of the best (newest) value.
RecordSelector = Callable[[bytes, list[bytes]], int]
#: ``allowed(peer)``: whether the host may talk to ``peer`` (:meth:`Host.set_peer_filter`).
PeerFilter = Callable[[PeerId], bool]

# Everything the network can throw at us: libp2p's own errors, and the
# socket and trio errors that leak through it.
_NETWORK_ERRORS = (BaseLibp2pError, OSError, trio.BrokenResourceError, trio.ClosedResourceError)


@contextmanager
def _unreachable(what: str) -> Iterator[None]:
    """Map the network's exceptions to PeerUnreachable."""
    try:
        yield
    except _NETWORK_ERRORS as exc:
        raise PeerUnreachable(f"{what}: {exc or type(exc).__name__}") from exc


async def _quietly(action: Callable[[], Awaitable[object]], what: str) -> None:
    try:
        await action()
    except Exception as exc:
        logger.debug("%s failed: %r", what, exc)


# --- identities and addresses ----------------------------------------------


def _to_id(peer: PeerId) -> ID:
    return ID(peer.raw)


def _from_id(peer_id: ID) -> PeerId | None:
    """Our PeerId for a libp2p ID; None if its key is not Ed25519 (p2pdm speaks to no others)."""
    try:
        return PeerId(peer_id.to_bytes())
    except SchemaError:
        return None


# --- the byte stream under p2pdm.net.stream.Stream ----------------------------


class _Libp2pRawStream:
    """A libp2p stream as a :class:`p2pdm.net.stream.RawStream`."""

    __slots__ = ("_stream",)

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream

    async def receive_some(self, max_bytes: int) -> bytes:
        try:
            return await self._stream.read(max_bytes)
        except StreamEOF:
            # Yamux forgets a stream when the peer resets it, so a reset reads
            # as a plain EOF; only the muxed stream remembers the difference.
            muxed = getattr(self._stream, "muxed_stream", None)
            if getattr(muxed, "reset_received", False):
                raise PeerUnreachable("stream reset by the peer or connection lost") from None
            return b""
        except _NETWORK_ERRORS as exc:
            raise PeerUnreachable("stream reset by the peer or connection lost") from exc

    async def send_all(self, data: bytes) -> None:
        with _unreachable("stream reset or connection lost"):
            await self._stream.write(data)

    async def close_write(self) -> None:
        # NetStream has close_write; the INetStream interface does not promise it.
        close_write = getattr(self._stream, "close_write", self._stream.close)
        with _unreachable("stream reset or connection lost"):
            await close_write()

    async def reset(self) -> None:
        with suppress(*_NETWORK_ERRORS):
            await self._stream.reset()

    async def close(self) -> None:
        with suppress(*_NETWORK_ERRORS):
            await self._stream.close()


# --- DHT records -----------------------------------------------------------

#: Multihash header of a SHA-256 digest: code 0x12, length 32.
_SHA256_MULTIHASH = b"\x12\x20"


def _provider_key(key: bytes) -> bytes:
    """The DHT key of provider records for ``key``: its SHA-256 multihash.

    Other Kademlia implementations read a provider key as a CID and silently
    drop records under anything else (js-libp2p 2.8: "Invalid CID"), so a
    plain key would only ever be stored on p2pdm nodes.
    """
    return _SHA256_MULTIHASH + hashlib.sha256(key).digest()


class _NamespaceValidator(Validator):
    """Adapts p2pdm's validate/select callables to libp2p's Validator."""

    def __init__(self, validate: RecordValidator, select: RecordSelector) -> None:
        self._validate = validate
        self._select = select

    def validate(self, key: str, value: bytes) -> None:
        if len(value) > MAX_RECORD_BYTES:
            raise SchemaError(f"record of {len(value)} bytes, cap {MAX_RECORD_BYTES}")
        self._validate(key.encode(), value)

    def select(self, key: str, values: list[bytes]) -> int:
        index = self._select(key.encode(), list(values))
        if not 0 <= index < len(values):
            raise SchemaError(f"record selector returned index {index} of {len(values)}")
        return index


#: The peer whose inbound DHT stream this task is handling (raw PeerID bytes);
#: None in every other task, so records we store ourselves are ours.
_dht_writer: ContextVar[bytes | None] = ContextVar("p2pdm_dht_writer", default=None)


class _GuardedValidator(NamespacedValidator):
    """libp2p's validator (strict; pk, ipns and the namespaces we register),
    charging each inbound PUT_VALUE to its sender's write rate first and
    refusing records over MAX_RECORD_BYTES in every namespace."""

    def __init__(self, guard: DhtGuard) -> None:
        super().__init__({"pk": PublicKeyValidator()}, strict_validation=True)
        self._guard = guard

    def validate(self, key: str, value: bytes) -> None:
        writer = _dht_writer.get()
        if writer is not None:  # the inbound PUT_VALUE handler: validation comes first
            self._guard.charge(writer)
            if len(value) > MAX_RECORD_BYTES:
                self._guard.refuse("too_large", writer)
        super().validate(key, value)


def _record_bytes(entry: tuple[Record, float]) -> int:
    return entry[0].ByteSize()


def _provider_bytes(key: bytes, record: ProviderRecord) -> int:
    addrs = sum(len(addr.to_bytes()) for addr in record.addresses)
    return len(key) + len(record.peer_id.to_bytes()) + addrs


def _guard_dht(dht: KadDHT, guard: DhtGuard) -> None:
    """Bound what other peers can make ``dht`` store (:mod:`p2pdm.net._dht_guard`).

    libp2p's stores keep their records in plain dicts; these are swapped for
    the guard's mappings while still empty, so every path that stores or
    drops a record is accounted. ADD_PROVIDER's rate check (libp2p's own:
    a window per peer in a table that grows without bound) is the guard's
    token bucket; PUT_VALUE's is in :class:`_GuardedValidator`.
    """
    values, providers = dht.value_store, dht.provider_store
    if values.store or providers.providers:
        raise RuntimeError("the DHT guard must be installed before anything is stored")
    values.store = guard.record_store(_dht_writer.get, _record_bytes)  # type: ignore[assignment]
    providers.providers = guard.provider_index(  # type: ignore[assignment]
        str(dht.local_peer_id), _provider_bytes
    )
    dht._check_provider_rate_limit = lambda peer_id: guard.allows(peer_id.to_bytes())  # type: ignore[method-assign]


def _attributed(
    handle: Callable[[INetStream], Awaitable[None]],
) -> Callable[[INetStream], Awaitable[None]]:
    """``handle`` with :data:`_dht_writer` naming the stream's peer while it runs."""

    async def attributed(stream: INetStream) -> None:
        token = _dht_writer.set(stream.muxed_conn.peer_id.to_bytes())
        try:
            await handle(stream)
        finally:
            _dht_writer.reset(token)

    return attributed


# --- connection management ---------------------------------------------------


def _advertised(candidates: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    """What identify and the DHT announce: wildcard listen addresses (0.0.0.0,
    ::) replaced by addresses peers can dial."""
    return [multiaddr.Multiaddr(text) for text in dialable_addrs([str(c) for c in candidates])]


def _connection_config() -> ConnectionConfig:
    return ConnectionConfig(
        # One connection per peer: besides being all a messaging node needs,
        # it ends the dial's 250 ms happy-eyeballs wait (NOTES pitfall 2).
        max_connections_per_peer=1,
        max_connections=MAX_CONNECTIONS,
        min_connections=0,
        low_watermark=CONNECTIONS_LOW_WATERMARK,
        high_watermark=CONNECTIONS_HIGH_WATERMARK,
        dial_timeout=DIAL_TIMEOUT_SECONDS,
        inbound_upgrade_timeout=HANDSHAKE_TIMEOUT_SECONDS,
        outbound_upgrade_timeout=HANDSHAKE_TIMEOUT_SECONDS,
        inbound_stream_protocol_negotiation_timeout=STREAM_NEGOTIATION_TIMEOUT_SECONDS,
        outbound_stream_protocol_negotiation_timeout=STREAM_NEGOTIATION_TIMEOUT_SECONDS,
    )


def _hold_inbound_slot_only_while_connected(swarm: Swarm) -> None:
    """Work around py-libp2p 0.8.1 keeping every inbound connection's slot forever.

    ``Swarm._do_handle_inbound_connection`` waits for the *swarm* to stop
    after upgrading, so the inbound-limiter token and the handler task of
    every inbound connection ever accepted stay taken after it closes; once
    ``max_connections - min_connections`` connections have come in, all later
    ones are refused (measured: 3 of 3, then nothing). This stand-in upgrades
    the same way and then waits for *that connection* to close. TCP only,
    which is all p2pdm listens on.
    """

    async def handle_inbound(
        read_write_closer: ReadWriteCloser, maddr: multiaddr.Multiaddr, failure_event: object
    ) -> None:
        remote = swarm._build_remote_multiaddr(read_write_closer)
        if remote is not None and not await swarm.connection_gate.is_allowed(remote):
            await _quietly(read_write_closer.close, "closing a gated inbound connection")
            return
        raw_conn = RawConnection(read_write_closer, False)
        try:
            muxed_conn = await swarm.upgrade_inbound_raw_conn(raw_conn, maddr)
        except Exception as exc:
            logger.debug("inbound connection failed before it was up: %r", exc)
            await _quietly(raw_conn.close, "closing a failed inbound connection")
            return
        closed = getattr(muxed_conn, "event_closed", None)
        if isinstance(closed, trio.Event):
            await closed.wait()
        else:  # not Yamux: keep libp2p's behaviour
            await swarm.manager.wait_finished()

    swarm._do_handle_inbound_connection = handle_inbound  # type: ignore[method-assign]
    swarm._inbound_limiter = trio.CapacityLimiter(MAX_INBOUND_CONNECTIONS)


def _refuse_filtered_peers(swarm: Swarm, permits: Callable[[ID], bool]) -> None:
    """Make ``swarm`` refuse, both ways, every peer that ``permits`` refuses.

    Dials and new streams to such a peer fail at once, before any packet is
    sent, with the SwarmException of an unreachable peer. A connection from
    (or to) one fails its security upgrade as soon as the Noise handshake has
    authenticated the peer, before a muxer or anything above runs on it; the
    other end's upgrade then fails too.
    """
    dial_peer, dial_addr, new_stream = swarm.dial_peer, swarm.dial_addr, swarm.new_stream
    upgrader = swarm.upgrader
    upgrade_security = upgrader.upgrade_security

    async def refuse_if_filtered(peer_id: ID) -> None:
        if not permits(peer_id):
            await trio.lowlevel.checkpoint()
            raise SwarmException(f"peer {peer_id} is filtered out")

    async def guarded_dial_peer(peer_id: ID) -> list[INetConn]:
        await refuse_if_filtered(peer_id)
        return await dial_peer(peer_id)

    async def guarded_dial_addr(
        addr: multiaddr.Multiaddr, peer_id: ID, source: tuple[str, int] | None = None
    ) -> INetConn:
        await refuse_if_filtered(peer_id)
        return await dial_addr(addr, peer_id, source)

    async def guarded_new_stream(peer_id: ID) -> INetStream:
        await refuse_if_filtered(peer_id)
        return await new_stream(peer_id)

    async def guarded_upgrade_security(
        raw_conn: IRawConnection, is_initiator: bool, peer_id: ID | None = None
    ) -> ISecureConn:
        secured = await upgrade_security(raw_conn, is_initiator, peer_id)
        remote = secured.get_remote_peer()
        if not permits(remote):
            await _quietly(secured.close, "closing a connection of a filtered peer")
            raise SecurityUpgradeFailure(f"peer {remote} is filtered out")
        return secured

    swarm.dial_peer = guarded_dial_peer  # type: ignore[method-assign]
    swarm.dial_addr = guarded_dial_addr  # type: ignore[method-assign]
    swarm.new_stream = guarded_new_stream  # type: ignore[method-assign]
    upgrader.upgrade_security = guarded_upgrade_security  # type: ignore[method-assign]


class Host:
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
        self.peer_id: PeerId = identity.peer_id
        self._host = lp_host
        self._swarm = cast("Swarm", lp_host.get_network())
        self._dht = dht
        self._dht_guard = dht_guard
        self._bootstrap = list(bootstrap)
        self._bootstrap_ids = {_to_id(peer) for peer, _ in self._bootstrap}
        self._upkeep = upkeep
        self._idle: IdleTracker[INetConn] = IdleTracker(upkeep.idle_timeout)
        self._last_bootstrap_round = -math.inf
        self._dials: dict[PeerId, trio.Event] = {}
        self._handler_limits: dict[str, trio.CapacityLimiter] = {}
        self._namespaces: set[str] = set()
        # Set once a bootstrap peer has fetched our identify (so it knows our
        # addresses and will put us in its routing table when we query it).
        self._identified_by = {pid: trio.Event() for pid in self._bootstrap_ids}
        self._allowed: PeerFilter | None = None
        #: The host's background tasks (open_host sets it before handing the host out).
        self._tasks: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"Host({self.peer_id})"

    # --- addresses and peers -------------------------------------------------

    def listen_addrs(self) -> list[str]:
        """Our dialable addresses, each ending in ``/p2p/<our PeerID>``."""
        return [full_addr(addr, self.peer_id) for addr in self._host.get_addrs()]

    def connected_peers(self) -> list[PeerId]:
        """Peers with an open connection (Ed25519 peers only)."""
        peers = (_from_id(pid) for pid, conns in self._swarm.connections.items() if conns)
        return [peer for peer in peers if peer is not None]

    def is_connected(self, peer: PeerId) -> bool:
        return any(not conn.is_closed for conn in self._swarm.get_connections(_to_id(peer)))

    def peer_protocols(self, peer: PeerId) -> set[str]:
        """Protocols the peer announced through identify; empty until identify has run."""
        try:
            return set(self._host.get_peerstore().get_protocols(_to_id(peer)))
        except PeerStoreError:
            return set()

    def peer_addrs(self, peer: PeerId) -> list[str]:
        """Addresses libp2p knows for ``peer`` (identify, DHT, dials); [] if none."""
        try:
            addrs = self._host.get_peerstore().addrs(_to_id(peer))
        except PeerStoreError:
            return []
        return [full_addr(addr, peer) for addr in addrs[:MAX_ADDRS]]

    def dht_store_stats(self) -> DhtStoreStats:
        """What our DHT holds for other peers, and the writes it refused or evicted."""
        return self._dht_guard.stats()

    def dht_peers(self) -> list[PeerId]:
        """Peers in our DHT routing table."""
        peers = (_from_id(pid) for pid in self._dht.routing_table.get_peer_ids())
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
        pid = _to_id(peer)
        peerstore = self._host.get_peerstore()
        targets = [transport_addr(text, peer) for text in addrs[:MAX_ADDRS]]
        if targets:
            peerstore.add_addrs(pid, targets, PEERSTORE_ADDR_TTL_SECONDS)
        else:
            with suppress(PeerStoreError):
                targets = peerstore.addrs(pid)[:MAX_ADDRS]
        if not targets:
            raise PeerUnreachable(f"no known address for {peer.short()}")
        pending = self._dials.get(peer)
        if pending is not None:  # another task is dialing: share its connection
            with trio.move_on_after(DIAL_TIMEOUT_SECONDS):
                await pending.wait()
            if self.is_connected(peer):
                return
        done = self._dials[peer] = trio.Event()
        try:
            await self._dial(peer, pid, targets)
        finally:
            done.set()
            if self._dials.get(peer) is done:
                del self._dials[peer]

    async def _dial(self, peer: PeerId, pid: ID, targets: list[multiaddr.Multiaddr]) -> None:
        # The caller decided to try now: lift libp2p's 60 s "recently failed" block.
        self._swarm.unblock_peer(pid)
        failures: list[str] = []
        with trio.move_on_after(DIAL_TIMEOUT_SECONDS):
            for addr in targets:
                try:
                    await self._swarm.dial_addr(addr, pid)
                except _NETWORK_ERRORS as exc:
                    failures.append(f"{addr}: {exc}")
                    continue
                return
        if not failures:
            failures.append(f"timed out after {DIAL_TIMEOUT_SECONDS:g} s")
        raise PeerUnreachable(f"cannot connect to {peer.short()}: " + "; ".join(failures))

    async def disconnect(self, peer: PeerId) -> None:
        """Close every connection to ``peer`` (its streams are reset)."""
        with suppress(*_NETWORK_ERRORS):
            await self._swarm.close_peer(_to_id(peer))

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
            tasks.start_soon(_close_connections, refused)
        regained = before is not None and any(
            not _asks(before, peer) and self._permits_peer(peer) for peer, _ in self._bootstrap
        )
        if regained:
            tasks.start_soon(self._rejoin)

    def _permits_peer(self, peer: PeerId) -> bool:
        return self._allowed is None or _asks(self._allowed, peer)

    def _permits(self, pid: ID) -> bool:
        """The filter on a libp2p ID (peers without an Ed25519 key are refused while it is set)."""
        if self._allowed is None:
            return True
        peer = _from_id(pid)
        return peer is not None and _asks(self._allowed, peer)

    async def _open_libp2p_stream(
        self, peer: PeerId, protocol: str, addrs: Sequence[str]
    ) -> INetStream:
        try:
            with trio.fail_after(OPEN_STREAM_TIMEOUT_SECONDS):
                await self.connect(peer, addrs)
                with _unreachable(f"{peer.short()} refused a {protocol} stream"):
                    return await self._host.new_stream(_to_id(peer), [TProtocol(protocol)])
        except trio.TooSlowError:
            raise PeerUnreachable(
                f"no {protocol} stream to {peer.short()} within {OPEN_STREAM_TIMEOUT_SECONDS:g} s"
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
            with trio.fail_after(PING_TIMEOUT_SECONDS), _unreachable("ping failed"):
                start = trio.current_time()
                await stream.write(payload)
                while len(echo) < PING_LENGTH:  # each read returns >= 1 byte or raises
                    echo += await stream.read(PING_LENGTH - len(echo))
                rtt = trio.current_time() - start
        except trio.TooSlowError:
            raise PeerUnreachable(f"no ping reply within {PING_TIMEOUT_SECONDS:g} s") from None
        finally:
            await _quietly(stream.close, "closing a ping stream")
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
            remote = _from_id(raw.muxed_conn.peer_id)
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
                await _quietly(lambda: push_identify_to_peers(self._host, peers), "identify push")

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

    # --- DHT: peer routing -----------------------------------------------------

    async def find_peer(self, peer: PeerId, timeout: float) -> list[str]:  # noqa: ASYNC109
        """Addresses of ``peer`` through DHT peer routing. Raises PeerUnreachable if not found."""
        info = None
        with trio.move_on_after(timeout), _unreachable("peer lookup failed"):
            info = await self._dht.find_peer(_to_id(peer))
        if info is None or not info.addrs:
            raise PeerUnreachable(f"{peer.short()} not found in the DHT within {timeout:g} s")
        return [full_addr(addr, peer) for addr in info.addrs[:MAX_ADDRS]]

    # --- DHT: records --------------------------------------------------------

    def register_record_namespace(
        self, namespace: str, validate: RecordValidator, select: RecordSelector
    ) -> None:
        """Accept records under ``/<namespace>/…``, checked by ``validate``, newest by ``select``.

        ``validate(key, value)`` gets the UTF-8 key and must raise on a bad
        record; ``select(key, values)`` returns the index of the best one.
        Every node must register the same namespace, or it will not store
        (and so not serve) such records.
        """
        if not namespace or "/" in namespace or not namespace.isascii():
            raise ValueError(f"a namespace is one path segment: {namespace!r}")
        if namespace in ("pk", "ipns"):
            raise ValueError(f"namespace {namespace!r} belongs to libp2p")
        self._dht.register_validator(namespace, _NamespaceValidator(validate, select))
        self._namespaces.add(namespace)

    def _check_record_key(self, key: str) -> bytes:
        parts = key.split("/", 2)
        if len(parts) < 3 or parts[0] or parts[1] not in self._namespaces:
            raise ValueError(f"record keys are /<registered namespace>/…: {key[:40]!r}")
        key_bytes = key.encode()
        if len(key_bytes) > MAX_RECORD_KEY_BYTES:
            raise ValueError(f"record key over {MAX_RECORD_KEY_BYTES} bytes")
        return key_bytes

    async def put_record(self, key: str, value: bytes) -> None:
        """Store a record locally and at the peers closest to ``key``.

        Raises whatever the namespace's ``validate`` raises for a bad record,
        and P2PDMError if a newer record is already stored here. Replication
        is best effort: it stops after RECORD_PUT_TIMEOUT_SECONDS.
        """
        self._check_record_key(key)
        if self._dht.validator is not None:  # raise the namespace's own error, unchanged
            self._dht.validator.validate(key, value)
        try:
            with trio.move_on_after(RECORD_PUT_TIMEOUT_SECONDS) as scope:
                await self._dht.put_value(key, value)
        except ValueError as exc:  # libp2p: "Refusing to replace newer value"
            raise P2PDMError(f"a newer record is already stored under {key[:40]!r}") from exc
        if scope.cancelled_caught:
            logger.info(
                "replication of %s stopped after %g s", key[:40], RECORD_PUT_TIMEOUT_SECONDS
            )

    async def get_record(self, key: str, timeout: float) -> bytes | None:  # noqa: ASYNC109
        """The newest valid record under ``key``, or None if there is none.

        libp2p answers from the local copy first, which may be stale: the
        local copy is set aside, RECORD_QUORUM holders are asked, and the
        newest of their answer and the local copy wins (and is kept locally).
        """
        key_bytes = self._check_record_key(key)
        store = self._dht.value_store
        local = store.get(key_bytes)
        if local is not None:
            store.remove(key_bytes)
        try:
            with trio.move_on_after(timeout), suppress(*_NETWORK_ERRORS):
                await self._dht.get_value(key, quorum=RECORD_QUORUM)
        finally:
            best = self._keep_newest(key, key_bytes, local)
        return None if best is None else bytes(best.value)

    def _keep_newest(self, key: str, key_bytes: bytes, local: Record | None) -> Record | None:
        """Store and return the newer of ``local`` and what the store holds now."""
        store = self._dht.value_store
        current = store.get(key_bytes)  # the network's answer, or a PUT that came in meanwhile
        if current is None or local is None:
            best = current or local
        else:
            try:
                validator = self._dht.validator
                index = validator.select(key, [current.value, local.value]) if validator else 0
            except Exception as exc:
                logger.warning("record selector failed for %s: %r", key[:40], exc)
                index = 0
            best = (current, local)[index]
        if best is not None and best is not current:
            store.put_record(key_bytes, best)
        return best

    # --- DHT: providers --------------------------------------------------------

    async def provide(self, key: bytes) -> None:
        """Announce that we provide ``key`` (1..80 bytes); PeerUnreachable if nobody took it.

        On the wire the key is its SHA-256 multihash (:func:`_provider_key`).
        """
        if not 0 < len(key) <= MAX_PROVIDER_KEY_BYTES:
            raise ValueError(f"provider keys are 1..{MAX_PROVIDER_KEY_BYTES} bytes")
        announced = False
        with trio.move_on_after(RECORD_PUT_TIMEOUT_SECONDS), _unreachable("provide failed"):
            announced = await self._dht.provider_store.provide(_provider_key(key))
        if not announced:
            raise PeerUnreachable("no DHT peer took the provider record")

    async def find_providers(
        self,
        key: bytes,
        timeout: float,  # noqa: ASYNC109
    ) -> list[tuple[PeerId, list[str]]]:
        """Up to MAX_PROVIDERS peers providing ``key``, with their addresses; [] if none found."""
        if not 0 < len(key) <= MAX_PROVIDER_KEY_BYTES:
            raise ValueError(f"provider keys are 1..{MAX_PROVIDER_KEY_BYTES} bytes")
        infos: list[PeerInfo] = []
        with trio.move_on_after(timeout), suppress(*_NETWORK_ERRORS):
            infos = await self._dht.provider_store.find_providers(_provider_key(key), MAX_PROVIDERS)
        found: dict[PeerId, list[str]] = {}
        for info in infos:
            peer = _from_id(info.peer_id)
            if peer is not None and peer not in found:
                # Some peers list an address twice (js-libp2p 2.8 does).
                addrs = dict.fromkeys(full_addr(addr, peer) for addr in info.addrs)
                found[peer] = list(addrs)[:MAX_ADDRS]
        return list(found.items())

    # --- lifecycle -------------------------------------------------------------

    async def _join(self) -> int:
        """Dial the bootstrap peers we are not connected to; add them to the routing table."""
        joined = 0

        async def join_one(peer: PeerId, addr: multiaddr.Multiaddr) -> None:
            nonlocal joined
            try:
                await self.connect(peer, [str(addr)])
            except PeerUnreachable as exc:
                logger.info("bootstrap peer %s unreachable: %s", peer.short(), exc)
                return
            pid = _to_id(peer)
            with trio.move_on_after(IDENTIFY_WAIT_SECONDS):
                await self._identified_by[pid].wait()
            self._swarm.protect(pid, "p2pdm-bootstrap")
            with suppress(*_NETWORK_ERRORS):
                await self._dht.add_peer(pid, skip_server_mode_check=True)
            joined += 1

        async with trio.open_nursery() as nursery:
            for peer, addr in self._bootstrap:
                if not self.is_connected(peer):
                    nursery.start_soon(join_one, peer, addr)
        return joined

    async def _rejoin(self) -> None:
        """Join the DHT again through bootstrap peers the filter let go of (a healed partition)."""
        if await self._join():
            with trio.move_on_after(JOIN_LOOKUP_TIMEOUT_SECONDS):
                await self._look_up_ourselves()

    def _note_identify_requests(self) -> None:
        """Wrap libp2p's identify handler to set ``_identified_by`` events."""
        serve_identify = self._host.get_mux().handlers.get(IDENTIFY_PROTOCOL_ID)
        if serve_identify is None:
            return

        async def serve_and_note(stream: INetStream) -> None:
            try:
                await serve_identify(stream)
            finally:
                asked = self._identified_by.get(stream.muxed_conn.peer_id)
                if asked is not None:
                    asked.set()

        self._host.set_stream_handler(IDENTIFY_PROTOCOL_ID, serve_and_note)

    async def _start(self) -> None:
        # Our bounded bootstrap re-dial replaces libp2p's auto-connector.
        await self._swarm.auto_connector.stop()
        self._note_identify_requests()
        if self._dht.mode == DHTMode.SERVER:
            self._host.set_stream_handler(
                KAD_PROTOCOL_ID,
                self._guarded(
                    KAD_PROTOCOL_ID,
                    _attributed(self._dht.handle_stream),
                    trio.CapacityLimiter(math.inf),
                ),
            )
        if self._bootstrap:
            self._last_bootstrap_round = trio.current_time()
            if await self._join():
                with trio.move_on_after(JOIN_LOOKUP_TIMEOUT_SECONDS):
                    await self._look_up_ourselves()

    async def _look_up_ourselves(self) -> None:
        """Kademlia's join: find the peers closest to us and put them in the routing table.

        Not libp2p's full refresh (one more lookup per non-empty bucket): in
        a 40-node simulation that doubled the DHT queries and cost 54 % more
        CPU to form the network; the far buckets fill at the first periodic
        refresh.
        Run once the bootstrap peers have our identify: a server adds a
        querier to its routing table only if it knows the querier's addresses.
        """
        dht = self._dht
        peerstore = self._host.get_peerstore()
        with suppress(*_NETWORK_ERRORS):
            closest = await dht.peer_routing.find_closest_peers_network(
                dht.local_peer_id.to_bytes()
            )
            for pid in closest:
                try:
                    addrs = peerstore.addrs(pid)
                except PeerStoreError:
                    continue
                await dht.routing_table.add_peer(PeerInfo(pid, addrs))

    async def _maintain(self) -> None:
        """Background upkeep, forever; a failing step is logged and retried next round."""
        upkeep = self._upkeep
        next_refresh = trio.current_time() + upkeep.dht_refresh_interval
        while True:
            await trio.sleep(upkeep.interval)
            for step in (self._close_idle_connections, self._redial_bootstrap):
                try:
                    await step()
                except Exception:
                    logger.exception("network maintenance: %s failed", step.__name__)
            try:
                self._forget_client_peers()
            except Exception:
                logger.exception("network maintenance: routing-table hygiene failed")
            summary = self._dht_guard.summary()
            if summary is not None:
                logger.info("%s", summary)
            if trio.current_time() >= next_refresh:
                next_refresh = trio.current_time() + upkeep.dht_refresh_interval
                try:
                    with trio.move_on_after(DHT_REFRESH_TIMEOUT_SECONDS):
                        await self._dht.refresh_routing_table()
                except Exception:
                    logger.exception("network maintenance: DHT refresh failed")

    async def _close_idle_connections(self) -> None:
        busy = {
            conn: bool(conn.get_streams())
            for conn in self._swarm.get_connections()
            if not conn.is_closed and conn.muxed_conn.peer_id not in self._bootstrap_ids
        }
        idle = self._idle.observe(trio.current_time(), busy)
        if idle:
            logger.debug("closing %d idle connections", len(idle))
            async with trio.open_nursery() as nursery:
                for conn in idle:
                    nursery.start_soon(_quietly, conn.close, "closing an idle connection")

    async def _redial_bootstrap(self) -> None:
        if not self._bootstrap or len(self.connected_peers()) >= MIN_CONNECTED_PEERS:
            return
        since = trio.current_time() - self._last_bootstrap_round
        if since < self._upkeep.bootstrap_retry_interval:
            return
        self._last_bootstrap_round = trio.current_time()
        await self._join()

    def _forget_client_peers(self) -> None:
        """Drop routing-table peers whose identify shows no DHT server (NOTES pitfall 12)."""
        peerstore = self._host.get_peerstore()
        table = self._dht.routing_table
        for pid in table.get_peer_ids():
            try:
                protocols = peerstore.get_protocols(pid)
            except PeerStoreError:
                continue
            if protocols and KAD_PROTOCOL_ID not in protocols:
                table.remove_peer(pid)

    async def _shutdown(self) -> None:
        """Close the listeners and every connection concurrently, then the host."""
        with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_TIMEOUT_SECONDS):
            swarm = self._swarm
            async with trio.open_nursery() as nursery:
                for listener in list(swarm.listeners.values()):
                    nursery.start_soon(_quietly, listener.close, "closing a listener")
                nursery.start_soon(_close_connections, swarm.get_connections())
            await _quietly(self._host.close, "closing the libp2p host")


def _asks(allowed: PeerFilter, peer: PeerId) -> bool:
    """``allowed(peer)``; False (logged) if the filter raises."""
    try:
        return allowed(peer)
    except Exception:
        logger.exception("the peer filter failed on %s; peer refused", peer.short())
        return False


async def _close_connections(conns: Sequence[INetConn]) -> None:
    """Close ``conns`` concurrently (one at a time costs ~0.2 s each, NOTES pitfall 4)."""
    with trio.move_on_after(SHUTDOWN_TIMEOUT_SECONDS):
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(_close_connection, conn)


async def _close_connection(conn: INetConn) -> None:
    """Close ``conn`` and its socket. A close that an earlier, cancelled task
    began has marked the connection closed without closing the socket (pitfall
    21), and a second ``close()`` returns at once: close the muxer then."""
    await _quietly(conn.close, "closing a connection")
    if not conn.muxed_conn.is_closed:
        await _quietly(conn.muxed_conn.close, "closing a half-closed connection")


@asynccontextmanager
async def open_host(
    seed: bytes,
    listen: Sequence[str] = DEFAULT_LISTEN,
    *,
    bootstrap: Sequence[str] = (),
    dht_mode: Literal["server", "client"] = "server",
    upkeep: Upkeep = DEFAULT_UPKEEP,
    network: MemoryNetwork | None = None,
    peer_filter: PeerFilter | None = None,
    faults: TcpFaults | None = None,
    dht_limits: DhtLimits = DEFAULT_DHT_LIMITS,
) -> AsyncIterator[Host]:
    """Run a libp2p host with the identity of ``seed`` for the duration of the block.

    ``listen``: multiaddrs to listen on (port 0 picks a free port).
    ``network``: run over this in-memory network instead of TCP (for tests
    and simulations); ``listen`` then defaults to a fresh address of it.
    ``bootstrap``: ``…/p2p/<PeerID>`` addresses of DHT peers to join through;
    unreachable ones are logged and re-dialed later, never fatal.
    ``dht_mode``: "server" for reachable nodes (serves DHT queries), "client"
    for nodes behind NAT. ``upkeep``: periods of the background maintenance
    (idle connections, bootstrap re-dial, DHT refresh). ``peer_filter``: a
    :meth:`Host.set_peer_filter` in force from the start, before joining.
    ``faults``: latency and loss on every TCP connection (simulations in
    real time); the memory network has its own. ``dht_limits``: what other
    peers may make our DHT store, and how fast (tests lower them).

    Entering joins the DHT first: with bootstrap peers it can take up to
    DIAL_TIMEOUT_SECONDS + IDENTIFY_WAIT_SECONDS + JOIN_LOOKUP_TIMEOUT_SECONDS. On exit,
    listeners and connections are closed before this returns, also when the
    block is cancelled. Raises IdentityError for a bad seed, ConfigError for
    bad addresses or when nothing can be listened on.
    """
    configure_libp2p_logging()
    identity = Identity(seed)
    if dht_mode not in ("server", "client"):
        raise ConfigError(f"dht_mode is 'server' or 'client', not {dht_mode!r}")
    if network is not None and listen == DEFAULT_LISTEN:
        listen = [network.new_listen_addr()]
    try:
        listen_addrs = [transport_addr(text, identity.peer_id) for text in listen]
    except SchemaError as exc:
        raise ConfigError(f"bad listen address: {exc}") from None
    if not listen_addrs:
        raise ConfigError("a host needs at least one listen address")
    tcp_faults = None
    transports: list[ITransport] | None
    if network is None:
        for addr in listen_addrs:
            refuse_taken_port(addr)
        tcp_faults = faults.transport() if faults is not None else None
        # Without faults, libp2p picks TCP for /ip4/…/tcp/… addresses.
        transports = [tcp_faults] if tcp_faults is not None else None
    elif faults is not None:
        raise ConfigError("TCP faults need TCP; the memory network has faults of its own")
    else:
        transports = [network.transport(str(listen_addrs[0]))]
    bootstrap_peers = [parse_bootstrap(text) for text in bootstrap[:MAX_BOOTSTRAP_PEERS]]
    bootstrap_peers = [(peer, addr) for peer, addr in bootstrap_peers if peer != identity.peer_id]

    key_pair = create_new_key_pair(identity.seed)
    noise = NoiseTransport(key_pair, noise_privkey=create_noise_key_pair().private_key)
    lp_host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=listen_addrs,
        transports=transports,
        connection_config=_connection_config(),
        negotiate_timeout=STREAM_NEGOTIATION_TIMEOUT_SECONDS,
        addrs_factory=_advertised,
    )
    swarm = cast("Swarm", lp_host.get_network())
    swarm.retry_config = RetryConfig(max_retries=0)  # NOTES pitfall 10
    _hold_inbound_slot_only_while_connected(swarm)
    mode = DHTMode.SERVER if dht_mode == "server" else DHTMode.CLIENT
    dht_guard = DhtGuard(dht_limits, trio.current_time)
    dht = KadDHT(lp_host, mode, validator=_GuardedValidator(dht_guard), strict_validation=True)
    _guard_dht(dht, dht_guard)
    host = Host(identity, lp_host, dht, bootstrap_peers, upkeep, dht_guard)
    host._allowed = peer_filter
    _refuse_filtered_peers(swarm, host._permits)

    # Errors are kept and raised once libp2p's nurseries are behind us, so the
    # caller sees its own exception, not one wrapped in ExceptionGroups.
    error: BaseException | None = None
    faulty: AbstractAsyncContextManager[object] = (
        tcp_faults.running() if tcp_faults is not None else nullcontext()
    )
    async with faulty, lp_host.run(listen_addrs):
        try:
            if not swarm.listeners:
                raise ConfigError(f"cannot listen on {', '.join(listen)}")
            async with background_trio_service(dht), trio.open_nursery() as nursery:
                host._tasks = nursery
                await host._start()
                nursery.start_soon(host._maintain)
                try:
                    yield host
                except (trio.Cancelled, GeneratorExit):
                    raise
                except BaseException as exc:  # also pytest's Failed, KeyboardInterrupt
                    error = exc
                finally:
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            error = error or exc
        finally:
            await host._shutdown()
    if error is not None:
        raise error
