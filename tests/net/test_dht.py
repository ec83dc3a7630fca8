"""The Kademlia DHT through Host: peer routing, signed records, providers."""

from __future__ import annotations

import pytest
import trio
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.kad_dht import KadDHT  # only to count refreshes
from trio.testing import MockClock

from p2pdm.core.identity import Identity
from p2pdm.errors import P2PDMError, PeerUnreachable, SchemaError, SignatureError
from p2pdm.net import Upkeep, _maintenance, open_host
from p2pdm.net._edge import to_id
from p2pdm.net.limits import DHT_INBOUND_STREAM_SECONDS
from p2pdm.net.memory_transport import MemoryNetwork
from p2pdm.net.testing import ECHO_PROTOCOL as ECHO
from p2pdm.net.testing import echo, host_seed, open_hosts, wait_until
from tests.net.conftest import NAMESPACE, TIMEOUT, make_record, record_key, register, select

pytestmark = pytest.mark.net

#: Inbound DHT streams a py-libp2p 0.8.1 server serves at once (KadDHT's
#: ``_inbound_limiter``); it resets every stream beyond them.
LIBP2P_DHT_SERVER_STREAMS = 12


async def test_peer_routing_finds_a_peer_known_only_to_a_neighbour() -> None:
    async with open_hosts(3, join=False) as (b, a, c):
        # a and c each know only b; neither has heard of the other.
        await a.connect(b.peer_id, b.listen_addrs())
        await c.connect(b.peer_id, b.listen_addrs())
        c.set_handler(ECHO, echo)
        assert not a.is_connected(c.peer_id)
        addrs = await a.find_peer(c.peer_id, TIMEOUT)
        assert c.listen_addrs()[0] in addrs
        assert all(addr.endswith(f"/p2p/{c.peer_id}") for addr in addrs)
        stream = await a.open_stream(c.peer_id, ECHO, addrs)
        await stream.write_frame(b"found you", 5)
        assert await stream.read_frame(1024, 5) == b"found you"
        await stream.close()


@pytest.mark.slow
async def test_a_fresh_lookup_finds_a_peer_that_moved_to_a_new_port() -> None:
    """c restarts on a new port: a's routing table and peerstore still hold the
    old address (a plain lookup answers from them); a fresh one asks the DHT."""
    async with open_hosts(2) as (b, a):  # a joins through b
        async with open_host(host_seed(7), bootstrap=b.listen_addrs()) as c:
            old = c.listen_addrs()
            assert old[0] in await a.find_peer(c.peer_id, TIMEOUT)
        async with open_host(host_seed(7), bootstrap=b.listen_addrs()) as c:
            new = c.listen_addrs()
            assert not set(old) & set(new)
            assert set(await a.find_peer(c.peer_id, TIMEOUT)) <= set(old)  # stale
            found = await a.find_peer(c.peer_id, TIMEOUT, fresh=True)
            assert new[0] in found
            await a.connect(c.peer_id, found)
            assert a.is_connected(c.peer_id)


async def test_joining_through_bootstrap_fills_routing_tables() -> None:
    async with (
        open_hosts(3) as (b, a, c),  # a and c join through b
        open_host(host_seed(3), bootstrap=b.listen_addrs()) as d,
    ):
        assert {a.peer_id, c.peer_id} <= set(b.dht_peers())
        assert b.peer_id in d.dht_peers()
        # d's first refresh already found the others through b.
        assert {a.peer_id, c.peer_id} <= set(d.dht_peers())
        addrs = await d.find_peer(c.peer_id, TIMEOUT)
        assert c.listen_addrs()[0] in addrs


async def test_unknown_peer_is_unreachable() -> None:
    async with open_hosts(3) as (_, a, _c):
        nobody = Identity(b"\x42" * 32).peer_id
        with pytest.raises(PeerUnreachable, match="not found"):
            await a.find_peer(nobody, 2.0)


async def test_every_reader_gets_the_newest_record_not_a_cached_one() -> None:
    async with (
        open_hosts(4) as servers,
        # A client-mode reader: it caches what it reads, and as it serves no
        # DHT, no PUT ever refreshes that cache.
        open_host(host_seed(9), bootstrap=servers[0].listen_addrs(), dht_mode="client") as reader,
    ):
        register([*servers, reader])
        writer = servers[1]
        identity = Identity(host_seed(1))
        key = record_key(writer.peer_id)
        v1, v2 = make_record(identity, 1, b"bundle v1"), make_record(identity, 2, b"bundle v2")

        await writer.put_record(key, v1)
        assert await reader.get_record(key, TIMEOUT) == v1
        assert await servers[2].get_record(key, TIMEOUT) == v1

        await writer.put_record(key, v2)
        for host in [reader, *servers]:
            assert await host.get_record(key, TIMEOUT) == v2, host
        # The older record cannot be put back over the newer one.
        with pytest.raises(P2PDMError, match="newer record"):
            await writer.put_record(key, v1)


async def test_forged_and_unsigned_records_are_rejected() -> None:
    async with open_hosts(3) as (b, honest, mallory):
        register([b, honest])
        # mallory runs a node that stores anything, and writes in honest's name.
        mallory.register_record_namespace(NAMESPACE, lambda key, value: None, select)
        key = record_key(honest.peer_id)
        forged = (7).to_bytes(8, "big") + b"\x00" * 64 + b"forged bundle"

        with pytest.raises(SignatureError):
            await honest.put_record(key, forged)
        with pytest.raises(SchemaError):
            await honest.put_record(key, b"unsigned")
        await mallory.put_record(key, forged)
        # Honest nodes refused to store it, and discard it when mallory serves it.
        assert await b.get_record(key, TIMEOUT) is None
        assert await honest.get_record(key, TIMEOUT) is None
        with pytest.raises(ValueError, match="namespace"):
            await honest.get_record("/unregistered/key", TIMEOUT)


