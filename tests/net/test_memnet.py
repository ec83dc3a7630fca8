"""Hosts joined by the in-memory transport, in virtual time (trio's MockClock).

The same p2pdm host code runs as over TCP; only the transport differs. Every
async test takes pytest-trio's ``autojump_clock`` (a fixture argument is
the only way pytest-trio hands a clock to trio.run): whenever all tasks wait,
time jumps to the next deadline, so latency and timeouts cost no wall time.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from libp2p.abc import IRawConnection
from libp2p.io.abc import ReadWriteCloser
from libp2p.io.exceptions import ConnectionClosedError
from libp2p.transport.exceptions import OpenConnectionError
from multiaddr import Multiaddr
from trio.testing import MockClock

import p2pdm.net
from p2pdm.core.identity import Identity
from p2pdm.errors import ConfigError, PeerUnreachable
from p2pdm.net import Host, open_host
from p2pdm.net._edge import from_id, to_id
from p2pdm.net._memory_pipe import PIPE_BUFFER_BYTES, WAKE_GRID_SECONDS
from p2pdm.net.memory_transport import MAX_CONCURRENT_DIALS, LinkFaults, MemoryNetwork
from p2pdm.net.testing import ECHO_PROTOCOL as ECHO
from p2pdm.net.testing import echo, host_seed, open_hosts
from tests.net.conftest import CAP, make_record, record_key, register

TIMEOUT = 30.0
LATENCY = 0.05


async def round_trip(payloads: list[bytes], host_a: Host, host_b: Host) -> float:
    """Echo each payload through a fresh stream from a to b; the virtual time it took."""
    stream = await host_a.open_stream(host_b.peer_id, ECHO, host_b.listen_addrs())
    start = trio.current_time()
    for payload in payloads:
        await stream.write_frame(payload, TIMEOUT)
        assert await stream.read_frame(CAP, TIMEOUT) == payload
    elapsed = trio.current_time() - start
    await stream.close()
    return elapsed


async def test_two_hosts_exchange_frames_with_latency_in_virtual_time(
    autojump_clock: MockClock,
) -> None:
    net = MemoryNetwork(LinkFaults(latency=LATENCY))
    async with open_hosts(2, join=False, network=net) as (a, b):
        assert a.listen_addrs()[0].startswith("/ip4/127.64.0.1/tcp/4701/p2p/")
        b.set_handler(ECHO, echo)
        start = trio.current_time()
        await a.connect(b.peer_id, b.listen_addrs())
        # TCP, multistream, Noise and Yamux handshakes: several round trips.
        assert trio.current_time() - start >= 4 * LATENCY
        assert a.is_connected(b.peer_id) and b.is_connected(a.peer_id)
        # On an open connection each echoed frame costs one round trip.
        payloads = [b"hello", b"", b"x" * 60_000]
        elapsed = await round_trip(payloads, a, b)
        # Each of the 2n hops' bytes wake their reader on the pipes' grid.
        hops = len(payloads) * 2
        assert hops * LATENCY <= elapsed <= hops * (LATENCY + WAKE_GRID_SECONDS)
    assert net.link_count() == 0  # leaving the hosts closed every connection


async def test_sim_links_authenticate_by_the_network_without_noise(
    autojump_clock: MockClock,
) -> None:
    net = MemoryNetwork(LinkFaults(latency=LATENCY), link_auth="sim")
    async with open_hosts(3, join=False, network=net) as (a, b, c):
        b.set_handler(ECHO, echo)
        start = trio.current_time()
        await a.connect(b.peer_id, b.listen_addrs())
        with_sim_links = trio.current_time() - start
        assert b.is_connected(a.peer_id)  # b sees a's PeerID: the network vouched for it
        elapsed = await round_trip([b"hello"], a, b)
        assert 2 * LATENCY <= elapsed <= 2 * (LATENCY + WAKE_GRID_SECONDS)
        # c's address does not hold b: the dial fails, as Noise's handshake would.
        wrong = b.listen_addrs()[0].replace(str(b.peer_id), str(c.peer_id))
        with pytest.raises(PeerUnreachable):
            await a.connect(c.peer_id, [wrong])
        assert not a.is_connected(c.peer_id)
    with pytest.raises(ValueError, match="link_auth"):
        MemoryNetwork(link_auth="none")
    noise = MemoryNetwork(LinkFaults(latency=LATENCY))
    async with open_hosts(2, join=False, network=noise) as (a, b):
        start = trio.current_time()
        await a.connect(b.peer_id, b.listen_addrs())
        assert trio.current_time() - start > with_sim_links  # Noise's round trips


@pytest.mark.slow
async def test_twenty_hosts_form_a_dht_that_routes_and_stores(autojump_clock: MockClock) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.02), seed=1)
    async with open_hosts(20, network=net) as hosts:
        register(hosts)
        first, last = hosts[1], hosts[-1]
        last.set_handler(ECHO, echo)
        await first.disconnect(last.peer_id)
        addrs = await first.find_peer(last.peer_id, TIMEOUT)
        assert last.listen_addrs()[0] in addrs
        assert 0.04 <= await round_trip([b"found you"], first, last) <= 0.04 + 2 * WAKE_GRID_SECONDS

        writer = hosts[5]
        key = record_key(writer.peer_id)
        record = make_record(Identity(host_seed(5)), 1, b"prekey bundle")
        await writer.put_record(key, record)
        for reader in (hosts[0], hosts[12], last):
            assert await reader.get_record(key, TIMEOUT) == record


async def test_a_record_lookup_cut_short_keeps_the_copy_it_found(
    autojump_clock: MockClock,
) -> None:
    """One holder answers at once, another is cut off (its query hangs): the
    caller's deadline ends the lookup short of its quorum, with the record.
    (libp2p's get_value waited for the quorum and then returned nothing.)"""
    net = MemoryNetwork(LinkFaults(latency=0.02), seed=3)
    async with open_hosts(4, network=net) as hosts:
        register(hosts)
        reader, writer, cut = hosts[1], hosts[2], hosts[3]
        key = record_key(writer.peer_id)
        record = make_record(Identity(host_seed(2)), 1, b"prekey bundle")
        await writer.put_record(key, record)
        # The reader (and the bootstrap host 0) lose touch with host 3: a
        # dial to it hangs (black-holed) past the caller's deadline.
        await reader.disconnect(cut.peer_id)
        net.partition([[*reader.listen_addrs(), *hosts[0].listen_addrs(), *writer.listen_addrs()]])
        start = trio.current_time()
        assert await reader.get_record(key, 2.0) == record
        assert trio.current_time() - start <= 2.0
        lookup = reader.last_record_lookup
        assert lookup is not None and lookup.timed_out and lookup.copies >= 1
        assert cut.peer_id in {from_id(p) for p in lookup._asked}  # the hanging query


async def test_partition_breaks_connections_and_blackholes_dials_until_healed(
    autojump_clock: MockClock,
) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.01), trace=True)
    async with open_hosts(3, join=False, network=net) as (a, b, c):
        b.set_handler(ECHO, echo)
        stream = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
        await c.connect(b.peer_id, b.listen_addrs())

        net.partition([a.listen_addrs(), [*b.listen_addrs(), *c.listen_addrs()]])
        with pytest.raises(PeerUnreachable):
            await stream.write_frame(b"across", TIMEOUT)
            await stream.read_frame(CAP, TIMEOUT)
        assert c.is_connected(b.peer_id)  # same side: untouched
        start = trio.current_time()
        with pytest.raises(PeerUnreachable):
            await a.connect(b.peer_id, b.listen_addrs())
        # Black-holed, not refused: the dial waited for its own timeout.
        assert trio.current_time() - start >= 1.0
        assert any(event.kind == "blackholed" for event in net.events or ())

        net.heal()
        assert 0.02 <= await round_trip([b"healed"], a, b) <= 0.02 + 2 * WAKE_GRID_SECONDS


