"""Every workaround p2pdm applies to py-libp2p 0.8.1, each beside its pitfall.

How this works: libp2p is used as shipped; where it misbehaves, the fix is a
setting, a wrapper or a replaced method, and every one that configures or
replaces something of libp2p's lives in this module, so upgrading libp2p means
reading one file. The measured pitfalls (NOTES-libp2p.md) and what is done:

1. plaintext accepted by default → ``sec_opt`` holds Noise only
   (:func:`security_options`);
2. 250 ms per connect → one connection per peer (``max_connections_per_peer=1``,
   :func:`connection_config`);
3./4. leaving ``run()`` closes nothing, ``close()`` is sequential → on exit
   the listeners and all connections are closed concurrently, inside ``run()``
   (:func:`close_connections`, called by :func:`p2pdm.net._maintenance.shutdown`);
5. a raising stream handler kills the host → every handler is wrapped
   (``Host._guarded``);
6. reads have no deadline → :class:`~p2pdm.net.stream.Stream` reads under
   ``trio.fail_after``;
10. dial retries to dead peers → ``RetryConfig(max_retries=0)``
    (:func:`no_dial_retries`);
11. DHT lookups leave a full mesh → idle connections are closed
    (:mod:`p2pdm.net._maintenance`); libp2p's auto-connector (it aims at ~160
    connections) is stopped (:func:`stop_auto_connector`) and a bounded
    bootstrap re-dial takes its place;
12. client-mode peers enter server routing tables → removed once identify
    shows they do not serve the DHT (``_maintenance.forget_client_peers``);
13. disconnects logged at ERROR on stderr → the ``libp2p`` logger is tamed
    (:mod:`p2pdm.net.logs`);

found here, not in the notes:

16. every inbound connection ever accepted keeps an inbound slot and a task
    until the host stops, so after 250 inbound connections the host refuses
    all others → inbound handling waits for *its* connection to close
    (:func:`hold_inbound_slot_only_while_connected`);
17. a stream the peer resets reads as a clean EOF (Yamux forgets it) → the
    raw stream checks ``reset_received`` and raises PeerUnreachable
    (:func:`reset_by_peer`);
18. listeners use SO_REUSEPORT, so a second node on a taken port shares it
    silently → :func:`p2pdm.net.addrs.refuse_taken_port` probes first;
19. some libp2p loggers pin themselves to INFO → see :mod:`p2pdm.net.logs`;
20. a wildcard listen address (0.0.0.0) is announced as is, which no peer
    can dial → an ``addrs_factory`` announces the interface addresses (the
    default route's first) and loopback instead (:func:`advertised`,
    :func:`p2pdm.net.addrs.dialable_addrs`);
21. a connection close cancelled midway (the host's block cancelled while
    libp2p closes a connection) leaves it marked closed with its socket open,
    and a second ``close()`` returns at once → shutdown closes the muxer too
    (:func:`close_connection`);
22. identify runs once, when a connection opens, so peers met while joining
    never learn of handlers set afterwards → :meth:`Host.announce_protocols`
    pushes identify to the connected peers that take it;
23. a DHT server puts a querier in its routing table only if identify gave it
    the querier's addresses, and joining with libp2p's full refresh costs
    twice the queries of Kademlia's self-lookup → the join looks itself up
    once the bootstrap peer has fetched our identify (:func:`note_identify_requests`,
    ``_maintenance.look_up_ourselves``; docs/simulation.md);
24. nothing in libp2p refuses a peer by its ID → :meth:`Host.set_peer_filter`
    guards the swarm's dials, new streams and security upgrade
    (:func:`refuse_filtered_peers`);

25. AutoNAT v1's server dials back whatever PeerID a request names (not
    the asker's), and "dials" with ``host.connect``, which returns at once
    when a connection is open (always: the request came over one), so it
    reports every asker public → p2pdm serves and asks AutoNAT itself
    (:mod:`p2pdm.net._autonat`): the request's peer must be the stream's,
    and each dial-back is a new connection whose Noise handshake proves the
    asker's key;
26. circuit relay v2's hop reserves for the peer a request names, dials a
    circuit's target when it is not connected (SSRF through the relay),
    writes a status message into the relayed byte stream at a limit and
    checks the deadline only while data flows → :mod:`p2pdm.net._relay`
    wraps its handlers and its copy loop;
27. mDNS announces the raw listen addresses (``0.0.0.0``), reports peers on
    zeroconf's thread through a process-wide singleton, and its ``start``
    needs trio's thread while blocking on zeroconf → :mod:`p2pdm.net._mdns`;
28. Yamux runs two timer loops per connection (an RTT ping every 30 s, a
    stale-stream sweep every 30 s), each wait ending in an expired cancel
    scope → the same loops on the shared timers of :mod:`p2pdm.net.timers`
    (``_Yamux``, :func:`muxer_options`; libp2p's muxer negotiation builds
    ``Yamux`` by name, so that name is pointed at ``_Yamux`` too);
29. every DHT message (request, reply, each closer peer in a reply) carries
    a signed peer record that libp2p parses and verifies (Ed25519) anew, though
    a node signs its record once and sends the same bytes every time: 7 % of a
    100-node simulation's CPU → each host keeps the last
    ``VERIFIED_PEER_RECORDS`` it verified, by their bytes, and takes those
    as verified (the peerstore is updated as before)
    (:func:`consume_signed_record_once`, put in libp2p's DHT modules by
    :func:`verify_peer_records_once`);
30. KadDHT's main loop refreshes the whole routing table (a lookup for
    itself and one per non-empty bucket) when the DHT starts and every
    10 minutes, beside p2pdm's own refresh on ``Upkeep.dht_refresh_interval``
    (``_maintenance.maintain``): twice the lookups, and in a simulation all
    nodes started within minutes refresh together (a 300-node real-clock run
    spent its forming in them) → :func:`dht_main_loop` keeps the loop's
    republishing and expiry, not its refresh;
31. a host's advertised addresses are rebuilt on every call (each listen
    address parsed, passed through the ``addrs_factory``, its ``/p2p/`` part
    parsed and appended), and every identify (three calls) and every DHT
    request and reply (one, for its signed peer record) asks for them →
    each host keeps the last list, rebuilt only when its candidates (listen
    and confirmed observed addresses) change (:func:`advertise_once_per_change`);
32. libp2p's Yamux sends a WINDOW_UPDATE frame after every read that
    returns data (whichever of its branches: a partial slack, or
    ``PY_YAMUX_RELEASE_ON_READ``, on by default), where go-yamux
    gives the credit back only once half the window is consumed: one more
    frame, written and handled by the other end, for nearly every read of
    every stream (a DHT query, an identify): half of all frames → go-yamux's
    rule (``_YamuxStream``, which Yamux builds by its module's name, pointed
    at it by :func:`muxer_options`);
33. multistream-select's client writes its header, waits for the other
    end's, then writes the protocol and waits again: two round trips and
    four messages for every stream, secured connection and muxer → one
    protocol is proposed as go-multistream does (``SelectProtoOrFail``):
    header and protocol in one write, then both answers read
    (:func:`select_in_one_round_trip`; several protocols: libp2p's way);
34. the peerstore holds at most 1,000 peers and, over that, evicts those
    without addresses first: the host's own entry (its keys, never an
    address) went first, and the next identify, asking for the host's
    public key, raised and took the whole host down — a node of a network
    of more than a thousand peers hears of that many (found by a 2,000-node
    simulation) → over the cap the host's own entry and its connected
    peers' are kept, the others evicted in libp2p's order
    (:func:`keep_own_and_connected_peers`);

records: ``get_value`` answers from a stale local copy → ``Host.get_record``
drops it and asks the network with a quorum, then keeps the newest
(:mod:`p2pdm.net._dht`);
floods: KadDHT stores any valid record any peer sends (up to 50,000, then
evicts the *oldest* with a 70 ms scan) → writes are rate-limited per peer,
capped per peer and in all, and a full store evicts a flooder's newest
records, never a peer's only one (:mod:`p2pdm.net._dht_guard`, wired by
``_dht.guard_dht`` through :func:`replace_dht_stores`);
providers: standard Kademlia nodes (js-libp2p, go-libp2p) drop provider
records whose key is not a multihash, without an error → provider keys go
on the wire as the SHA-256 multihash of p2pdm's key (``_dht.provider_key``);
replay: in a virtual-time simulation libp2p's wall clock, its ``secrets``
and one ``id()`` tie-break would make two runs of one seed differ →
:func:`deterministic_libp2p` (used by :mod:`p2pdm.sim.determinism`).
"""