async def test_a_record_taken_directly_is_checked_as_a_put_value_would_be() -> None:
    """take_record (records placed by a simulation) keeps what an inbound
    PUT_VALUE would keep, refuses what it would refuse, and the record is then
    served to readers like any other."""
    async with open_hosts(3) as (a, holder, reader):
        register([a, holder, reader])
        identity = Identity(host_seed(0))
        key = record_key(a.peer_id)
        v1, v2 = make_record(identity, 1, b"bundle v1"), make_record(identity, 2, b"bundle v2")
        forged = (9).to_bytes(8, "big") + b"\x00" * 64 + b"forged bundle"

        assert not holder.take_record(key, forged, a.peer_id)  # a bad signature
        assert holder.take_record(key, v2, a.peer_id)
        assert holder.take_record(key, v2, a.peer_id)  # the same again: still held
        assert not holder.take_record(key, v1, a.peer_id)  # older than the one held
        assert await reader.get_record(key, TIMEOUT) == v2
        with pytest.raises(ValueError, match="namespace"):
            holder.take_record("/unregistered/key", v2, a.peer_id)


async def test_providers() -> None:
    async with open_hosts(3) as (_, a, c):
        key = b"p2pdm-mailbox:" + bytes(16)
        await a.provide(key)
        found = dict(await c.find_providers(key, TIMEOUT))
        assert a.listen_addrs()[0] in found[a.peer_id]
        assert await c.find_providers(b"nobody provides this", 2.0) == []


async def test_client_peers_are_dropped_from_server_routing_tables() -> None:
    async with (
        open_hosts(2) as (b, a),
        open_host(host_seed(5), bootstrap=b.listen_addrs(), dht_mode="client") as client,
    ):
        # py-libp2p adds any peer that sends it a DHT query, clients included.
        assert client.peer_id in b.dht_peers()
        await wait_until(lambda: bool(b.peer_protocols(client.peer_id)))  # identify done
        _maintenance.forget_client_peers(b)  # the maintenance loop's step, run now
        assert client.peer_id not in b.dht_peers()
        assert a.peer_id in b.dht_peers()
        # The client still uses the DHT as before.
        assert a.listen_addrs()[0] in await client.find_peer(a.peer_id, TIMEOUT)


async def test_routing_table_is_refreshed_periodically(monkeypatch: pytest.MonkeyPatch) -> None:
    refreshes: list[float] = []
    original = KadDHT.refresh_routing_table

    async def counting(self: KadDHT) -> None:
        refreshes.append(trio.current_time())
        await original(self)

    monkeypatch.setattr(KadDHT, "refresh_routing_table", counting)
    upkeep = Upkeep(interval=0.05, dht_refresh_interval=0.25)
    async with open_hosts(2, upkeep=upkeep) as (b, a):
        joined = len(refreshes)  # libp2p refreshes at start, and a after joining b
        # Both hosts, every 0.25 s: three rounds each take ~0.8 s; the bound is
        # for a loaded machine, where the loops wait for a core.
        await wait_until(lambda: len(refreshes) - joined >= 2 * 3, deadline=4 * TIMEOUT)
        assert a.dht_peers() == [b.peer_id]


async def test_a_record_read_with_keep_false_is_not_kept_by_the_reader() -> None:
    """A client-mode reader (never a holder) looks at a stranger's record once:
    it gets it, and its DHT store holds no copy after (copies count towards the
    store's caps and are never evicted)."""
    async with (
        open_hosts(3) as servers,
        open_host(host_seed(9), bootstrap=servers[0].listen_addrs(), dht_mode="client") as reader,
    ):
        register([*servers, reader])
        writer = servers[1]
        key = record_key(writer.peer_id)
        value = make_record(Identity(host_seed(1)), 1, b"a stranger's bundle")
        await writer.put_record(key, value)
        before = reader.dht_store_stats().records
        assert await reader.get_record(key, TIMEOUT, keep=False) == value
        assert reader.dht_store_stats().records == before
        assert await reader.get_record(key, TIMEOUT) == value  # the default keeps it
        assert reader.dht_store_stats().records == before + 1
        assert await reader.get_record(key, TIMEOUT, keep=False) == value  # held: kept
        assert reader.dht_store_stats().records == before + 1


async def test_abandoned_dht_streams_do_not_lock_a_server_out(autojump_clock: MockClock) -> None:
    """libp2p serves at most LIBP2P_DHT_SERVER_STREAMS inbound DHT streams and
    resets the rest; streams a querier opened and then gave up on must not hold
    those slots for ever, or a newcomer's join lookup through this server is
    refused (its routing table then holds the server only)."""
    net = MemoryNetwork()
    async with (
        open_host(host_seed(0), network=net) as b,
        open_host(host_seed(1), bootstrap=b.listen_addrs(), network=net) as a,
    ):
        abandoned = [
            await a._host.new_stream(to_id(b.peer_id), [KAD_PROTOCOL_ID])
            for _ in range(LIBP2P_DHT_SERVER_STREAMS)
        ]
        await trio.sleep(DHT_INBOUND_STREAM_SECONDS + 1)
        async with open_host(host_seed(2), bootstrap=b.listen_addrs(), network=net) as c:
            assert a.peer_id in c.dht_peers()
        assert len(abandoned) == LIBP2P_DHT_SERVER_STREAMS
