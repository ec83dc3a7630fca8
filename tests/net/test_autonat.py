"""Reachability over real hosts on 127.0.0.1: AutoNAT dial-backs, asked and served."""

from __future__ import annotations

import functools
import socket

import multiaddr
import pytest
import trio
from libp2p.host.autonat.pb.autonat_pb2 import Message

from p2pdm.net import Host, Stream, _autonat
from p2pdm.net.testing import open_hosts, wait_until

pytestmark = pytest.mark.net

TIMEOUT = 15.0


def closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def ask(asker: Host, server: Host, peer_id: bytes, addrs: list[str]) -> Message:
    request = Message()
    request.type = Message.DIAL
    request.dial.peer.id = peer_id
    request.dial.peer.addrs.extend(multiaddr.Multiaddr(a).to_bytes() for a in addrs)
    stream: Stream
    async with await asker.open_stream(
        server.peer_id, _autonat.AUTONAT_PROTOCOL, server.listen_addrs()
    ) as stream:
        await stream.write_frame(request.SerializeToString(), TIMEOUT)
        await stream.close_write()
        data = await stream.read_frame(4096, TIMEOUT)
    assert data is not None
    response = Message()
    response.ParseFromString(data)
    return response


def raw_id(host: Host) -> bytes:
    return host.peer_id.raw


async def test_two_peers_that_dial_us_back_make_us_public() -> None:
    async with open_hosts(3) as (a, b, c):
        await wait_until(lambda: {b.peer_id, c.peer_id} <= set(a.connected_peers()), TIMEOUT)
        await wait_until(
            lambda: all(
                _autonat.AUTONAT_PROTOCOL in a.peer_protocols(p) for p in (b.peer_id, c.peer_id)
            ),
            TIMEOUT,
        )
        verdict = await _autonat.recheck(a)
        assert (verdict.status, verdict.reached) == ("public", 2)
        assert a.reachability == verdict


async def test_a_closed_port_is_a_failed_dial_back() -> None:
    async with open_hosts(2) as (a, b):
        closed = f"/ip4/127.0.0.1/tcp/{closed_port()}"
        response = await ask(b, a, raw_id(b), [closed])
        assert response.dialResponse.status == Message.E_DIAL_ERROR


async def test_a_dial_back_must_prove_the_askers_key() -> None:
    """Pointing the server at another node's address: the handshake shows
    another key, so the dial-back fails (and nothing is reported reached)."""
    async with open_hosts(3) as (a, b, c):
        c_addr = c.listen_addrs()[0].rsplit("/p2p/", 1)[0]
        response = await ask(b, a, raw_id(b), [c_addr])
        assert response.dialResponse.status == Message.E_DIAL_ERROR


async def test_a_request_naming_another_peer_is_refused_undialed() -> None:
    """py-libp2p 0.8.1 dials whatever peer a request names; p2pdm refuses."""
    async with (
        open_hosts(2, join=False) as (a, b),
        open_hosts(1, join=False, first_index=5) as (c,),
    ):
        c_addr = c.listen_addrs()[0].rsplit("/p2p/", 1)[0]
        response = await ask(b, a, raw_id(c), [c_addr])
        assert response.dialResponse.status == Message.E_BAD_REQUEST
        await trio.sleep(0.2)
        assert a.peer_id not in c.connected_peers()


async def test_one_peer_alone_decides_nothing() -> None:
    async with open_hosts(2) as (a, b):
        await wait_until(lambda: _autonat.AUTONAT_PROTOCOL in a.peer_protocols(b.peer_id), TIMEOUT)
        verdict = await _autonat.recheck(a)
        # Not even asked: no verdict could come of one answer, and each
        # ask costs the peer a dial-back.
        assert (verdict.status, verdict.reached, verdict.silent) == ("unknown", 0, 0)


async def test_auto_mode_serves_the_dht_only_once_public() -> None:
    async with open_hosts(3, dht_modes=("server", "server", "auto")) as (a, b, c):
        assert c.dht_mode() == "client"  # it has bootstrap peers: a client until known
        await wait_until(lambda: {a.peer_id, b.peer_id} <= set(c.connected_peers()), TIMEOUT)
        await wait_until(
            lambda: all(
                _autonat.AUTONAT_PROTOCOL in c.peer_protocols(p) for p in (a.peer_id, b.peer_id)
            ),
            TIMEOUT,
        )
        verdict = await _autonat.recheck(c)
        assert verdict.status == "public"
        assert c.dht_mode() == "server"


async def test_a_dial_back_cancelled_mid_handshake_closes_its_socket() -> None:
    """A shutdown that cancels a dial-back while its handshake waits must not
    leave the socket open (it did: only network errors closed it)."""
    held: list[trio.SocketStream] = []

    async def hold(stream: trio.SocketStream) -> None:
        held.append(stream)  # accepted, never a word back: the handshake waits
        await trio.sleep_forever()

    async with open_hosts(1) as (a,), trio.open_nursery() as nursery:
        [listener] = await nursery.start(
            functools.partial(trio.serve_tcp, hold, 0, host="127.0.0.1")
        )
        port = listener.socket.getsockname()[1]
        silent = multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")
        async with trio.open_nursery() as dialing:
            dialing.start_soon(_autonat._dial_back, a, a._host.get_id(), silent)
            await wait_until(lambda: bool(held), TIMEOUT)
            dialing.cancel_scope.cancel()  # as a shutdown would
        # The far end reads the handshake's opening, then the end: our socket
        # was closed (left open, this read would wait for ever).
        with trio.fail_after(TIMEOUT):
            while await held[0].receive_some(1024):
                pass
        nursery.cancel_scope.cancel()
