"""Reachability: AutoNAT v1 (``/libp2p/autonat/1.0.0``), served and asked, with p2pdm's checks.

How this works: a node that wants to know whether others can dial it asks a
few connected peers (:func:`check_reachability`) to dial it back; each
answers OK (it reached us), E_DIAL_ERROR (it tried and failed) or something
that is no evidence (refused, bad request). :func:`p2pdm.core.reachability.decide`
turns the answers into public / private / unknown, never trusting one peer.

Serving (:func:`serve_autonat`) replaces py-libp2p 0.8.1's
``AutoNATService``, which (1) dials back whatever PeerID the request names,
not the peer that sent it, and (2) "dials" with ``host.connect``, which
returns at once when a connection to that peer is already open — as it
always is, since the request came over one — so it tells every asker it is
public. Here a request naming another peer is refused (E_BAD_REQUEST), a
request over a relayed connection is refused (its IP cannot be observed),
only addresses on the asker's observed IP are dialed (never a third party:
no amplification), and each dial-back is a *new* TCP connection whose Noise
handshake must prove the asker's key. A node behind a NAT advertises its
private interface address; the observed IP with its listening ports is
dialed too, which is where a port-forward or a public address would answer.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from contextlib import suppress

import multiaddr
import trio
from libp2p.abc import INetStream
from libp2p.custom_types import TProtocol
from libp2p.host.autonat.autonat import _addr_ip, _is_relayed_stream, _normalize_ip
from libp2p.host.autonat.pb.autonat_pb2 import Message
from libp2p.kad_dht.kad_dht import DHTMode
from libp2p.peer.id import ID

from p2pdm.core.identity import PeerId
from p2pdm.core.reachability import REACHABILITY_CONFIRMATIONS, Reachability, decide
from p2pdm.errors import P2PDMError
from p2pdm.net._edge import NETWORK_ERRORS, from_id, quietly
from p2pdm.net._host import Host, _Libp2pRawStream
from p2pdm.net.limits import (
    AUTONAT_MAX_CONCURRENT_DIALBACKS,
    AUTONAT_MAX_DIAL_ADDRS,
    AUTONAT_MAX_MESSAGE_BYTES,
    AUTONAT_PEERS_ASKED,
    AUTONAT_QUERY_TIMEOUT_SECONDS,
    DIAL_BACK_CLOSE_SECONDS,
    DIAL_TIMEOUT_SECONDS,
    REACHABILITY_FEW_PEERS_RETRY_SECONDS,
    REACHABILITY_RECHECK_SECONDS,
    REACHABILITY_RETRY_SECONDS,
)
from p2pdm.net.stream import Stream

__all__ = ["AUTONAT_PROTOCOL", "check_reachability", "dialback_candidates", "serve_autonat"]

logger = logging.getLogger(__name__)

AUTONAT_PROTOCOL = "/libp2p/autonat/1.0.0"

#: Proto errors a bad message raises (google.protobuf.message.DecodeError is one).
_DECODE_ERRORS = (ValueError, TypeError, Exception)


def _response(status: int, text: str = "", addr: bytes | None = None) -> bytes:
    message = Message()
    message.type = Message.DIAL_RESPONSE
    message.dialResponse.status = status  # type: ignore[assignment]
    if text:
        message.dialResponse.statusText = text
    if addr is not None:
        message.dialResponse.addr = addr
    return message.SerializeToString()


def dialback_candidates(advertised: list[bytes], observed_ip: str) -> list[multiaddr.Multiaddr]:
    """What to dial for a request: the advertised TCP addresses on ``observed_ip``,
    then ``observed_ip`` with each advertised TCP port; at most AUTONAT_MAX_DIAL_ADDRS."""
    found: dict[str, multiaddr.Multiaddr] = {}
    proto = "ip6" if ":" in observed_ip else "ip4"
    for raw in advertised[: 4 * AUTONAT_MAX_DIAL_ADDRS]:
        try:
            addr = multiaddr.Multiaddr(raw)
            port = addr.value_for_protocol("tcp")
        except Exception:  # not a TCP multiaddr: nothing to dial
            continue
        if "p2p-circuit" in str(addr):
            continue
        if _addr_ip(addr) == observed_ip:
            found.setdefault(str(addr), addr)
        guess = multiaddr.Multiaddr(f"/{proto}/{observed_ip}/tcp/{int(port)}")
        found.setdefault(str(guess), guess)
    return list(found.values())[:AUTONAT_MAX_DIAL_ADDRS]


async def _dial_back(host: Host, peer: ID, addr: multiaddr.Multiaddr) -> bool:
    """A fresh connection to ``addr`` whose Noise handshake proves ``peer``'s key."""
    swarm = host._swarm
    raw = secured = None
    try:
        with trio.fail_after(DIAL_TIMEOUT_SECONDS):
            transport = swarm.transport_manager.transport_for_dialing(addr)
            if transport is None:
                return False
            raw = await transport.dial(addr)
            secured = await swarm.upgrader.upgrade_security(raw, True, peer)
        return True
    except (*NETWORK_ERRORS, trio.TooSlowError) as exc:
        logger.debug("dial-back to %s failed: %s", addr, exc)
        return False
    finally:
        # Closed whatever ends it, a shutdown's cancellation included (else
        # the socket is left open), and within a bound even then.
        if raw is not None:
            with trio.CancelScope(shield=True) as closing:
                closing.deadline = trio.current_time() + DIAL_BACK_CLOSE_SECONDS
                await quietly((secured or raw).close, "closing a dial-back")


