"""Host.set_peer_filter: refused peers are unreachable both ways, over TCP and memory."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from p2pdm.core.identity import PeerId
from p2pdm.errors import PeerUnreachable
from p2pdm.net import Host, MemoryNetwork, open_host
from p2pdm.net.testing import ECHO_PROTOCOL as ECHO
from p2pdm.net.testing import echo, host_seed, open_hosts, wait_until
from tests.net.conftest import CAP


def refusing(*peers: Host) -> Callable[[PeerId], bool]:
    banned = {peer.peer_id for peer in peers}
    return lambda peer: peer not in banned


async def echoes(a: Host, b: Host) -> bool:
    """Whether ``a`` gets a frame echoed by ``b``; False if ``b`` is unreachable."""
    try:
        stream = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
    except PeerUnreachable:
        return False
    try:
        await stream.write_frame(b"ping", 5)
        return await stream.read_frame(CAP, 5) == b"ping"
    except PeerUnreachable:
        return False
    finally:
        await stream.close()


@pytest.mark.net
async def test_a_filtered_peer_cannot_connect_either_way() -> None:
    async with open_hosts(2, join=False) as (a, b):
        for host in (a, b):
            host.set_handler(ECHO, echo)
        a.set_peer_filter(refusing(b))
        with pytest.raises(PeerUnreachable, match="filtered out"):
            await a.connect(b.peer_id, b.listen_addrs())
        assert not await echoes(a, b)
        # b has no filter: its dial reaches a's socket, and a drops it after the handshake.
        assert not await echoes(b, a)
        with pytest.raises(PeerUnreachable):
            await b.connect(a.peer_id, a.listen_addrs())
        await wait_until(lambda: not a.is_connected(b.peer_id) and not b.is_connected(a.peer_id))


@pytest.mark.net
async def test_setting_a_filter_closes_connections_and_lifting_it_restores_them() -> None:
    async with open_hosts(3, join=False) as (a, b, c):
        for host in (a, b, c):
            host.set_handler(ECHO, echo)
        assert await echoes(a, b) and await echoes(a, c)
        a.set_peer_filter(refusing(b))
        await wait_until(lambda: not a.is_connected(b.peer_id) and not b.is_connected(a.peer_id))
        assert a.is_connected(c.peer_id)  # allowed peers keep their connection
        assert await echoes(c, a)
        assert not await echoes(b, a)
        a.set_peer_filter(None)
        assert await echoes(a, b) and await echoes(b, a)


@pytest.mark.net
async def test_a_filtered_peer_cannot_hang_the_host() -> None:
    """A refused peer dialing in again and again costs a handshake each time,
    fails fast, and the host serves its allowed peers meanwhile."""
    async with open_hosts(3, join=False) as (a, b, c):
        a.set_handler(ECHO, echo)
        a.set_peer_filter(refusing(b))
        failures: list[str] = []

        async def hammer() -> None:
            for _ in range(20):
                with pytest.raises(PeerUnreachable) as refused:
                    await b.open_stream(a.peer_id, ECHO, a.listen_addrs())
                failures.append(refused.value.reason)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(hammer)
                for _ in range(10):
                    assert await echoes(c, a)
        assert len(failures) == 60
        # Refused right after the handshake, not after a dial timeout.
        assert not [why for why in failures if "within" in why or "timed out" in why], failures


@pytest.mark.net
async def test_dht_lookups_finish_around_filtered_peers() -> None:
    async with open_hosts(6) as hosts:
        a, refused = hosts[1], hosts[2:4]
        a.set_peer_filter(refusing(*refused))
        await wait_until(lambda: not any(a.is_connected(peer.peer_id) for peer in refused))
        with trio.fail_after(25):
            for target in hosts[2:]:  # refused peers' addresses may be found, never reached
                try:
                    await a.find_peer(target.peer_id, timeout=10)
                except PeerUnreachable:
                    assert target in refused
            assert await a.find_peer(hosts[5].peer_id, timeout=10)
        assert not any(a.is_connected(peer.peer_id) for peer in refused)


async def test_memory_network_hosts_take_the_filter_too(autojump_clock: trio.abc.Clock) -> None:
    net = MemoryNetwork()
    async with (
        open_host(host_seed(1), network=net) as a,
        open_host(host_seed(2), network=net, peer_filter=lambda peer: False) as b,
    ):
        a.set_handler(ECHO, echo)
        b.set_handler(ECHO, echo)
        assert not await echoes(a, b) and not await echoes(b, a)
        b.set_peer_filter(None)
        assert await echoes(a, b) and await echoes(b, a)
        b.set_peer_filter(refusing(a))
        await wait_until(lambda: not a.is_connected(b.peer_id), deadline=10)
        assert not await echoes(a, b)


@pytest.mark.net
async def test_lifting_the_filter_rejoins_through_the_bootstrap_peer() -> None:
    async with open_hosts(3) as (boot, a, _):
        a.set_peer_filter(refusing(boot))
        await wait_until(lambda: not a.is_connected(boot.peer_id))
        a.set_peer_filter(None)  # a healed partition: a dials its bootstrap peer again
        await wait_until(lambda: a.is_connected(boot.peer_id), deadline=10)
        await wait_until(lambda: boot.peer_id in a.dht_peers(), deadline=10)