async def test_lossy_links_deliver_every_byte_in_order_but_later(autojump_clock: MockClock) -> None:
    payloads = [bytes([i]) * (100 * i) for i in range(40)]

    async def echo_time(loss: float) -> tuple[float, int]:
        net = MemoryNetwork(LinkFaults(latency=0.01, loss=loss), seed=7)
        async with open_hosts(2, join=False, network=net) as (a, b):
            b.set_handler(ECHO, echo)
            return await round_trip(payloads, a, b), net.stats["lost"]

    clean, none_lost = await echo_time(0.0)
    lossy, lost = await echo_time(0.2)
    assert none_lost == 0 and lost > 0
    assert lossy > clean + 0.2  # at least one retransmission timeout


async def test_dial_to_nobody_is_refused_after_one_round_trip(autojump_clock: MockClock) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.1))
    async with open_hosts(1, network=net) as (a,):
        nobody = Identity(b"\x42" * 32).peer_id
        start = trio.current_time()
        with pytest.raises(PeerUnreachable):
            await a.connect(nobody, [f"{net.new_listen_addr()}/p2p/{nobody}"])
        assert trio.current_time() - start == pytest.approx(0.2)
        # libp2p sometimes dials the address twice at once: refused both times.
        assert net.stats["refused"] >= 1 and net.stats["accepted"] == 0


