"""Real libp2p hosts on 127.0.0.1: security, streams, failure handling, shutdown."""

from __future__ import annotations

import gc
import math
import socket
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import multiaddr
import pytest
import trio

# Tests may build raw libp2p hosts (an attacker, a permissive control host);
# p2pdm itself imports libp2p only in the libp2p modules of p2pdm.net.
from libp2p import new_host
from libp2p.abc import IHost, INetConn, INetStream
from libp2p.crypto.ed25519 import Ed25519PrivateKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair, PublicKey
from libp2p.custom_types import TProtocol
from libp2p.network import swarm as libp2p_swarm
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from p2pdm.core.identity import Identity, PeerId
from p2pdm.errors import ConfigError, PeerUnreachable
from p2pdm.net import Host, Stream, Upkeep, _maintenance, _patches, open_host
from p2pdm.net.testing import ECHO_PROTOCOL as ECHO
from p2pdm.net.testing import echo, host_seed, open_hosts, wait_until
from tests.net.conftest import CAP

pytestmark = pytest.mark.net

#: Bounds that only stop a hung test: nothing here is timed.
HUNG_SECONDS = 30.0
#: Longest wait for peers to see a closed host's connections go; far below
#: the idle timeout, so only the close itself can end them in time.
PEERS_NOTICE_SECONDS = 10.0


def tcp_port(host: Host) -> int:
    return int(multiaddr.Multiaddr(host.listen_addrs()[0]).value_for_protocol("tcp"))


# --- streams ------------------------------------------------------------------


async def test_connect_and_framed_round_trip() -> None:
    seen: list[PeerId] = []

    async def who_am_i(stream: Stream) -> None:
        seen.append(stream.remote_peer)
        await echo(stream)

    async with open_hosts(2, join=False) as (a, b):
        b.set_handler(ECHO, who_am_i)
        stream = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
        assert stream.remote_peer == b.peer_id
        for payload in (b"hello", b"", b"x" * 60_000):
            await stream.write_frame(payload, 5)
            assert await stream.read_frame(CAP, 5) == payload
        await stream.close_write()
        assert await stream.read_frame(CAP, 5) is None
        await stream.close()
        assert seen == [a.peer_id]  # the handler sees the Noise-authenticated dialer
        assert a.is_connected(b.peer_id) and b.is_connected(a.peer_id)
        assert a.connected_peers() == [b.peer_id]
        assert all(addr.endswith(f"/p2p/{b.peer_id}") for addr in b.listen_addrs())


async def test_connect_has_no_fixed_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    # libp2p's default config waits its happy-eyeballs delay (250 ms) on every
    # dial. Made endless here, a connect that waited for it would fail.
    monkeypatch.setattr(libp2p_swarm, "_HAPPY_EYEBALLS_DELAY", math.inf)
    async with open_hosts(2, join=False) as (a, b):
        for _ in range(3):
            with trio.fail_after(HUNG_SECONDS):
                await a.connect(b.peer_id, b.listen_addrs())
            assert a.is_connected(b.peer_id)
            await a.disconnect(b.peer_id)


async def test_ping_and_identify() -> None:
    async with open_hosts(2, join=False) as (a, b):
        b.set_handler(ECHO, echo)
        await a.connect(b.peer_id, b.listen_addrs())
        start = trio.current_time()
        rtt = await a.ping(b.peer_id)
        # In seconds, within the call (libp2p reports whole milliseconds).
        assert 0 < rtt <= trio.current_time() - start + 0.001
        await wait_until(lambda: ECHO in a.peer_protocols(b.peer_id))
        assert "/ipfs/kad/1.0.0" in a.peer_protocols(b.peer_id)


async def test_protocols_set_after_connecting_are_announced() -> None:
    async with open_hosts(2, join=False) as (a, b):
        await a.connect(b.peer_id, b.listen_addrs())
        await wait_until(lambda: "/ipfs/kad/1.0.0" in a.peer_protocols(b.peer_id))
        b.set_handler(ECHO, echo)
        assert ECHO not in a.peer_protocols(b.peer_id)  # identify ran once, at connect
        await b.announce_protocols()
        await wait_until(lambda: ECHO in a.peer_protocols(b.peer_id))


