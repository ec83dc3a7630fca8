"""Circuit relay v2: serving as a relay (hop), reached through one (stop), dialing through one.

How this works: py-libp2p 0.8.1's :class:`CircuitV2Protocol` speaks the
protocol (``/libp2p/circuit/relay/0.2.0/hop`` and ``…/stop``); every TCP
host runs one, so circuits to it are accepted (the stop side: the circuit
becomes a normal connection of the swarm, Noise and Yamux over the relayed
stream). A host started with a relay configuration also serves hop, with
p2pdm's limits (:class:`RelayLimits`) and these fixes of upstream habits:

- a reservation is always for the peer on the stream: upstream takes the
  peer named in the request, so anyone could reserve in another's name;
- a circuit is only opened to a peer that holds a reservation *and* is
  connected now: upstream opens its stream with ``host.new_stream``, which
  dials the target's known addresses when it is not connected, so a client
  could make the relay dial addresses of its choosing (SSRF); here the
  relay's host refuses to dial for a circuit (:class:`_NoDialHost`);
- circuits per dialing peer and in all are capped;
- the byte and time limits end a circuit by resetting both streams:
  upstream writes a relay status message *into* the relayed byte stream
  (which the endpoints read as corrupt Noise) and checks the deadline only
  when data flows, so an idle circuit outlived it.

Client side: :func:`reserve` asks a relay for a reservation and returns our
relayed addresses; :func:`dial_circuit` opens a connection to a peer through
a relay (it lands in the swarm like any other, marked relayed).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import trio
from libp2p.abc import IHost, INetStream
from libp2p.connection_types import ConnectionType
from libp2p.custom_types import TProtocol
from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.pb.circuit_pb2 import HopMessage
from libp2p.relay.circuit_v2.pb.circuit_pb2 import PeerId as PbPeerId
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL_ID
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.protocol_buffer import StatusCode, to_proto_status
from libp2p.relay.circuit_v2.resources import RelayLimits as Libp2pRelayLimits
from libp2p.relay.circuit_v2.utils import read_delimited_msg, write_delimited_msg

from p2pdm.core.identity import PeerId
from p2pdm.errors import PeerUnreachable, SchemaError
from p2pdm.net._edge import NETWORK_ERRORS, quietly, to_id
from p2pdm.net.addrs import transport_addr
from p2pdm.net.limits import (
    MAX_CIRCUIT_ADDRS_PER_RELAY,
    RELAY_CIRCUIT_BYTES,
    RELAY_CIRCUIT_SECONDS,
    RELAY_COPY_CHUNK_BYTES,
    RELAY_MAX_CIRCUITS,
    RELAY_MAX_CIRCUITS_FROM_PEER,
    RELAY_MAX_CIRCUITS_PER_PEER,
    RELAY_MAX_RESERVATIONS,
    RELAY_REQUEST_TIMEOUT_SECONDS,
    RELAY_RESERVATION_SECONDS,
)

__all__ = [
    "HOP_PROTOCOL",
    "CircuitV2Protocol",
    "RelayLimits",
    "RelayStats",
    "Reservation",
    "circuit_addr",
    "dial_circuit",
    "is_circuit",
    "relay_protocol",
    "reservations_held",
    "reserve",
    "reserved_peers",
]

logger = logging.getLogger(__name__)

HOP_PROTOCOL = str(HOP_PROTOCOL_ID)
_CIRCUIT = "/p2p-circuit"


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """What a relay grants (defaults: the named constants of :mod:`p2pdm.net.limits`)."""

    max_reservations: int = RELAY_MAX_RESERVATIONS
    reservation_seconds: int = RELAY_RESERVATION_SECONDS
    max_circuits_per_peer: int = RELAY_MAX_CIRCUITS_PER_PEER
    max_circuits_from_peer: int = RELAY_MAX_CIRCUITS_FROM_PEER
    max_circuits: int = RELAY_MAX_CIRCUITS
    circuit_seconds: int = RELAY_CIRCUIT_SECONDS
    circuit_bytes: int = RELAY_CIRCUIT_BYTES


@dataclass(slots=True)
class RelayStats:
    """What a relay did since start."""

    circuits_open: int = 0
    circuits_total: int = 0
    #: Circuits ended by the byte or time limit.
    circuits_cut: int = 0
    #: Requests refused, by reason: no_reservation, circuit_limit, reservation_limit.
    refused: Counter[str] = field(default_factory=Counter)
    #: Circuits open now, by dialing peer.
    from_peer: Counter[ID] = field(default_factory=Counter)


def is_circuit(addr: str) -> bool:
    return _CIRCUIT in addr


def circuit_addr(relay_addr: str, relay: PeerId, peer: PeerId) -> str:
    """``…/p2p/<relay>/p2p-circuit/p2p/<peer>`` from a relay's transport address."""
    base = relay_addr.split("/p2p/", 1)[0]
    return f"{base}/p2p/{relay}{_CIRCUIT}/p2p/{peer}"