from __future__ import annotations

import importlib
import logging
import struct
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final

import multiaddr
import trio
from libp2p.abc import (
    IMultiselectCommunicator,
    INetConn,
    INetStream,
    IRawConnection,
    ISecureConn,
)
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.identity.identify.identify import ID as IDENTIFY_PROTOCOL_ID
from libp2p.io.abc import ReadWriteCloser
from libp2p.io.exceptions import IOException
from libp2p.kad_dht.kad_dht import ROUTING_TABLE_REFRESH_INTERVAL, KadDHT
from libp2p.kad_dht.pb.kademlia_pb2 import Message
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.network.exceptions import SwarmException
from libp2p.network.swarm import Swarm
from libp2p.peer.envelope import Envelope, consume_envelope
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PeerRecord
from libp2p.protocol_muxer.exceptions import (
    MultiselectClientError,
    MultiselectCommunicatorError,
)
from libp2p.protocol_muxer.multiselect_client import (
    DEFAULT_NEGOTIATE_TIMEOUT,
    MULTISELECT_PROTOCOL_ID,
    PROTOCOL_NOT_FOUND_MSG,
    MultiselectClient,
    is_valid_handshake,
)
from libp2p.protocol_muxer.multiselect_communicator import MultiselectCommunicator
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.yamux import yamux as yamux_module
from libp2p.stream_muxer.yamux.yamux import (
    _STALE_STREAM_SWEEP_INTERVAL as YAMUX_STALE_STREAM_SWEEP_INTERVAL,
)
from libp2p.stream_muxer.yamux.yamux import FLAG_SYN as YAMUX_FLAG_SYN
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import RTT_MEASURE_INTERVAL as YAMUX_RTT_MEASURE_INTERVAL
from libp2p.stream_muxer.yamux.yamux import TYPE_PING as YAMUX_TYPE_PING
from libp2p.stream_muxer.yamux.yamux import YAMUX_HEADER_FORMAT, Yamux, YamuxStream
from libp2p.transport.exceptions import SecurityUpgradeFailure
from libp2p.utils import encode_delim

