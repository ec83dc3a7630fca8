"""What every connection and stream costs a host, whatever the network's size:
Yamux gives window credit back as go-yamux does (pitfall 32 of
``p2pdm.net._patches``) and a host's advertised addresses are built once per
change (pitfall 31). Over TCP on 127.0.0.1, as a node runs, but for the
addresses' count of parses."""

from __future__ import annotations

from typing import Any

import multiaddr
import pytest
import trio
import trio.testing
from libp2p.peer.id import ID
from libp2p.stream_muxer.yamux import yamux as yamux_module

from p2pdm.errors import PeerUnreachable
from p2pdm.net import Host
from p2pdm.net.memory_transport import LinkFaults, MemoryNetwork
from p2pdm.net.testing import ECHO_PROTOCOL as ECHO
from p2pdm.net.testing import echo, open_hosts, wait_until
from tests.net.conftest import CAP

pytestmark = pytest.mark.net

#: Bounds that only stop a hung test: nothing here is timed.
HUNG_SECONDS = 30.0
#: A transfer several times libp2p's initial Yamux window (256 KiB) each way.
BULK_FRAMES = 24
BULK_FRAME_BYTES = 60_000


@pytest.fixture
def window_updates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The increment of every WINDOW_UPDATE a Yamux stream sends."""
    sent: list[int] = []
    send = yamux_module.YamuxStream.send_window_update

    async def counted(self: Any, increment: int, skip_lock: bool = False) -> None:
        if increment > 0:
            sent.append(increment)
        await send(self, increment, skip_lock)

    monkeypatch.setattr(yamux_module.YamuxStream, "send_window_update", counted)
    return sent


async def echoed(a: Host, b: Host, payloads: list[bytes]) -> list[bytes | None]:
    stream = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
    back: list[bytes | None] = []
    for payload in payloads:
        await stream.write_frame(payload, HUNG_SECONDS)
        back.append(await stream.read_frame(CAP, HUNG_SECONDS))
    await stream.close()
    return back


async def test_small_requests_send_no_window_updates(window_updates: list[int]) -> None:
    async with open_hosts(2, join=False) as (a, b):
        b.set_handler(ECHO, echo)
        await a.connect(b.peer_id, b.listen_addrs())
        await wait_until(lambda: ECHO in a.peer_protocols(b.peer_id))  # identify done
        before = len(window_updates)
        payloads = [b"request %d" % i for i in range(20)]
        with trio.fail_after(HUNG_SECONDS):
            assert await echoed(a, b, payloads) == payloads
        # libp2p's own Yamux sent one after nearly every read: ~80 here.
        assert len(window_updates) == before


async def test_bulk_transfer_flows_on_half_window_credits(window_updates: list[int]) -> None:
    async with open_hosts(2, join=False) as (a, b):
        b.set_handler(ECHO, echo)
        payloads = [bytes([i]) * BULK_FRAME_BYTES for i in range(BULK_FRAMES)]
        stream = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
        with trio.fail_after(HUNG_SECONDS):
            # Everything written before anything is read back: the window fills.
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.write_frames, payloads, HUNG_SECONDS)
                for payload in payloads:
                    assert await stream.read_frame(CAP, HUNG_SECONDS) == payload
        await stream.close()
        total = BULK_FRAMES * BULK_FRAME_BYTES
        assert window_updates  # credit came back, in few large updates
        assert len(window_updates) <= 2 * total // (128 * 1024) + 4
        assert min(window_updates) >= 128 * 1024


async def test_advertised_addresses_are_built_once_per_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Over the memory network, whose listener parses its address once (libp2p's
    # TCP listener parses it at each call).
    async with open_hosts(1, join=False, network=MemoryNetwork()) as (a,):
        lp_host: Any = a._host
        first = lp_host.get_addrs()
        parsed = _count_parsed(monkeypatch)
        for _ in range(5):
            again = lp_host.get_addrs()
            assert again == first and again is not first
        assert parsed == []
        # A new listen address: the list is built again, with it.
        extra = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/9")
        listener = next(iter(lp_host.get_network().listeners.values()))
        own = listener.get_addrs
        monkeypatch.setattr(listener, "get_addrs", lambda: (*own(), extra))
        changed = lp_host.get_addrs()
        assert len(changed) == len(first) + 1
        assert str(changed[-1]) == f"/ip4/127.0.0.1/tcp/9/p2p/{a.peer_id}"
        assert lp_host.get_addrs() == changed


#: One-way latency of the memory network's links in the round-trip test.
LINK_LATENCY = 0.1


async def test_a_stream_is_negotiated_in_one_round_trip(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The dialer proposes its protocol with multistream's header (pitfall 33):
    a stream on an open connection answers after one round trip, not two."""
    network = MemoryNetwork(faults=LinkFaults(latency=LINK_LATENCY))
    async with open_hosts(2, join=False, network=network) as (a, b):
        b.set_handler(ECHO, echo)
        await a.connect(b.peer_id, b.listen_addrs())
        await trio.sleep(5)  # identify and the first RTT ping are over
        start = trio.current_time()
        stream = await a.open_stream(b.peer_id, ECHO)
        opened = trio.current_time() - start
        await stream.write_frame(b"ping", HUNG_SECONDS)
        assert await stream.read_frame(CAP, HUNG_SECONDS) == b"ping"
        await stream.close()
        assert 2 * LINK_LATENCY <= opened < 3 * LINK_LATENCY  # libp2p's own: four latencies
        # A protocol the other end lacks is refused as before.
        with pytest.raises(PeerUnreachable):
            await a.open_stream(b.peer_id, "/p2pdm/nothing/1.0.0")
        assert a.is_connected(b.peer_id)