class _NoDialHost:
    """The relay's host as the hop protocol sees it: ``new_stream`` only over
    an open connection, never a dial (no SSRF through the relay)."""

    def __init__(self, host: IHost) -> None:
        self._host = host

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    async def new_stream(self, peer_id: ID, protocols: list[TProtocol]) -> INetStream:
        conns = self._host.get_network().get_connections(peer_id)
        if not any(not conn.is_closed for conn in conns):
            raise ConnectionError("the target is not connected to the relay")
        return await self._host.new_stream(peer_id, protocols)


def relay_protocol(host: IHost, limits: RelayLimits | None, stats: RelayStats) -> CircuitV2Protocol:
    """The circuit relay service of ``host``: stop always, hop with ``limits`` if given."""
    upstream_limits = Libp2pRelayLimits(
        duration=(limits or RelayLimits()).circuit_seconds,
        data=(limits or RelayLimits()).circuit_bytes,
        max_circuit_conns=(limits or RelayLimits()).max_circuits_per_peer,
        max_reservations=(limits or RelayLimits()).max_reservations,
        reservation_ttl=(limits or RelayLimits()).reservation_seconds,
    )
    proto = CircuitV2Protocol(
        _NoDialHost(host),  # type: ignore[arg-type]
        limits=upstream_limits,
        allow_hop=limits is not None,
    )
    if limits is not None:
        _guard_hop(proto, host, limits, stats)
    return proto