async def test_unknown_protocol_is_unreachable() -> None:
    async with open_hosts(2, join=False) as (a, b):
        with pytest.raises(PeerUnreachable, match="refused"):
            await a.open_stream(b.peer_id, "/p2pdm/nothing/1.0.0", b.listen_addrs())
        assert a.is_connected(b.peer_id)  # the connection itself is fine


async def test_raising_handler_does_not_take_the_host_down() -> None:
    calls = 0

    async def flaky(stream: Stream) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            await stream.read_frame(CAP, 5)
            raise RuntimeError("bug in a handler")
        await echo(stream)

    async with open_hosts(2, join=False) as (a, b):
        b.set_handler(ECHO, flaky)
        first = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
        await first.write_frame(b"trigger", 5)
        with pytest.raises(PeerUnreachable):  # the failed handler's stream was reset
            while await first.read_frame(CAP, 5) is not None:
                pass
        second = await a.open_stream(b.peer_id, ECHO)
        await second.write_frame(b"still serving", 5)
        assert await second.read_frame(CAP, 5) == b"still serving"
        assert calls == 2


async def test_dead_peer_fails_fast_and_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_hosts(1, join=False, first_index=50) as (gone,):
        gone_id, gone_addrs = gone.peer_id, gone.listen_addrs()
    async with open_hosts(1, join=False) as (a,):
        # libp2p's default retry policy dials a dead address 4 times, ~0.7 s
        # of backoff in all: count the dials instead of timing them.
        dials: list[object] = []
        dial_once = a._swarm._dial_addr_single_attempt

        async def counted(addr: multiaddr.Multiaddr, *args: Any, **kwargs: Any) -> Any:
            dials.append(addr)
            return await dial_once(addr, *args, **kwargs)

        monkeypatch.setattr(a._swarm, "_dial_addr_single_attempt", counted)
        for tries in (1, 2):  # the second try is not blocked by libp2p's failure cache
            with pytest.raises(PeerUnreachable, match="cannot connect") as failed:
                await a.connect(gone_id, gone_addrs)
            assert failed.value.reason == "connection refused"  # what a person is told
            assert len(dials) == tries * len(gone_addrs), dials  # one dial per address
        with pytest.raises(PeerUnreachable, match="no known address"):
            await a.connect(PeerId.from_public_key(b"\x01" * 32))


async def test_address_of_another_peer_is_refused() -> None:
    async with open_hosts(2, join=False) as (a, b):
        wrong = Identity(b"\x09" * 32).peer_id
        with pytest.raises(PeerUnreachable):
            # b's address, but we expect another key: Noise proves who answered.
            await a.connect(wrong, [b.listen_addrs()[0].rsplit("/p2p/", 1)[0]])
        assert not a.is_connected(wrong)


# --- only Noise ------------------------------------------------------------------