from p2pdm.net import timers
from p2pdm.net._edge import quietly
from p2pdm.net.addrs import dialable_addrs
from p2pdm.net.limits import (
    CONNECTIONS_HIGH_WATERMARK,
    CONNECTIONS_LOW_WATERMARK,
    DIAL_TIMEOUT_SECONDS,
    HANDSHAKE_TIMEOUT_SECONDS,
    MAX_CONNECTIONS,
    MAX_INBOUND_CONNECTIONS,
    SHUTDOWN_TIMEOUT_SECONDS,
    STREAM_NEGOTIATION_TIMEOUT_SECONDS,
    VERIFIED_PEER_RECORDS,
)

__all__ = [
    "advertise_once_per_change",
    "advertised",
    "close_connection",
    "close_connections",
    "connection_config",
    "consume_signed_record_once",
    "deterministic_libp2p",
    "dht_main_loop",
    "hold_inbound_slot_only_while_connected",
    "keep_own_and_connected_peers",
    "muxer_options",
    "no_dial_retries",
    "note_identify_requests",
    "refuse_filtered_peers",
    "replace_dht_stores",
    "reset_by_peer",
    "security_options",
    "select_in_one_round_trip",
    "stop_auto_connector",
    "unblock_peers_at_new_addrs",
    "verify_peer_records_once",
]

logger = logging.getLogger(__name__)

#: libp2p's Yamux figures, kept by ``_Yamux``: the first RTT ping goes this
#: long after the connection opens, and waits this long for its pong.
YAMUX_RTT_START_SECONDS: Final = 0.5
YAMUX_PONG_WAIT_SECONDS: Final = 10.0