def _guard_hop(
    proto: CircuitV2Protocol, host: IHost, limits: RelayLimits, stats: RelayStats
) -> None:
    handle_reserve = proto._handle_reserve
    handle_connect = proto._handle_connect
    manager = proto.resource_manager

    async def refuse(stream: INetStream, code: StatusCode, reason: str) -> None:
        stats.refused[reason] += 1
        with trio.move_on_after(RELAY_REQUEST_TIMEOUT_SECONDS):
            await quietly(
                lambda: write_delimited_msg(
                    stream, HopMessage(type=HopMessage.STATUS, status=to_proto_status(code))
                ),
                "refusing a relay request",
            )
        await quietly(stream.close, "closing a refused relay stream")

    async def reserve_for_stream_peer(stream: INetStream, msg: HopMessage) -> None:
        msg.ClearField("peer")  # upstream would reserve for the peer the request names
        if not manager.can_accept_reservation(stream.muxed_conn.peer_id):
            await refuse(stream, StatusCode.RESOURCE_LIMIT_EXCEEDED, "reservation_limit")
            return
        await handle_reserve(stream, msg)

    async def connect_if_reserved_and_connected(stream: INetStream, msg: HopMessage) -> None:
        source = stream.muxed_conn.peer_id
        try:
            target = ID(msg.peer.id)
        except Exception:  # not a peer id at all
            await refuse(stream, StatusCode.MALFORMED_MESSAGE, "malformed")
            return
        connected = any(not c.is_closed for c in host.get_network().get_connections(target))
        if not manager.has_reservation(target) or not connected:
            await refuse(stream, StatusCode.NO_RESERVATION, "no_reservation")
            return
        if (
            stats.from_peer[source] >= limits.max_circuits_from_peer
            or stats.circuits_open >= limits.max_circuits
        ):
            await refuse(stream, StatusCode.RESOURCE_LIMIT_EXCEEDED, "circuit_limit")
            return
        stats.from_peer[source] += 1
        stats.circuits_open += 1
        stats.circuits_total += 1
        try:
            await handle_connect(stream, msg)
        finally:
            stats.circuits_open -= 1
            stats.from_peer[source] -= 1
            if stats.from_peer[source] <= 0:
                del stats.from_peer[source]

    async def relay_data(
        src: INetStream,
        dst: INetStream,
        peer_id: ID,
        deadline: float | None = None,
        budget: list[int] | None = None,
    ) -> None:
        """Copy ``src`` to ``dst`` within the circuit's byte budget and deadline;
        past either, reset both streams (nothing is written into the circuit)."""
        cut = False
        timeout = (deadline - time.monotonic()) if deadline is not None else float("inf")
        try:
            with trio.move_on_after(max(0.0, timeout)) as scope:
                while True:
                    data = await src.read(RELAY_COPY_CHUNK_BYTES)
                    if not data:
                        break
                    if budget is not None:
                        if len(data) > budget[0]:
                            cut = True
                            break
                        budget[0] -= len(data)
                    await dst.write(data)
            cut = cut or scope.cancelled_caught
        except (*NETWORK_ERRORS, Exception) as exc:  # either side went away
            logger.debug("circuit for %s ended: %s", peer_id, exc)
        if cut:
            stats.circuits_cut += 1
            logger.info("circuit for %s cut at its limit", peer_id)
        for stream in (src, dst):
            if cut:
                await quietly(stream.reset, "resetting a circuit")
            else:
                await quietly(stream.close, "closing a circuit")

    proto._handle_reserve = reserve_for_stream_peer  # type: ignore[method-assign]
    proto._handle_connect = connect_if_reserved_and_connected  # type: ignore[method-assign]
    proto._relay_data = relay_data  # type: ignore[method-assign,assignment]


def reserved_peers(proto: CircuitV2Protocol) -> set[ID]:
    """Peers holding a live reservation on this relay."""
    manager = proto.resource_manager
    manager._clean_expired()
    return set(manager._reservations)


def reservations_held(proto: CircuitV2Protocol) -> int:
    """Reservations a relay holds now (expired ones dropped first)."""
    manager = proto.resource_manager
    manager._clean_expired()
    return len(manager._reservations)


async def _hop_request(
    host: IHost, relay: PeerId, relay_addrs: list[str], message: HopMessage, connect: Any
) -> tuple[INetStream, HopMessage]:
    """Send ``message`` on a new hop stream to ``relay``; returns the stream and the answer."""
    stream = None
    try:
        with trio.fail_after(RELAY_REQUEST_TIMEOUT_SECONDS):
            await connect(relay, relay_addrs)
            stream = await host.new_stream(to_id(relay), [HOP_PROTOCOL_ID])
            await write_delimited_msg(stream, message)
            answer = await read_delimited_msg(stream, HopMessage)
    except (*NETWORK_ERRORS, trio.TooSlowError, ValueError) as exc:
        if stream is not None:
            await quietly(stream.reset, "resetting a hop stream")
        if isinstance(exc, PeerUnreachable):
            raise
        raise PeerUnreachable(f"relay {relay.short()} did not answer: {exc}") from None
    status = int(answer.status)
    if answer.type != HopMessage.STATUS or status != StatusCode.OK:
        await quietly(stream.reset, "resetting a refused hop stream")
        known = {int(code): code.name for code in StatusCode}
        name = known.get(status, str(status))
        raise PeerUnreachable(
            f"relay {relay.short()} refused: {name.lower()}", f"relay refused ({name.lower()})"
        )
    return stream, answer