async def test_seeded_addresses_are_parsed_once_for_every_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A simulation seeds every routing table from the plan's addresses
    (``Host.seed_routing_table``): each address is parsed once, whichever
    hosts it goes to, and each host's table and peerstore get it."""
    async with open_hosts(6, join=False, network=MemoryNetwork()) as hosts:
        plan = [(h.peer_id, h.listen_addrs()) for h in hosts]
        parsed = _count_parsed(monkeypatch)
        for host in hosts[:3]:
            assert await host.seed_routing_table(plan) == len(plan) - 1
        after_first = len(parsed)
        for host in hosts[3:]:
            assert await host.seed_routing_table(plan) == len(plan) - 1
        assert len(parsed) == after_first  # the same addresses: none parsed again
        for host in hosts:
            assert set(host.dht_peers()) == {h.peer_id for h in hosts} - {host.peer_id}


def _count_parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, every multiaddr parsed, in order."""
    parsed: list[str] = []
    parse = multiaddr.Multiaddr.__init__

    def counted(self: Any, addr: Any, *args: Any, **kwargs: Any) -> None:
        parsed.append(str(addr))
        parse(self, addr, *args, **kwargs)

    monkeypatch.setattr(multiaddr.Multiaddr, "__init__", counted)
    return parsed


async def test_a_full_peerstore_keeps_the_host_s_own_entry_and_its_connections() -> None:
    """libp2p's peerstore holds at most 1,000 peers and evicted those without
    addresses first: the host's own entry (its keys, no address) went at the
    1,001st peer heard of, and the next identify asked for the host's public
    key, raised, and took the whole host down (pitfall 34). A node of a large
    network hears of that many peers."""
    async with open_hosts(3, join=False) as (a, b, c):
        await a.connect(b.peer_id, b.listen_addrs())
        peerstore: Any = a._swarm.peerstore
        addr = multiaddr.Multiaddr("/ip4/192.0.2.1/tcp/4001")
        ed25519_id_prefix = b"\x00\x24\x08\x01\x12\x20"  # identity multihash of a key
        for i in range(peerstore.max_peers + 50):
            peerstore.add_addrs(ID(ed25519_id_prefix + i.to_bytes(32, "big")), [addr], 600)
        assert len(peerstore.peer_data_map) <= peerstore.max_peers
        assert peerstore.pubkey(a._host.get_id()) is not None
        assert peerstore.has_peer(ID(b.peer_id.raw))  # connected: kept
        # A new connection's identify still answers with the host's key.
        await c.connect(a.peer_id, a.listen_addrs())
        await wait_until(lambda: a.is_connected(c.peer_id) and bool(c.peer_protocols(a.peer_id)))