def serve_autonat(host: Host) -> None:
    """Answer other peers' dial-back requests (see the module's comment)."""
    limiter = trio.CapacityLimiter(AUTONAT_MAX_CONCURRENT_DIALBACKS)

    async def handle(stream: INetStream) -> None:
        remote = from_id(stream.muxed_conn.peer_id)
        if remote is None:
            await _Libp2pRawStream(stream).reset()
            return
        framed = Stream(_Libp2pRawStream(stream), remote, AUTONAT_PROTOCOL)
        request = await framed.read_frame(AUTONAT_MAX_MESSAGE_BYTES, AUTONAT_QUERY_TIMEOUT_SECONDS)
        if request is None:
            return
        answer = await _answer(host, stream, request)
        await framed.write_frame(answer, AUTONAT_QUERY_TIMEOUT_SECONDS)
        await framed.close_write()

    host._host.set_stream_handler(
        TProtocol(AUTONAT_PROTOCOL), host._guarded(AUTONAT_PROTOCOL, handle, limiter)
    )


async def _answer(host: Host, stream: INetStream, request: bytes) -> bytes:
    message = Message()
    try:
        message.ParseFromString(request)
    except _DECODE_ERRORS:
        return _response(Message.E_BAD_REQUEST, "not an AutoNAT message")
    if message.type != Message.DIAL:
        return _response(Message.E_BAD_REQUEST, "not a dial request")
    asker = stream.muxed_conn.peer_id
    if message.dial.peer.id != asker.to_bytes():
        # libp2p 0.8.1 would dial whichever peer the request names.
        return _response(Message.E_BAD_REQUEST, "a peer may only ask to be dialed itself")
    if _is_relayed_stream(stream):
        return _response(Message.E_DIAL_REFUSED, "no dial-backs over relayed connections")
    remote = stream.get_remote_address()
    if not remote:
        return _response(Message.E_DIAL_REFUSED, "cannot see the asker's address")
    candidates = dialback_candidates(list(message.dial.peer.addrs), _normalize_ip(remote[0]))
    if not candidates:
        return _response(Message.E_DIAL_REFUSED, "no TCP address to dial")
    reached: list[multiaddr.Multiaddr] = []

    async def attempt(addr: multiaddr.Multiaddr) -> None:
        if await _dial_back(host, asker, addr):
            reached.append(addr)

    async with trio.open_nursery() as nursery:
        for addr in candidates:
            nursery.start_soon(attempt, addr)
    if reached:
        return _response(Message.OK, addr=reached[0].to_bytes())
    return _response(Message.E_DIAL_ERROR, "dial-back failed")