@dataclass(frozen=True, slots=True)
class Reservation:
    relay: PeerId
    #: When it lapses (wall clock, seconds since the epoch).
    expires: float
    #: Our relayed addresses through this relay.
    addrs: tuple[str, ...]


async def reserve(
    host: IHost, me: PeerId, relay: PeerId, relay_addrs: list[str], connect: Any
) -> Reservation:
    """Ask ``relay`` for a reservation; raises PeerUnreachable if it refuses or fails."""
    stream, answer = await _hop_request(
        host, relay, relay_addrs, HopMessage(type=HopMessage.RESERVE), connect
    )
    await quietly(stream.close, "closing a hop stream")
    offered: list[str] = []
    for raw in answer.reservation.addrs[: 4 * MAX_CIRCUIT_ADDRS_PER_RELAY]:
        try:
            offered.append(str(multiaddr.Multiaddr(raw)))
        except Exception:  # a relay's odd address is skipped, not fatal
            continue
    offered += relay_addrs
    public = [a for a in offered if "/ip4/127." not in a and "/ip6/::1/" not in a]
    circuits = dict.fromkeys(circuit_addr(a, relay, me) for a in public or offered)
    chosen = tuple(circuits)[:MAX_CIRCUIT_ADDRS_PER_RELAY]
    expires = float(answer.reservation.expire) if answer.reservation.expire else 0.0
    return Reservation(relay, expires, chosen)


def split_circuit(addr: str, target: PeerId) -> tuple[PeerId, str]:
    """The relay and its transport address from a circuit address to ``target``;
    raises SchemaError if ``addr`` is not one."""
    relay_part, sep, rest = addr.partition(_CIRCUIT)
    if not sep or rest not in ("", f"/p2p/{target}"):
        raise SchemaError(f"not a circuit address of {target.short()}: {addr[:120]}")
    if "/p2p/" not in relay_part:
        raise SchemaError(f"circuit address without a relay PeerID: {addr[:120]}")
    relay = PeerId.parse(relay_part.rsplit("/p2p/", 1)[1])
    transport_addr(relay_part, relay)  # checks the address
    return relay, relay_part


async def dial_circuit(host: IHost, target: PeerId, addr: str, connect: Any) -> None:
    """A connection to ``target`` through the relay of the circuit address ``addr``.

    Raises PeerUnreachable (the relay refused, or the handshake through it
    failed), SchemaError if ``addr`` is not a circuit address of ``target``.
    """
    relay, relay_addr = split_circuit(addr, target)
    if relay == target:
        raise SchemaError("a circuit through the target itself")
    message = HopMessage(type=HopMessage.CONNECT, peer=PbPeerId(id=to_id(target).to_bytes()))
    stream, _ = await _hop_request(host, relay, [relay_addr], message, connect)
    circuit = multiaddr.Multiaddr(
        addr if addr.endswith(f"/p2p/{target}") else f"{addr}/p2p/{target}"
    )
    raw = RawConnection(
        stream=stream,
        initiator=True,
        connection_type=ConnectionType.RELAYED,
        addresses=[circuit],
    )
    try:
        with trio.fail_after(RELAY_REQUEST_TIMEOUT_SECONDS):
            conn = await host.upgrade_outbound_connection(raw, to_id(target))
    except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
        await quietly(stream.reset, "resetting a failed circuit")
        raise PeerUnreachable(
            f"no handshake with {target.short()} through a relay: {exc}"
        ) from None
    set_info = getattr(conn, "set_transport_info", None)
    if set_info is not None:
        set_info([circuit], ConnectionType.RELAYED)