# --- pitfalls 1, 2, 10, 11: settings ------------------------------------------


def security_options(key_pair: KeyPair) -> dict[TProtocol, NoiseTransport]:
    """Noise, and nothing else: libp2p would also take plaintext (pitfall 1)."""
    noise = NoiseTransport(key_pair, noise_privkey=create_noise_key_pair().private_key)
    return {TProtocol(NOISE_PROTOCOL_ID): noise}


class _Yamux(Yamux):
    """libp2p's Yamux with its per-connection timers on the shared ones (pitfall 28).

    Each connection runs two loops that sleep out nearly every wait: the RTT
    ping (0.5 s after the start, then every RTT_MEASURE_INTERVAL, 30 s) and
    the stale-stream sweep (every 30 s). With trio's own timers each such
    wait ends in an expired cancel scope; in a simulation of hundreds of
    nodes with tens of connections each they were a large part of trio's
    deadline bookkeeping. The same loops, the same periods (up to
    :data:`~p2pdm.net.timers.TIMER_SLOT_SECONDS` later), on
    :mod:`p2pdm.net.timers`. A closing connection ends them as before:
    closing the secured connection ends ``handle_incoming``, which cancels
    the muxer's nursery (the sweep never waited for more).
    """

    async def _measure_rtt_loop(self) -> None:
        await timers.sleep(YAMUX_RTT_START_SECONDS)
        while not self.event_shutting_down.is_set():
            try:
                self._ping_id += 1
                self._ping_event = trio.Event()
                header = struct.pack(
                    YAMUX_HEADER_FORMAT, 0, YAMUX_TYPE_PING, YAMUX_FLAG_SYN, 0, self._ping_id
                )
                await self._write_frame(header)
                self._ping_sent_time = trio.current_time()
                with trio.move_on_after(YAMUX_PONG_WAIT_SECONDS):
                    await self._ping_event.wait()
            except Exception:
                break  # the connection is closing, as libp2p's loop ends
            await timers.sleep(YAMUX_RTT_MEASURE_INTERVAL)

    async def _stale_stream_sweeper(self) -> None:
        while not self.event_shutting_down.is_set():
            await timers.sleep(YAMUX_STALE_STREAM_SWEEP_INTERVAL)
            if self.event_shutting_down.is_set():
                break
            async with self.streams_lock:
                self._sweep_stale_streams()


class _YamuxStream(YamuxStream):
    """libp2p's Yamux stream giving receive-window credit back as go-yamux
    does (pitfall 32): a WINDOW_UPDATE once the bytes read and not yet
    credited reach the hysteresis threshold (half the window, go-yamux's
    ``GrowTo``), not after every read. The sender keeps at least half a
    window of credit, so a bulk transfer still flows; a small request or
    reply no longer costs a frame per read."""

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        increment = 0
        async with self.window_lock:
            buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
            consumed = self.target_recv_window - (self.recv_window + buffered)
            if consumed > 0 and consumed >= self._grow_threshold():
                increment = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
        if increment > 0:
            await self.send_window_update(increment, skip_lock=True)


async def dht_main_loop(dht: KadDHT) -> None:
    """KadDHT's main loop without its routing-table refresh (pitfall 30): the
    records' republishing and expiry, every ROUTING_TABLE_REFRESH_INTERVAL."""
    while dht.manager.is_running:
        try:
            await dht.provider_store._republish_provider_records()
            await dht.value_store._republish_records(dht.peer_routing)
            dht.value_store.cleanup_expired()
            dht.provider_store.cleanup_expired()
        except Exception as exc:  # libp2p's loop logs and goes on too
            logger.error("DHT maintenance failed: %r", exc)
        await trio.sleep(ROUTING_TABLE_REFRESH_INTERVAL)


