"""The Kademlia DHT as p2pdm uses it: records, providers, validators, the flood guard.

How this works: :class:`Dht` wraps libp2p's KadDHT with p2pdm's rules
(record keys under registered namespaces, size caps, a fresh read that sets
the stale local copy aside, provider keys as multihashes) and maps libp2p's
types and errors at the edge; :class:`~p2pdm.net._host.Host` hands its
methods out. :func:`guard_dht` wires :mod:`p2pdm.net._dht_guard` into the
DHT: every inbound PUT_VALUE and ADD_PROVIDER is charged to its sender
(:func:`attributed` names the sender of the stream being served).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from contextvars import ContextVar
from typing import Any

import trio
from google.protobuf.message import DecodeError
from libp2p.abc import INetStream
from libp2p.kad_dht.common import MAX_DHT_MESSAGE_SIZE, format_time_rfc3339
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Message, Record
from libp2p.kad_dht.provider_store import ProviderRecord, ProviderStore
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStoreError, env_to_send_in_RPC
from libp2p.records.pubkey import PublicKeyValidator
from libp2p.records.validator import NamespacedValidator, Validator
from libp2p.utils.varint import encode_varint_prefixed, read_varint_prefixed_bytes_limited
from multiaddr import Multiaddr

from p2pdm.core.identity import PeerId
from p2pdm.errors import P2PDMError, PeerUnreachable, SchemaError
from p2pdm.limits import MAX_ADDRS
from p2pdm.net._dht_guard import DhtGuard
from p2pdm.net._edge import (
    NETWORK_ERRORS,
    RecordSelector,
    RecordValidator,
    from_id,
    to_id,
    unreachable,
)
from p2pdm.net._handoff import RecordHandoff, watch_self_lookups
from p2pdm.net._patches import consume_signed_record_once, replace_dht_stores
from p2pdm.net.addrs import full_addr
from p2pdm.net.limits import (
    CLOSER_PEER_ADDR_TTL_SECONDS,
    MAX_PROVIDER_KEY_BYTES,
    MAX_PROVIDERS,
    MAX_RECORD_BYTES,
    MAX_RECORD_KEY_BYTES,
    RECORD_CORRECTION_TIMEOUT_SECONDS,
    RECORD_LOOKUP_CLOSEST,
    RECORD_LOOKUP_CONCURRENCY,
    RECORD_LOOKUP_MIN_TABLE,
    RECORD_LOOKUP_WIDEST,
    RECORD_PUT_TIMEOUT_SECONDS,
    RECORD_QUERY_TIMEOUT_SECONDS,
    RECORD_QUORUM,
)

__all__ = [
    "Dht",
    "GuardedValidator",
    "RecordLookup",
    "attributed",
    "guard_dht",
    "provider_key",
]

logger = logging.getLogger(__name__)

#: Multihash header of a SHA-256 digest: code 0x12, length 32.
_SHA256_MULTIHASH = b"\x12\x20"


def provider_key(key: bytes) -> bytes:
    """The DHT key of provider records for ``key``: its SHA-256 multihash.

    Other Kademlia implementations read a provider key as a CID and silently
    drop records under anything else (js-libp2p 2.8: "Invalid CID"), so a
    plain key would only ever be stored on p2pdm nodes.
    """
    return _SHA256_MULTIHASH + hashlib.sha256(key).digest()


class NamespaceValidator(Validator):
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


class GuardedValidator(NamespacedValidator):
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


def guard_dht(dht: KadDHT, guard: DhtGuard) -> None:
    """Bound what other peers can make ``dht`` store (:mod:`p2pdm.net._dht_guard`).

    libp2p's stores keep their records in plain dicts; these are swapped for
    the guard's mappings while still empty, so every path that stores or
    drops a record is accounted. ADD_PROVIDER's rate check (libp2p's own:
    a window per peer in a table that grows without bound) is the guard's
    token bucket; PUT_VALUE's is in :class:`GuardedValidator`.
    """
    replace_dht_stores(
        dht,
        guard.record_store(_dht_writer.get, _record_bytes),
        guard.provider_index(str(dht.local_peer_id), _provider_bytes),
        guard.allows,
    )


def attributed(
    handle: Callable[[INetStream], Awaitable[None]],
) -> Callable[[INetStream], Awaitable[None]]:
    """``handle`` with :data:`_dht_writer` naming the stream's peer while it runs."""

    async def handle_attributed(stream: INetStream) -> None:
        token = _dht_writer.set(stream.muxed_conn.peer_id.to_bytes())
        try:
            await handle(stream)
        finally:
            _dht_writer.reset(token)

    return handle_attributed