async def _ask(host: Host, peer: PeerId, addrs: list[bytes]) -> bool | None:
    """One peer's verdict: True (reached us), False (could not), None (no evidence)."""
    request = Message()
    request.type = Message.DIAL
    request.dial.peer.id = host._host.get_id().to_bytes()
    request.dial.peer.addrs.extend(addrs)
    try:
        with trio.fail_after(AUTONAT_QUERY_TIMEOUT_SECONDS):
            async with await host.open_stream(peer, AUTONAT_PROTOCOL) as stream:
                await stream.write_frame(request.SerializeToString(), AUTONAT_QUERY_TIMEOUT_SECONDS)
                await stream.close_write()
                data = await stream.read_frame(
                    AUTONAT_MAX_MESSAGE_BYTES, AUTONAT_QUERY_TIMEOUT_SECONDS
                )
    except (P2PDMError, trio.TooSlowError) as exc:
        logger.debug("reachability: %s gave no answer: %s", peer.short(), exc)
        return None
    if data is None:
        return None
    response = Message()
    with suppress(*_DECODE_ERRORS):
        response.ParseFromString(data)
        if response.type == Message.DIAL_RESPONSE:
            if response.dialResponse.status == Message.OK:
                return True
            if response.dialResponse.status == Message.E_DIAL_ERROR:
                return False
    return None


async def check_reachability(
    host: Host, choose: Callable[[list[PeerId], int], list[PeerId]] | None = None
) -> Reachability:
    """Ask up to AUTONAT_PEERS_ASKED connected peers that serve AutoNAT to dial us back
    (none while fewer than REACHABILITY_CONFIRMATIONS are connected).

    Peers on relayed connections are not asked (they would refuse). ``choose``
    picks the peers to ask (default: at random).
    """
    servers = [
        peer
        for peer in host.connected_peers()
        if AUTONAT_PROTOCOL in host.peer_protocols(peer) and host.has_direct_connection(peer)
    ]
    if len(servers) < REACHABILITY_CONFIRMATIONS:
        # No verdict can come of fewer (decide trusts no lone peer): asking
        # the one peer there is every REACHABILITY_FEW_PEERS_RETRY_SECONDS
        # only cost it a dial-back each time (a simulation's nodes, connected
        # to their bootstrap node alone, had it dialling back all the time).
        return decide([])
    pick = choose or (lambda peers, k: random.sample(peers, min(k, len(peers))))
    asked = pick(servers, AUTONAT_PEERS_ASKED)
    addrs = [addr.to_bytes() for addr in host._host.get_addrs()][:AUTONAT_MAX_DIAL_ADDRS]
    answers: list[bool | None] = []

    async def ask(peer: PeerId) -> None:
        answers.append(await _ask(host, peer, addrs))

    async with trio.open_nursery() as nursery:
        for peer in asked:
            nursery.start_soon(ask, peer)
    return decide(answers)


async def recheck(host: Host) -> Reachability:
    """Check now, keep the verdict on the host and, in "auto" DHT mode, serve
    the DHT only while public. An unknown verdict keeps the previous one's mode."""
    verdict = await check_reachability(host)
    before = host.reachability.status
    host.reachability = verdict
    if verdict.status != before:
        for listener in host.reachability_listeners:
            listener()
        logger.info(
            "reachability: %s (%d peers reached us, %d could not, %d gave no answer)",
            verdict.status,
            verdict.reached,
            verdict.failed,
            verdict.silent,
        )
    if host.dht_mode_setting == "auto" and verdict.status != "unknown":
        wanted = DHTMode.SERVER if verdict.status == "public" else DHTMode.CLIENT
        if host._dht.mode != wanted:
            with suppress(*NETWORK_ERRORS):
                await host._dht.switch_mode(wanted)
            logger.info("DHT mode: %s", host.dht_mode())
    return verdict


async def watch_reachability(host: Host, first_check: float) -> None:
    """Check from ``first_check`` seconds after the DHT join on: often while
    unknown, rarely once known.

    After the join, not the start: before it a host knows only its bootstrap
    peers, so it would ask them every REACHABILITY_FEW_PEERS_RETRY_SECONDS
    (a simulation holding hundreds of joins had every node asking its
    bootstrap node for dial-backs every 5 s).
    """
    await host.joined.wait()
    await trio.sleep(first_check)
    while True:
        verdict = await recheck(host)
        if verdict.status != "unknown":
            pause = REACHABILITY_RECHECK_SECONDS
        elif verdict.reached + verdict.failed + verdict.silent < REACHABILITY_CONFIRMATIONS:
            pause = REACHABILITY_FEW_PEERS_RETRY_SECONDS
        else:
            pause = REACHABILITY_RETRY_SECONDS
        await trio.sleep(pause)