async def test_memory_addresses_touch_no_real_socket(autojump_clock: MockClock) -> None:
    net = MemoryNetwork()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A real TCP host refuses the taken port; a memory host does not probe it.
        async with open_host(host_seed(0), [f"/ip4/127.0.0.1/tcp/{port}"], network=net) as host:
            assert net.is_listening(host.listen_addrs()[0])
    assert not net.is_listening(f"/ip4/127.0.0.1/tcp/{port}")


async def test_one_memory_address_serves_one_host(autojump_clock: MockClock) -> None:
    net = MemoryNetwork()
    addr = net.new_listen_addr()
    async with open_host(host_seed(0), [addr], network=net):
        with pytest.raises(ConfigError, match="cannot listen"):
            async with open_host(host_seed(1), [addr], network=net):
                pass
    with pytest.raises(ConfigError):
        net.partition([["/dns4/example.org/tcp/1"]])


async def test_hosts_join_through_several_bootstrap_hosts(autojump_clock: MockClock) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.01), trace=True)
    async with open_hosts(5, bootstraps=2, network=net) as hosts:
        ips = [host.listen_addrs()[0].split("/")[2] for host in hosts]

        def first_dial(index: int) -> str:
            dials = (e for e in net.events or () if e.kind == "dial")
            return next(e.dst for e in dials if e.src.startswith(ips[index] + ":"))

        # Host 1 joins through host 0, then 2 → 0, 3 → 1, 4 → 0.
        assert [first_dial(i).split(":")[0] for i in (1, 2, 3, 4)] == [
            ips[0],
            ips[0],
            ips[1],
            ips[0],
        ]
    with pytest.raises(ValueError):
        async with open_hosts(2, bootstraps=0, network=net):
            pass


def test_link_faults_are_checked() -> None:
    with pytest.raises(ValueError):
        LinkFaults(loss=1.0)
    with pytest.raises(ValueError):
        LinkFaults(latency=-1)
    assert LinkFaults(latency=0.001).rto() == 0.2  # Linux's RTO floor


@asynccontextmanager
async def raw_connection(
    net: MemoryNetwork, serve: Callable[[ReadWriteCloser], Awaitable[None]]
) -> AsyncIterator[IRawConnection]:
    """A raw memory connection from a fresh node to one whose listener runs ``serve``."""
    addr_a, addr_b = net.new_listen_addr(), net.new_listen_addr()
    async with trio.open_nursery() as nursery:
        listener = net.transport(addr_b).create_listener(serve)
        listener.background_nursery = nursery  # type: ignore[attr-defined]
        await listener.listen(Multiaddr(addr_b))
        yield await net.transport(addr_a).dial(Multiaddr(addr_b))
        await listener.close()
        nursery.cancel_scope.cancel()