def muxer_options() -> dict[TProtocol, type[Yamux]]:
    # libp2p's muxer negotiation builds ``Yamux`` by name, whatever class the
    # options give: its module's name points at ours (pitfall 28). Likewise
    # Yamux builds its streams by the module's name (pitfall 32).
    muxer_multistream.Yamux = _Yamux  # type: ignore[attr-defined]
    yamux_module.YamuxStream = _YamuxStream  # type: ignore[misc]
    return {TProtocol(YAMUX_PROTOCOL_ID): _Yamux}


def connection_config() -> ConnectionConfig:
    return ConnectionConfig(
        # One connection per peer: besides being all a messaging node needs,
        # it ends the dial's 250 ms happy-eyeballs wait (pitfall 2).
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


def no_dial_retries(swarm: Swarm) -> None:
    """Each dial to a departed peer would burn ~0.7 s of retries (pitfall 10)."""
    swarm.retry_config = RetryConfig(max_retries=0)


def unblock_peers_at_new_addrs(swarm: Swarm) -> None:
    """Lift the swarm's negative-cache block of a peer when we learn an address of
    it we did not know.

    A dial that fails every address blocks the peer for 60 s (libp2p's
    ``_NegativePeerCache``): every dial meanwhile fails at once, even when a
    DHT answer has since told us where the peer is now. A peer that restarted
    on a new address (a moved laptop, a node whose port changed) was named to
    lookups at its old address by peers that had not heard from it since; the
    failed dial then made every later query to it fail for a minute,
    although the next answer gave its new address (simulation with churn:
    539 of ~1,000 failed record queries). libp2p has ``Swarm.unblock_peer``
    for this but calls it only when a dial finds another peer at an address.
    """
    peerstore: Any = swarm.peerstore  # libp2p's PeerStore (its peer_data_map)
    add_addrs = peerstore.add_addrs

    def add_addrs_unblocking(
        peer_id: ID, addrs: Sequence[multiaddr.Multiaddr], ttl: int = 0
    ) -> None:
        data = peerstore.peer_data_map.get(peer_id)
        known = set(data.addrs) if data is not None else set()
        add_addrs(peer_id, addrs, ttl)
        if any(addr not in known for addr in addrs):
            swarm.unblock_peer(peer_id)

    peerstore.add_addrs = add_addrs_unblocking


def keep_own_and_connected_peers(swarm: Swarm) -> None:
    """Over its cap, ``swarm``'s peerstore evicts others than the host itself
    and its connected peers (pitfall 34), in libp2p's order: peers without
    addresses first, then expired ones, then the rest as stored."""
    peerstore: Any = swarm.peerstore  # libp2p's PeerStore (its peer_data_map)
    local = swarm.get_peer_id()

    def enforce_peer_limit() -> None:
        data = peerstore.peer_data_map
        excess = len(data) - peerstore.max_peers
        if excess <= 0:
            return
        connected = swarm.connections
        evictable = [
            (peer, entry) for peer, entry in data.items() if peer != local and peer not in connected
        ]
        # libp2p's order: no addresses before some, expired before not (stable).
        evictable.sort(key=lambda item: (bool(item[1].get_addrs()), not item[1].is_expired()))
        for peer, _ in evictable[:excess]:
            peerstore.peer_record_map.pop(peer, None)
            del data[peer]

    peerstore._enforce_peer_limit = enforce_peer_limit


async def stop_auto_connector(swarm: Swarm) -> None:
    """libp2p's auto-connector dials towards ~160 connections (pitfall 11)."""
    await swarm.auto_connector.stop()


# --- pitfall 20: announced addresses -----------------------------------------


def advertised(candidates: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    """What identify and the DHT announce: wildcard listen addresses (0.0.0.0,
    ::) replaced by addresses peers can dial."""
    return [multiaddr.Multiaddr(text) for text in dialable_addrs([str(c) for c in candidates])]


def advertise_once_per_change(host: Any) -> None:
    """``host.get_addrs`` (libp2p's BasicHost) rebuilds its list only when the
    candidates it starts from change: the listeners' addresses and the
    confirmed observed ones (pitfall 31). Same answers, a fresh list each call.
    A wildcard listen address (0.0.0.0, ::) stands for the machine's interface
    addresses of the moment (:func:`advertised`): such a list is rebuilt each time."""
    build = host.get_addrs
    kept: list[Any] = [None, [], False]  # the candidates, the list built, any wildcard

    def get_addrs() -> list[multiaddr.Multiaddr]:
        candidates = tuple(host.get_transport_addrs())
        manager = host._observed_addr_manager
        if manager is not None:
            candidates += tuple(manager.addrs())
        if candidates != kept[0] or kept[2]:
            wildcard = dialable_addrs(texts := [str(c) for c in candidates]) != texts
            kept[0], kept[1], kept[2] = candidates, build(), wildcard
        return list(kept[1])

    host.get_addrs = get_addrs


# --- pitfall 33: multistream-select in one round trip -----------------------


async def _select_one_of(
    self: MultiselectClient,
    protocols: Sequence[TProtocol],
    communicator: IMultiselectCommunicator,
    negotiate_timeout: int = DEFAULT_NEGOTIATE_TIMEOUT,
) -> TProtocol:
    """libp2p's ``select_one_of`` (same answers, same errors), proposing a single
    protocol in the header's write, as go-multistream does (pitfall 33)."""
    if len(protocols) != 1 or not isinstance(communicator, MultiselectCommunicator):
        return await _LIBP2P_SELECT_ONE_OF(self, protocols, communicator, negotiate_timeout)
    protocol = protocols[0]
    wanted = "" if protocol is None else str(protocol)
    with trio.move_on_after(negotiate_timeout):
        both = encode_delim(MULTISELECT_PROTOCOL_ID.encode()) + encode_delim(wanted.encode())
        try:
            await communicator.read_writer.write(both)
        except (IOException, AssertionError, ValueError) as error:
            raise MultiselectClientError(f"handshake write failed: {error}") from error
        try:
            handshake = await communicator.read()
            response = await communicator.read()
        except MultiselectCommunicatorError as error:
            raise MultiselectClientError(f"protocol read failed: {error}") from error
        if not is_valid_handshake(handshake):
            raise MultiselectClientError(f"multiselect protocol ID mismatch: got {handshake!r}")
        if response == wanted:
            return protocol
        if response == PROTOCOL_NOT_FOUND_MSG:
            raise MultiselectClientError(f"protocols not supported: tried {[wanted]}")
        raise MultiselectClientError(f"unrecognized response: {response!r}, expected {wanted!r}")
    raise MultiselectClientError(f"response timed out after {negotiate_timeout}s")


_LIBP2P_SELECT_ONE_OF: Final = MultiselectClient.select_one_of


def select_in_one_round_trip() -> None:
    """Every multistream-select client proposes a single protocol with its
    header (pitfall 33). Idempotent."""
    MultiselectClient.select_one_of = _select_one_of  # type: ignore[method-assign]


# --- pitfall 16: inbound slots ------------------------------------------------


def hold_inbound_slot_only_while_connected(swarm: Swarm) -> None:
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
            await quietly(read_write_closer.close, "closing a gated inbound connection")
            return
        raw_conn = RawConnection(read_write_closer, False)
        try:
            muxed_conn = await swarm.upgrade_inbound_raw_conn(raw_conn, maddr)
        except Exception as exc:
            logger.debug("inbound connection failed before it was up: %r", exc)
            await quietly(raw_conn.close, "closing a failed inbound connection")
            return
        closed = getattr(muxed_conn, "event_closed", None)
        if isinstance(closed, trio.Event):
            await closed.wait()
        else:  # not Yamux: keep libp2p's behaviour
            await swarm.manager.wait_finished()

    swarm._do_handle_inbound_connection = handle_inbound  # type: ignore[method-assign]
    swarm._inbound_limiter = trio.CapacityLimiter(MAX_INBOUND_CONNECTIONS)


# --- pitfall 17: resets that read as EOF --------------------------------------


def reset_by_peer(stream: INetStream) -> bool:
    """Whether ``stream``, which just read as EOF, was in fact reset by the peer.

    Yamux forgets a stream when the peer resets it, so a reset reads as a
    plain EOF; only the muxed stream remembers the difference.
    """
    muxed = getattr(stream, "muxed_stream", None)
    return bool(getattr(muxed, "reset_received", False))


# --- pitfalls 3, 4, 21: closing connections ---------------------------------------


async def close_connections(conns: Sequence[INetConn]) -> None:
    """Close ``conns`` concurrently (one at a time costs ~0.2 s each, pitfall 4)."""
    with trio.move_on_after(SHUTDOWN_TIMEOUT_SECONDS):
        async with trio.open_nursery() as nursery:
            for conn in conns:
                nursery.start_soon(close_connection, conn)


async def close_connection(conn: INetConn) -> None:
    """Close ``conn`` and its socket. A close that an earlier, cancelled task
    began has marked the connection closed without closing the socket (pitfall
    21), and a second ``close()`` returns at once: close the muxer then."""
    await quietly(conn.close, "closing a connection")
    if not conn.muxed_conn.is_closed:
        await quietly(conn.muxed_conn.close, "closing a half-closed connection")


# --- pitfall 23: who has fetched our identify ----------------------------------


def note_identify_requests(host: Any, identified_by: Mapping[ID, trio.Event]) -> None:
    """Wrap ``host``'s identify handler to set ``identified_by[peer]`` once ``peer`` asked."""
    serve_identify = host.get_mux().handlers.get(IDENTIFY_PROTOCOL_ID)
    if serve_identify is None:
        return

    async def serve_and_note(stream: INetStream) -> None:
        try:
            await serve_identify(stream)
        finally:
            asked = identified_by.get(stream.muxed_conn.peer_id)
            if asked is not None:
                asked.set()

    host.set_stream_handler(IDENTIFY_PROTOCOL_ID, serve_and_note)


# --- pitfall 24: refusing peers by ID ------------------------------------------


def refuse_filtered_peers(swarm: Swarm, permits: Callable[[ID], bool]) -> None:
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
            await quietly(secured.close, "closing a connection of a filtered peer")
            raise SecurityUpgradeFailure(f"peer {remote} is filtered out")
        return secured

    swarm.dial_peer = guarded_dial_peer  # type: ignore[method-assign]
    swarm.dial_addr = guarded_dial_addr  # type: ignore[method-assign]
    swarm.new_stream = guarded_new_stream  # type: ignore[method-assign]
    upgrader.upgrade_security = guarded_upgrade_security  # type: ignore[method-assign]


# --- pitfall 29: signed peer records verified once ----------------------------------

#: The peer record envelopes' signature domain (libp2p's).
PEER_RECORD_DOMAIN: Final = "libp2p-peer-record"
#: How long a peer record's addresses stay in the peerstore (libp2p's figure).
PEER_RECORD_TTL_SECONDS: Final = 7200
#: libp2p's DHT modules that consume signed peer records (by this name).
DHT_RECORD_CONSUMERS: Final = (
    "libp2p.kad_dht.kad_dht",
    "libp2p.kad_dht.peer_routing",
    "libp2p.kad_dht.provider_store",
    "libp2p.kad_dht.value_store",
)


class _VerifiedRecords:
    """One host's recently verified signed peer records, by their bytes (LRU)."""

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[Envelope, PeerRecord]] = {}

    def get(self, data: bytes) -> tuple[Envelope, PeerRecord]:
        """The envelope and record of ``data``; raises what libp2p raises for a bad one."""
        found = self.entries.pop(data, None)
        if found is None:
            found = consume_envelope(data, PEER_RECORD_DOMAIN)
            if len(self.entries) >= VERIFIED_PEER_RECORDS:
                del self.entries[next(iter(self.entries))]  # the least recent
        self.entries[data] = found  # most recent last
        return found


def consume_signed_record_once(msg: Any, host: Any, peer_id: ID | None = None) -> bool:
    """libp2p's ``maybe_consume_signed_record`` (same answers, same peerstore
    updates), verifying each distinct record's bytes once per host."""
    if isinstance(msg, Message):
        if not msg.HasField("senderRecord"):
            return True
        data = msg.senderRecord
    else:
        if not msg.HasField("signedRecord"):
            return True
        data = msg.signedRecord
    verified = getattr(host, "_p2pdm_verified_records", None)
    if verified is None:
        verified = _VerifiedRecords()
        host._p2pdm_verified_records = verified
    try:
        envelope, record = verified.get(data)
        if isinstance(msg, Message):
            if peer_id is not None and record.peer_id != peer_id:
                return False
        elif record.peer_id.to_bytes() != msg.id:
            return False
        if not host.get_peerstore().consume_peer_record(envelope, PEER_RECORD_TTL_SECONDS):
            logger.debug("a signed peer record was refused by the peerstore")
            return False
    except Exception as exc:
        logger.debug("a signed peer record was not usable: %s", exc)
        return False
    return True


def verify_peer_records_once() -> None:
    """Point libp2p's DHT modules at :func:`consume_signed_record_once` (idempotent)."""
    for name in DHT_RECORD_CONSUMERS:
        module = importlib.import_module(name)
        if hasattr(module, "maybe_consume_signed_record"):
            module.maybe_consume_signed_record = consume_signed_record_once  # type: ignore[attr-defined]


# --- floods: the DHT's stores ------------------------------------------------------


def replace_dht_stores(
    dht: KadDHT,
    records: object,
    providers: object,
    allows_provider: Callable[[bytes], bool],
) -> None:
    """Swap ``dht``'s record and provider dicts (still empty) and its ADD_PROVIDER
    rate check (a window per peer in a table that grows without bound) for
    p2pdm's bounded ones (:mod:`p2pdm.net._dht_guard`)."""
    values, provider_store = dht.value_store, dht.provider_store
    if values.store or provider_store.providers:
        raise RuntimeError("the DHT guard must be installed before anything is stored")
    values.store = records  # type: ignore[assignment]
    provider_store.providers = providers  # type: ignore[assignment]
    dht._check_provider_rate_limit = lambda peer_id: allows_provider(peer_id.to_bytes())  # type: ignore[method-assign]


# --- replay: deterministic simulations ----------------------------------------

#: Which third-party modules get the virtual clock and seeded randomness.
PATCHED_PACKAGE: Final = "libp2p"
#: libp2p modules that read the clock but load only at the first connection:
#: loaded up front, so that they too read the virtual one.
LAZY_MODULES: Final = ("libp2p.network.connection.swarm_connection",)


def _best_connection(self: Any, connections: list[Any]) -> Any:
    """libp2p's choice among a peer's connections, ties to the first (oldest)."""
    from libp2p.connection_types import ConnectionType

    def rank(conn: Any) -> tuple[bool, int]:
        try:
            direct = conn.get_connection_type() == ConnectionType.DIRECT
        except Exception:  # as libp2p's own: a half-built connection counts as direct
            direct = True
        try:
            streams = len(conn.get_streams())
        except Exception:
            streams = 0
        return direct, streams

    return max(connections, key=rank)


def _libp2p_modules() -> list[types.ModuleType]:
    """The py-libp2p modules a simulation runs (p2pdm.net loads most on import)."""
    for name in LAZY_MODULES:
        importlib.import_module(name)
    prefix = PATCHED_PACKAGE + "."
    return [
        module
        for name, module in list(sys.modules.items())
        if module is not None and (name == PATCHED_PACKAGE or name.startswith(prefix))
    ]


@contextmanager
def deterministic_libp2p(replacements: Mapping[types.ModuleType, object]) -> Iterator[None]:
    """Within: every libp2p module's reference to a module in ``replacements``
    (``time``, ``secrets``) points at its replacement, and ``Swarm._best_connection``
    breaks ties by age, not by ``id()``. All restored on exit."""
    undo: list[tuple[object, str, object]] = []
    for module in _libp2p_modules():
        for attr, value in list(vars(module).items()):
            if isinstance(value, types.ModuleType) and value in replacements:
                undo.append((module, attr, value))
                setattr(module, attr, replacements[value])
    undo.append((Swarm, "_best_connection", Swarm.__dict__["_best_connection"]))
    Swarm._best_connection = _best_connection  # type: ignore[method-assign]
    try:
        yield
    finally:
        for target, attr, value in reversed(undo):
            setattr(target, attr, value)