@asynccontextmanager
async def raw_libp2p_host(key_pair: KeyPair, plaintext_only: bool = True) -> AsyncIterator[IHost]:
    """A bare py-libp2p host; ``plaintext_only``: it offers /plaintext/2.0.0 and nothing else."""
    sec_opt = {PLAINTEXT_PROTOCOL_ID: InsecureTransport(key_pair)} if plaintext_only else None
    host = new_host(
        key_pair=key_pair,
        sec_opt=sec_opt,
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        yield host
        await host.close()


async def dial(attacker: IHost, target_id: ID, addr: str) -> None:
    transport = multiaddr.Multiaddr(addr.rsplit("/p2p/", 1)[0])
    with trio.fail_after(5):
        await attacker.connect(PeerInfo(target_id, [transport]))


class _ForgedKey(Ed25519PrivateKey):
    """Our own private key, but it claims somebody else's public key."""

    claimed: PublicKey

    def get_public_key(self) -> PublicKey:
        return self.claimed


def forged_key_pair(victim_seed: bytes) -> KeyPair:
    victim_public = create_new_key_pair(victim_seed).public_key
    forged = _ForgedKey.new(b"\x66" * 32)
    assert isinstance(forged, _ForgedKey)
    forged.claimed = victim_public
    return KeyPair(forged, victim_public)


async def test_plaintext_only_peer_is_refused() -> None:
    async with (
        open_hosts(1, join=False) as (ours,),
        raw_libp2p_host(create_new_key_pair(b"\x55" * 32)) as plain,
    ):
        with pytest.raises(Exception, match=r"unable to connect|upgrade|negotiate"):
            await dial(plain, ID(ours.peer_id.raw), ours.listen_addrs()[0])
        assert ours.connected_peers() == []


async def test_forged_identity_over_plaintext_is_refused() -> None:
    victim_seed = host_seed(7)
    victim = Identity(victim_seed).peer_id
    seen: list[ID] = []

    async def record_peer(stream: INetStream) -> None:
        seen.append(stream.muxed_conn.peer_id)
        await stream.close()

    # Control: a host that accepts plaintext (libp2p's default) believes the forgery.
    async with (
        raw_libp2p_host(create_new_key_pair(b"\x44" * 32), plaintext_only=False) as permissive,
        raw_libp2p_host(forged_key_pair(victim_seed)) as mallory,
    ):
        permissive.set_stream_handler(TProtocol(ECHO), record_peer)
        addr = f"{permissive.get_addrs()[0]}"
        await dial(mallory, permissive.get_id(), addr)
        stream = await mallory.new_stream(permissive.get_id(), [TProtocol(ECHO)])
        await stream.close()
        await wait_until(lambda: bool(seen))
        assert seen == [ID(victim.raw)]  # the permissive host sees the victim's PeerID

    # Ours offers Noise only: the same forgery never gets a connection.
    handled: list[PeerId] = []

    async def should_not_run(stream: Stream) -> None:
        handled.append(stream.remote_peer)

    async with (
        open_hosts(1, join=False) as (ours,),
        raw_libp2p_host(forged_key_pair(victim_seed)) as mallory,
    ):
        ours.set_handler(ECHO, should_not_run)
        with pytest.raises(Exception, match=r"unable to connect|upgrade|negotiate"):
            await dial(mallory, ID(ours.peer_id.raw), ours.listen_addrs()[0])
        assert not ours.is_connected(victim)
        assert handled == []


# --- lifecycle --------------------------------------------------------------------


class Closing:
    """Wraps ``_patches.close_connection``: how many connections were closing at once."""

    def __init__(self) -> None:
        self.close_one = _patches.close_connection
        self.now = self.peak = 0

    async def __call__(self, conn: INetConn) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.close_one(conn)
        finally:
            self.now -= 1


async def test_shutdown_closes_listener_and_all_connections_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closing = Closing()
    async with open_hosts(4, join=False, first_index=10) as peers:
        for peer in peers:
            peer.set_handler(ECHO, echo)
        with trio.fail_after(HUNG_SECONDS):
            async with open_host(host_seed(0)) as a:
                a.set_handler(ECHO, echo)
                for peer in peers:
                    await peer.connect(a.peer_id, a.listen_addrs())
                busy = await peers[0].open_stream(a.peer_id, ECHO)  # a stream in use
                await busy.write_frame(b"x", 5)
                assert await busy.read_frame(CAP, 5) == b"x"
                port = tcp_port(a)
                # Quickly: not cut short by the shutdown's time limit. Made
                # endless here, a shutdown that needed it would hang.
                monkeypatch.setattr(_maintenance, "SHUTDOWN_TIMEOUT_SECONDS", math.inf)
                monkeypatch.setattr(_patches, "SHUTDOWN_TIMEOUT_SECONDS", math.inf)
                monkeypatch.setattr(_patches, "close_connection", closing)
        # And all connections closing at once (one by one costs ~0.2 s each).
        assert closing.peak == len(peers), closing.peak
        # Every peer sees its connection gone: by the close, not its idle timeout.
        assert Upkeep().idle_timeout > PEERS_NOTICE_SECONDS
        await wait_until(
            lambda: not any(p.is_connected(a.peer_id) for p in peers), PEERS_NOTICE_SECONDS
        )
        with pytest.raises((PeerUnreachable, trio.ClosedResourceError)):
            await busy.write_frame(b"y", 1)
            await busy.read_frame(CAP, 1)
        # The port is closed: nothing listens any more.
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))