async def arrival_times(seed: int, faults: LinkFaults) -> list[tuple[float, bytes]]:
    """Send 50 numbered writes over one raw memory connection; when and what arrived."""
    arrived: list[tuple[float, bytes]] = []
    done = trio.Event()
    # Start on a whole second: readers wake on the pipes' grid of absolute
    # times, so runs compare only from the same phase (as a replay starts at 0).
    await trio.sleep_until(math.floor(trio.current_time()) + 1.0)

    async def receive(conn: ReadWriteCloser) -> None:
        start = trio.current_time()
        while data := await conn.read(1):
            arrived.append((round(trio.current_time() - start, 9), data))  # float noise
        done.set()

    async with raw_connection(MemoryNetwork(faults, seed=seed), receive) as conn:
        for index in range(50):
            await conn.write(bytes([index]))
            await trio.sleep(0.001)
        await conn.close()
        await done.wait()
    return arrived


async def test_a_reader_that_does_not_read_stalls_its_writer(autojump_clock: MockClock) -> None:
    accepted: list[ReadWriteCloser] = []

    async def hold(conn: ReadWriteCloser) -> None:
        accepted.append(conn)
        await trio.sleep_forever()

    chunk = bytes(64 << 10)
    async with raw_connection(MemoryNetwork(), hold) as conn:
        sent = 0
        with trio.move_on_after(10):
            while True:
                await conn.write(chunk)
                sent += len(chunk)
        assert PIPE_BUFFER_BYTES <= sent < PIPE_BUFFER_BYTES + len(chunk)
        (server,) = accepted
        assert len(await server.read(1 << 20)) == len(chunk)  # one Yamux frame's worth
        with trio.fail_after(1):
            await conn.write(chunk)  # room again
        await server.close()
        with pytest.raises(ConnectionClosedError):
            await conn.write(chunk)


async def test_same_seed_gives_the_same_faults(autojump_clock: MockClock) -> None:
    faults = LinkFaults(latency=0.01, jitter=0.005, loss=0.2)
    first = await arrival_times(3, faults)
    # Reliable and in order, whatever was lost and resent on the way.
    assert [data for _, data in first] == [bytes([i]) for i in range(50)]
    assert first == await arrival_times(3, faults)
    assert first != await arrival_times(4, faults)


async def test_a_host_with_a_join_delay_joins_the_dht_later(autojump_clock: MockClock) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.01))
    async with open_hosts(1, network=net) as (first,):
        assert first.joined.is_set()  # no bootstrap peers: nothing to wait for
        start = trio.current_time()
        async with open_host(
            host_seed(1), network=net, bootstrap=first.listen_addrs()[:1], join_delay=7.0
        ) as late:
            assert trio.current_time() - start < 1.0  # entering did not wait
            assert not late.joined.is_set() and not late.connected_peers()
            await trio.sleep(6.5)
            assert not late.connected_peers()  # no bootstrap re-dial meanwhile
            await late.joined.wait()
            assert trio.current_time() - start >= 7.0
            assert first.peer_id in late.dht_peers()
            assert late.peer_id in first.dht_peers()


async def test_a_host_with_a_join_gate_joins_once_the_gate_opens(autojump_clock: MockClock) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.01))
    gate = trio.Event()
    async with open_hosts(1, network=net) as (first,):
        bootstrap = first.listen_addrs()[:1]
        async with open_host(
            host_seed(1), network=net, bootstrap=bootstrap, join_gate=gate.wait
        ) as held:
            await trio.sleep(60.0)  # held as long as the gate stays shut
            assert not held.joined.is_set() and not held.connected_peers()
            gate.set()
            await held.joined.wait()
            assert first.peer_id in held.dht_peers()
            assert held.peer_id in first.dht_peers()