def deadlined(
    handle: Callable[[INetStream], Awaitable[None]], seconds: float
) -> Callable[[INetStream], Awaitable[None]]:
    """``handle`` given at most ``seconds`` per stream; a stream still open then is reset."""

    async def handle_within(stream: INetStream) -> None:
        with trio.move_on_after(seconds) as scope:
            await handle(stream)
        if scope.cancelled_caught:
            with suppress(*NETWORK_ERRORS):
                await stream.reset()

    return handle_within


class Dht:
    """Records, providers and peer routing over libp2p's KadDHT, in p2pdm's terms.

    :class:`~p2pdm.net._host.Host` inherits these methods.
    """

    def __init__(self, dht: KadDHT) -> None:
        self._dht = dht
        self._namespaces: set[str] = set()
        #: The host's background tasks (entry corrections among them); open_host
        #: sets it before handing the host out.
        self._tasks: trio.Nursery | None = None
        #: The lookup of the :meth:`get_record` call that returned last, set as
        #: it returns (nothing runs in between): for measurements (the simulator).
        self.last_record_lookup: RecordLookup | None = None
        #: Kademlia's join rule: records handed to peers that look themselves up.
        self.record_handoff = RecordHandoff(dht)
        watch_self_lookups(dht, _dht_writer.get, self._peer_looked_itself_up)

    def _peer_looked_itself_up(self, peer: ID) -> None:
        if self._tasks is not None:
            self.record_handoff.joined(peer, self._tasks)

    async def find_peer(
        self,
        peer: PeerId,
        timeout: float,  # noqa: ASYNC109
        *,
        fresh: bool = False,
    ) -> list[str]:
        """Addresses of ``peer`` through DHT peer routing. Raises PeerUnreachable if not found.

        libp2p answers from its routing table or peerstore first, which still
        hold the addresses of a peer that has since moved (restarted on a new
        port, changed networks). ``fresh``: forget what the peerstore holds
        for ``peer`` and ask the network; only what the DHT answers is returned.
        """
        pid = to_id(peer)
        addrs = []
        with trio.move_on_after(timeout), unreachable("peer lookup failed"):
            if fresh:
                peerstore = self._dht.host.get_peerstore()
                peerstore.clear_addrs(pid)
                await self._dht.peer_routing.find_closest_peers_network(pid.to_bytes())
                with suppress(PeerStoreError):
                    addrs = peerstore.addrs(pid)
            else:
                info = await self._dht.find_peer(pid)
                addrs = info.addrs if info is not None else []
        if not addrs:
            raise PeerUnreachable(
                f"{peer.short()} not found in the DHT within {timeout:g} s", "not found in the DHT"
            )
        return [full_addr(addr, peer) for addr in addrs[:MAX_ADDRS]]

    # --- records --------------------------------------------------------

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
        self._dht.register_validator(namespace, NamespaceValidator(validate, select))
        self._namespaces.add(namespace)

    def _check_record_key(self, key: str) -> bytes:
        parts = key.split("/", 2)
        if len(parts) < 3 or parts[0] or parts[1] not in self._namespaces:
            raise ValueError(f"record keys are /<registered namespace>/…: {key[:40]!r}")
        key_bytes = key.encode()
        if len(key_bytes) > MAX_RECORD_KEY_BYTES:
            raise ValueError(f"record key over {MAX_RECORD_KEY_BYTES} bytes")
        return key_bytes

    async def put_record(self, key: str, value: bytes) -> int:
        """Store a record locally and at the peers closest to ``key``; returns how
        many peers hold it now (those that had it already and those that took
        it: 0 when no peer answered in time, e.g. every query timed out on a
        busy machine).

        Raises whatever the namespace's ``validate`` raises for a bad record,
        and P2PDMError if a newer record is already stored here. Replication
        is best effort: it stops after RECORD_PUT_TIMEOUT_SECONDS.

        The closest peers are found by a :class:`RecordLookup` that runs
        until the RECORD_LOOKUP_CLOSEST closest live peers it hears of have
        answered (libp2p's put_value ends its lookup after the first round
        that does not change its top 20, so it stored records on peers ranked
        up to ~60th from the key, beyond what a reader's lookup reaches);
        the record then goes to those of them that lack it.
        """
        self._check_record_key(key)
        validator = self._dht.validator
        if validator is None:
            raise P2PDMError("the DHT has no record validator")
        validator.validate(key, value)  # the namespace's own error, unchanged
        key_bytes = key.encode()
        store = self._dht.value_store
        old = store.get(key_bytes)
        if old is not None and old.value != value and validator.select(key, [value, old.value]):
            raise P2PDMError(f"a newer record is already stored under {key[:40]!r}")
        store.put(key_bytes, value)
        record = store.get(key_bytes)
        if record is None:  # the store is full of others' records and refused ours
            return 0
        lookup = RecordLookup(self._dht, key, key_bytes, putting=record)
        with trio.move_on_after(RECORD_PUT_TIMEOUT_SECONDS) as scope, suppress(*NETWORK_ERRORS):
            await lookup.run()
            await lookup.correct()
        if scope.cancelled_caught:
            logger.info(
                "replication of %s stopped after %g s", key[:40], RECORD_PUT_TIMEOUT_SECONDS
            )
        return lookup.holders

    def holds_record(self, key: str) -> bool:
        """Whether this host's DHT store holds a record under ``key`` now."""
        return self._dht.value_store.get(key.encode()) is not None

    def take_record(self, key: str, value: bytes, writer: PeerId | None) -> bool:
        """Store ``value`` under ``key`` as an inbound PUT_VALUE from ``writer``
        would (``None``: our own record, as :meth:`put_record` keeps it): the
        writer's rate charged, the namespace's check, kept only if newer than
        the copy held, within the store's caps. True if this host holds it now.

        For simulations that place each node's first record where its put
        would end (``p2pdm sim --record-forming plan``) instead of putting it
        over the network.
        """
        key_bytes = self._check_record_key(key)
        validator = self._dht.validator
        if validator is None:
            return False
        store = self._dht.value_store
        token = _dht_writer.set(None if writer is None else to_id(writer).to_bytes())
        try:
            validator.validate(key, value)
            held = store.get(key_bytes)
            newer = held is None or held.value != value
            if held is not None and newer and validator.select(key, [held.value, value]) == 0:
                return False
            if newer:
                record = Record(key=key_bytes, value=value, timeReceived=format_time_rfc3339())
                store.put_record(key_bytes, record)
        except Exception as exc:  # refused as the PUT_VALUE handler would refuse it
            logger.debug("record under %s not taken: %r", key[:40], exc)
            return False
        finally:
            _dht_writer.reset(token)
        held = store.get(key_bytes)
        return held is not None and held.value == value

    async def get_record(
        self,
        key: str,
        timeout: float,  # noqa: ASYNC109
        *,
        keep: bool = True,
    ) -> bytes | None:
        """The newest valid record under ``key``, or None if there is none.

        libp2p answers from the local copy first, which may be stale: the
        local copy is set aside, RECORD_QUORUM holders are asked, and the
        newest of their answer and the local copy wins (and is kept locally).
        ``keep=False``: a record found only in the network is not kept here
        (a stranger's record, looked at once: copies we keep count towards
        our DHT store's caps and are never evicted).
        """
        self.last_record_lookup = None
        key_bytes = self._check_record_key(key)
        store = self._dht.value_store
        local = store.get(key_bytes)
        if local is not None:
            store.remove(key_bytes)
        lookup = RecordLookup(self._dht, key, key_bytes)
        try:
            with trio.move_on_after(timeout) as scope, suppress(*NETWORK_ERRORS):
                await lookup.run()
            lookup.timed_out = scope.cancelled_caught
            if lookup.best is not None and self._tasks is not None:
                with suppress(RuntimeError):  # the host is closing: no correction
                    self._tasks.start_soon(lookup.correct)
        finally:
            best = self._keep_newest(key, key_bytes, local)
            if not keep and local is None and best is not None:
                store.remove(key_bytes)
            # Set after the last await: a caller reads it as soon as we return.
            self.last_record_lookup = lookup
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

    # --- providers --------------------------------------------------------

    async def provide(self, key: bytes) -> None:
        """Announce that we provide ``key`` (1..80 bytes); PeerUnreachable if nobody took it.

        On the wire the key is its SHA-256 multihash (:func:`provider_key`).
        """
        if not 0 < len(key) <= MAX_PROVIDER_KEY_BYTES:
            raise ValueError(f"provider keys are 1..{MAX_PROVIDER_KEY_BYTES} bytes")
        announced = False
        with trio.move_on_after(RECORD_PUT_TIMEOUT_SECONDS), unreachable("provide failed"):
            announced = await self._dht.provider_store.provide(provider_key(key))
        if not announced:
            raise PeerUnreachable("no DHT peer took the provider record")

    async def find_providers(
        self,
        key: bytes,
        timeout: float,  # noqa: ASYNC109
    ) -> list[tuple[PeerId, list[str]]]:
        """Up to MAX_PROVIDERS peers providing ``key``, with their addresses; [] if none found.

        libp2p answers from the providers stored here when there are any; when
        the only one is ourselves (we provide ``key`` and are not among the
        peers closest to it, which hold the others' announcements), that is
        not the network's list: the network is asked, and we are added.
        """
        if not 0 < len(key) <= MAX_PROVIDER_KEY_BYTES:
            raise ValueError(f"provider keys are 1..{MAX_PROVIDER_KEY_BYTES} bytes")
        infos: list[PeerInfo] = []
        store = self._dht.provider_store
        wire_key = provider_key(key)
        local = store.get_providers(wire_key)
        only_us = bool(local) and all(info.peer_id == store.local_peer_id for info in local)
        with trio.move_on_after(timeout), suppress(*NETWORK_ERRORS):
            if only_us:
                remote = await ProviderStore.find_providers(
                    _NetworkOnly(store),  # type: ignore[arg-type]
                    wire_key,
                    MAX_PROVIDERS,
                )
                infos = [*local, *remote]
            else:
                infos = await store.find_providers(wire_key, MAX_PROVIDERS)
        found: dict[PeerId, list[str]] = {}
        for info in infos:
            peer = from_id(info.peer_id)
            if peer is not None and peer not in found:
                # Some peers list an address twice (js-libp2p 2.8 does).
                addrs = dict.fromkeys(full_addr(addr, peer) for addr in info.addrs)
                found[peer] = list(addrs)[:MAX_ADDRS]
        return list(found.items())