async def test_idle_connections_are_closed() -> None:
    async with open_hosts(2, join=False, upkeep=Upkeep(interval=0.2, idle_timeout=0.6)) as (a, b):
        b.set_handler(ECHO, echo)
        stream = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
        await trio.sleep(1.2)  # two idle timeouts, but a stream is open
        assert a.is_connected(b.peer_id)
        await stream.write_frame(b"still here", 5)
        assert await stream.read_frame(CAP, 5) == b"still here"
        await stream.close_write()
        assert await stream.read_frame(CAP, 5) is None
        await stream.close()
        await wait_until(lambda: not a.is_connected(b.peer_id) and not b.is_connected(a.peer_id))


async def test_caller_exception_comes_out_unwrapped() -> None:
    with pytest.raises(KeyError, match="mine"):
        async with open_host(host_seed(30)):
            raise KeyError("mine")


async def test_bad_listen_addresses_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        async with open_host(host_seed(31), ["not a multiaddr"]):
            pass
    async with open_host(host_seed(32)) as first:
        taken = f"/ip4/127.0.0.1/tcp/{tcp_port(first)}"
        with pytest.raises(ConfigError, match="cannot listen"):
            async with open_host(host_seed(33), [taken]):
                pass


async def test_cancelled_host_still_shuts_down_cleanly() -> None:
    async with open_hosts(1, join=False, first_index=20) as (peer,):
        with trio.CancelScope() as scope:
            async with open_host(host_seed(21)) as a:
                await peer.connect(a.peer_id, a.listen_addrs())
                port = tcp_port(a)
                scope.cancel()  # once connected, however long that took
                await trio.sleep_forever()
        assert scope.cancelled_caught
        await wait_until(lambda: not peer.is_connected(a.peer_id), PEERS_NOTICE_SECONDS)
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))


async def test_inbound_slots_are_freed_when_connections_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # py-libp2p 0.8.1 keeps every inbound connection's slot until the host
    # stops; with 2 slots it would refuse the third connection ever made.
    monkeypatch.setattr(_patches, "MAX_INBOUND_CONNECTIONS", 2)
    async with (
        open_host(host_seed(40)) as server,
        open_hosts(3, join=False, first_index=41) as clients,
    ):
        addrs = server.listen_addrs()
        await clients[0].connect(server.peer_id, addrs)
        await clients[1].connect(server.peer_id, addrs)
        with pytest.raises(PeerUnreachable):  # both slots in use
            await clients[2].connect(server.peer_id, addrs)
        for leaving, joining in [(0, 2), (1, 0), (2, 1)]:
            await clients[leaving].disconnect(server.peer_id)
            await wait_until(lambda: len(server.connected_peers()) == 1)
            await clients[joining].connect(server.peer_id, addrs)
            assert server.is_connected(clients[joining].peer_id)


async def test_bootstrap_peer_is_redialed_and_nobody_else() -> None:
    fast = Upkeep(interval=0.1, bootstrap_retry_interval=1.0)
    async with open_hosts(3, upkeep=fast) as (b, a, c):  # a and c joined through b
        await a.connect(c.peer_id)  # a learned c's address from the DHT
        joined = a.connections()[b.peer_id]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.disconnect, b.peer_id)
            nursery.start_soon(a.disconnect, c.peer_id)
        # Our bounded stand-in for libp2p's auto-connector dials bootstrap peers
        # only: a new connection to b, whenever its round (every second) comes.
        await wait_until(
            lambda: bool(a.connections().get(b.peer_id, joined) - joined), PEERS_NOTICE_SECONDS
        )
        await trio.sleep(0.5)
        assert a.connected_peers() == [b.peer_id]


async def test_cancelling_a_host_closes_its_sockets() -> None:
    """A host left by cancellation (SIGINT on `p2pdm run`) closes every socket,
    also those of connections libp2p had begun to close."""
    async with open_host(host_seed(1)) as b:
        with trio.CancelScope() as scope:
            async with open_host(host_seed(2), bootstrap=b.listen_addrs()) as a:
                await wait_until(lambda: a.is_connected(b.peer_id))
                scope.cancel()
                await trio.sleep(1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