async def test_a_seeded_join_takes_its_routing_table_from_the_seed_without_a_lookup(
    autojump_clock: MockClock,
) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.01))
    async with open_hosts(6, network=net) as hosts:
        seeded = hosts[2:]
        async with open_host(
            host_seed(6), network=net, bootstrap=hosts[0].listen_addrs()[:1], join_delay=1.0
        ) as late:
            late.table_seed = lambda: [(h.peer_id, h.listen_addrs()) for h in [late, *seeded]]
            register([*hosts, late])
            dials = net.stats["dials"]
            await late.joined.wait()
            # The bootstrap peer, dialled as in every join, and the seed (not itself).
            assert set(late.dht_peers()) == {hosts[0].peer_id} | {h.peer_id for h in seeded}
            assert net.stats["dials"] - dials == 1  # no self-lookup
            assert late.connected_peers() == [hosts[0].peer_id]
            # Later lookups go over the network, from the seeded addresses.
            writer = hosts[1]
            key = record_key(writer.peer_id)
            record = make_record(Identity(host_seed(1)), 1, b"prekey bundle")
            await writer.put_record(key, record)
            assert await late.get_record(key, TIMEOUT) == record
            assert net.stats["dials"] - dials > 1


async def test_a_transport_runs_a_bounded_number_of_dials_at_once(
    autojump_clock: MockClock,
) -> None:
    net = MemoryNetwork(LinkFaults(latency=0.5))
    transport = net.transport(net.new_listen_addr())
    busy = peak = 0
    dial = net._dial

    async def counting_dial(*args: Any) -> Any:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        try:
            return await dial(*args)
        finally:
            busy -= 1

    net._dial = counting_dial  # type: ignore[method-assign,assignment]
    start = trio.current_time()

    async def dial_nobody() -> None:
        with pytest.raises(OpenConnectionError, match="refused"):
            await transport.dial(Multiaddr(net.new_listen_addr()))

    async with trio.open_nursery() as nursery:
        for _ in range(MAX_CONCURRENT_DIALS * 2):
            nursery.start_soon(dial_nobody)
    assert peak == MAX_CONCURRENT_DIALS
    # Each refusal takes one round trip (1 s); the second half waited for the first.
    assert trio.current_time() - start == pytest.approx(2.0)


async def test_yamux_pings_on_the_shared_timers(autojump_clock: MockClock) -> None:
    """Every connection's muxer is p2pdm's Yamux (libp2p builds its own by name):
    its RTT ping still measures the link, its waits on the shared timers."""
    from p2pdm.net._patches import _Yamux
    from p2pdm.net.timers import timers

    net = MemoryNetwork(LinkFaults(latency=LATENCY))
    async with open_hosts(2, join=False, network=net) as (a, b):
        await a.connect(b.peer_id, b.listen_addrs())
        await trio.sleep(65.0)  # the first ping and two more rounds
        (conn,) = a._swarm.get_connections(to_id(b.peer_id))
        muxer = conn.muxed_conn
        assert type(muxer) is _Yamux
        assert 2 * LATENCY <= muxer.rtt() <= 2 * (LATENCY + WAKE_GRID_SECONDS)
        assert timers().wakeups >= 3


def test_the_simulation_networks_load_when_asked_for() -> None:
    """`p2pdm.net` gives the in-memory network and the fault injector by name,
    loading them then; a node over TCP (`p2pdm.net.open_host`) does not."""
    code = (
        "import json, sys, p2pdm.net; "
        "before = [m for m in ('p2pdm.net.memory_transport', 'p2pdm.net.tcp_faults') "
        "if m in sys.modules]; "
        "from p2pdm.net import LinkFaults, MemoryNetwork, TcpFaults; "
        "from p2pdm.net.memory_transport import LinkFaults as L, MemoryNetwork as M; "
        "from p2pdm.net.tcp_faults import TcpFaults as T; "
        "print(json.dumps([before, LinkFaults is L, MemoryNetwork is M, TcpFaults is T]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == [[], True, True, True]
    with pytest.raises(AttributeError, match="no attribute 'Nowhere'"):
        getattr(p2pdm.net, "Nowhere")  # noqa: B009