class _NetworkOnly:
    """A provider store as one lookup sees it: everything as the store, but no
    providers stored here (libp2p's ``find_providers`` would answer from them
    and not ask the network). Serving other peers still uses the store itself."""

    def __init__(self, store: ProviderStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def get_providers(self, key: bytes) -> list[PeerInfo]:
        return []


def _key_distance(target: bytes) -> Callable[[ID], int]:
    """XOR distance to ``target`` (a DHT key) in libp2p's keyspace (SHA-256 of both)."""
    point = int.from_bytes(hashlib.sha256(target).digest(), "big")

    def distance(peer: ID) -> int:
        return point ^ int.from_bytes(hashlib.sha256(peer.to_bytes()).digest(), "big")

    return distance


async def ask_value(dht: KadDHT, peer: ID, key: bytes) -> tuple[Record | None, list[ID]] | None:
    """Ask ``peer`` for the record under ``key``: (its record or None, the closer
    peers it named), or None if it gave no usable answer (a malformed reply, a
    record without a valid sender record). Network failures raise.

    libp2p's ``_get_from_peer`` returns (None, []) for a failure *and* for a
    peer that has neither the record nor a closer peer (the only other DHT
    server of a young network, asked about a key while its table holds no one
    but the asker), so a lookup could not tell a live peer from a dead one.
    The request is libp2p's own: GET_VALUE with our signed peer record.
    """
    message = Message()
    message.type = Message.MessageType.GET_VALUE
    message.key = key
    message.senderRecord = env_to_send_in_RPC(dht.host)[0]
    request = message.SerializeToString()
    stream = await dht.host.new_stream(peer, [KAD_PROTOCOL])
    try:
        await stream.write(encode_varint_prefixed(request))
        raw = await read_varint_prefixed_bytes_limited(stream, MAX_DHT_MESSAGE_SIZE)
    finally:
        with suppress(*NETWORK_ERRORS):
            await stream.close()
    response = Message()
    try:
        response.ParseFromString(raw)
    except DecodeError:
        return None
    if response.type != Message.MessageType.GET_VALUE:
        return None
    closer: list[ID] = []
    peerstore = dht.host.get_peerstore()
    for named in response.closerPeers:
        with suppress(Exception):  # one bad entry costs only itself (libp2p's rule)
            closer_id = ID(named.id)
            if closer_id != dht.local_peer_id:
                if named.addrs:
                    addrs = [Multiaddr(addr) for addr in named.addrs]
                    peerstore.add_addrs(closer_id, addrs, CLOSER_PEER_ADDR_TTL_SECONDS)
                closer.append(closer_id)
    if not (response.HasField("record") and response.record.value):
        return None, closer
    if not consume_signed_record_once(response, dht.host, peer):
        return None
    response.record.timeReceived = format_time_rfc3339()
    return response.record, closer


class RecordLookup:
    """One iterative GET_VALUE lookup, keeping what it found even if cut short.

    libp2p's ``get_value`` (a FIND_NODE lookup, then GET_VALUE to those
    peers and the closer peers they name, until the quorum) loses every
    record it found when its caller's deadline cuts it short: with fewer
    holders than the quorum reachable (a network that grew since the record
    was put, churn) it asks on until the deadline and returns nothing; and
    it propagates the result to stale holders before returning, so a slow
    holder costs the caller its answer too. Here one Kademlia lookup asks
    GET_VALUE directly (each answer carries the record and closer peers),
    RECORD_LOOKUP_CONCURRENCY at a time, closest first; the newest valid
    record so far is kept in the local store at once; it ends at
    RECORD_QUORUM valid copies or when the RECORD_LOOKUP_CLOSEST closest
    peers heard of have answered — or, if none of those had it, the
    RECORD_LOOKUP_WIDEST closest: a record put when the network was smaller
    (or whose holders restarted with empty stores) sits on peers that are no
    longer the closest to its key, and libp2p moves records only when their
    owner republishes. Entry correction (:meth:`correct`: the
    newest record, put to the closest answering peers that lacked it, which
    moves records to the peers now closest to their key) runs afterwards,
    in the background.

    ``putting`` (:meth:`Dht.put_record`): the lookup of a put, with the record
    being put as the newest so far. It does not stop at the quorum nor look
    further out: it ends once the RECORD_LOOKUP_CLOSEST closest live peers
    have answered, and :meth:`correct` then stores the record at those that
    lack it.
    """

    def __init__(
        self, dht: KadDHT, key: str, key_bytes: bytes, *, putting: Record | None = None
    ) -> None:
        self._dht = dht
        self.key = key
        self.key_bytes = key_bytes
        self._distance = _key_distance(key_bytes)
        self._candidates: dict[ID, int] = {}
        self._asked: set[ID] = set()
        self._answered: set[ID] = set()
        self._failed: set[ID] = set()
        self._in_flight = 0
        self._changed = trio.Event()
        #: How many of the closest live peers must answer before it gives up.
        self._width = RECORD_LOOKUP_CLOSEST
        #: Peers that returned the newest record so far / an older one / none.
        self._holders: set[ID] = set()
        self._stale: set[ID] = set()
        #: A put (``putting``: the record being put) asks until the closest
        #: have answered, whatever copies it meets, and does not look further.
        self._putting = putting is not None
        self.best: Record | None = putting
        self.copies = 0
        #: Why it ended: "quorum", "closest_answered", "no_peers", "exhausted"
        #: (every candidate asked), or "" while running or cut short.
        self.ended = ""
        self.timed_out = False

    @property
    def asked(self) -> int:
        return len(self._asked)

    @property
    def answered(self) -> int:
        return len(self._answered)

    def _add_candidates(self, peers: list[ID]) -> None:
        me = self._dht.local_peer_id
        for peer in peers:
            if peer != me and peer not in self._candidates:
                self._candidates[peer] = self._distance(peer)

    def _closest_settled(self) -> bool:
        """Whether the k closest peers not known to have failed have all answered."""
        failed = self._failed
        live = sorted((d, p) for p, d in self._candidates.items() if p not in failed)
        live = live[: self._width]
        return bool(live) and all(p in self._answered for _, p in live)

    def _next(self) -> ID | None:
        """The closest candidate not asked yet, if it is among the k closest still live."""
        failed = self._failed
        live = sorted((d, p) for p, d in self._candidates.items() if p not in failed)
        for _, peer in live[: self._width]:
            if peer not in self._asked:
                return peer
        return None

    async def run(self) -> None:
        table = self._dht.routing_table
        self._add_candidates(table.find_local_closest_peers(self.key_bytes, RECORD_LOOKUP_CLOSEST))
        if len(self._candidates) < RECORD_LOOKUP_MIN_TABLE:
            # A young node (libp2p's own lookups do the same): its connections,
            # and the closest peers it has addresses for.
            host = self._dht.host
            self._add_candidates(host.get_connected_peers())
            known = [
                p for p in host.get_peerstore().peers_with_addrs() if p not in self._candidates
            ]
            self._add_candidates(sorted(known, key=self._distance)[: self._width])
        if not self._candidates:
            self.ended = "no_peers"
            return
        async with trio.open_nursery() as nursery:
            while True:
                if self.copies >= RECORD_QUORUM and not self._putting:
                    self.ended = "quorum"
                    break
                if self._closest_settled():
                    if not self.copies and not self._putting and self._width < RECORD_LOOKUP_WIDEST:
                        self._width = RECORD_LOOKUP_WIDEST  # look further out (class doc)
                        continue
                    self.ended = "closest_answered"
                    break
                peer = self._next() if self._in_flight < RECORD_LOOKUP_CONCURRENCY else None
                if peer is not None:
                    self._asked.add(peer)
                    self._in_flight += 1
                    nursery.start_soon(self._ask, peer)
                    continue
                if not self._in_flight:
                    self.ended = "exhausted"
                    break
                self._changed = trio.Event()
                await self._changed.wait()
            nursery.cancel_scope.cancel()

    async def _ask(self, peer: ID) -> None:
        try:
            answer: tuple[Record | None, list[ID]] | None = None
            with trio.move_on_after(RECORD_QUERY_TIMEOUT_SECONDS), suppress(*NETWORK_ERRORS):
                answer = await ask_value(self._dht, peer, self.key_bytes)
            if answer is None:
                self._failed.add(peer)  # no answer in time, or no answer at all
                return
            record, closer = answer
            self._answered.add(peer)
            self._add_candidates(list(closer))
            if isinstance(record, Record):
                self._consider(peer, record)
        finally:
            self._in_flight -= 1
            self._changed.set()

    def _consider(self, peer: ID, record: Record) -> None:
        validator = self._dht.validator
        if validator is None:
            return
        try:
            validator.validate(self.key, record.value)
            best = self.best
            if (
                best is not None
                and record.value != best.value
                and validator.select(self.key, [best.value, record.value]) == 0
            ):
                self._stale.add(peer)
                return
        except Exception as exc:
            logger.debug("record lookup: invalid record from %s: %r", peer, exc)
            return
        if self.best is None or record.value != self.best.value:
            self._stale |= self._holders
            self._holders = set()
            self.copies = 0
            self.best = record
            # Kept at once: a lookup cut short still has it (Dht._keep_newest).
            current = self._dht.value_store.get(self.key_bytes)
            if current is None or current.value != record.value:
                self._dht.value_store.put_record(self.key_bytes, record)
        self._holders.add(peer)
        self.copies += 1

    def behind(self) -> list[ID]:
        """The peers to correct: stale holders, and the closest answering peers without it."""
        closest = sorted(self._answered, key=self._candidates.__getitem__)[: self._width]
        return [p for p in closest if p not in self._holders] + [
            p for p in self._stale if p not in closest
        ]

    @property
    def holders(self) -> int:
        """Peers known to hold the newest record: those that answered with it and
        those that took it from :meth:`correct`."""
        return len(self._holders)

    async def correct(self) -> None:
        """Put the newest record to :meth:`behind`'s peers (bounded, errors ignored);
        each peer that took it counts in :attr:`holders`."""
        best = self.best
        if best is None:
            return
        store = self._dht.value_store

        async def put(peer: ID) -> None:
            with suppress(Exception):
                took = await store._store_at_peer(peer, self.key_bytes, best.value, record=best)
                if took and self.best is best:
                    self._holders.add(peer)

        with trio.move_on_after(RECORD_CORRECTION_TIMEOUT_SECONDS):
            async with trio.open_nursery() as nursery:
                for peer in self.behind()[: self._width]:
                    nursery.start_soon(put, peer)
