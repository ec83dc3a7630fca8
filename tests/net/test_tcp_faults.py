"""TcpFaults: the memory network's latency and loss on real TCP connections."""

from __future__ import annotations

import os
import time

import pytest
import trio

from p2pdm.errors import ConfigError, PeerUnreachable
from p2pdm.net import Host, LinkFaults, MemoryNetwork, TcpFaults, open_host
from p2pdm.net.testing import ECHO_PROTOCOL as ECHO
from p2pdm.net.testing import echo, host_seed, open_hosts

pytestmark = pytest.mark.net

CAP = 1 << 20


async def echo_frames(a: Host, b: Host, frames: list[bytes]) -> list[bytes]:
    """Send ``frames`` to ``b``'s echo on one stream (pipelined), return what came back."""
    stream = await a.open_stream(b.peer_id, ECHO, b.listen_addrs())
    back: list[bytes] = []
    try:
        async with trio.open_nursery() as nursery:

            async def send() -> None:
                for frame in frames:
                    await stream.write_frame(frame, 30)
                await stream.close_write()

            nursery.start_soon(send)
            while (frame := await stream.read_frame(CAP, 30)) is not None:
                back.append(frame)
    finally:
        await stream.close()
    return back


@pytest.mark.slow
async def test_latency_delays_each_direction_and_keeps_order() -> None:
    faults = TcpFaults(LinkFaults(latency=0.1, jitter=0.05), seed=1)
    # No reachability checks: their dial-backs would add to the dials counted here.
    async with open_hosts(2, join=False, faults=faults, reachability=False) as (a, b):
        b.set_handler(ECHO, echo)
        start = time.monotonic()
        await a.connect(b.peer_id, b.listen_addrs())
        # SYN/SYN-ACK, then Noise's three messages alternate directions.
        assert time.monotonic() - start >= 0.2 + 3 * 0.1
        rtt = await a.ping(b.peer_id)
        assert rtt >= 0.2  # one write each way
        frames = [os.urandom(n) for n in (1, 10, 60_000, 200_000, 5, 300_000)] * 3
        assert await echo_frames(a, b, frames) == frames  # jitter never reorders bytes
    assert faults.stats["dials"] == 1 and faults.stats["accepted"] == 1


async def test_loss_costs_time_not_bytes() -> None:
    faults = TcpFaults(LinkFaults(latency=0.005, loss=0.05), seed=2)
    async with open_hosts(2, join=False, faults=faults) as (a, b):
        b.set_handler(ECHO, echo)
        frames = [os.urandom(1000) for _ in range(40)]
        with trio.fail_after(120):
            assert await echo_frames(a, b, frames) == frames
    assert faults.stats["lost"] > 0


async def test_faults_change_for_every_connection_at_once() -> None:
    faults = TcpFaults()
    async with open_hosts(2, join=False, faults=faults) as (a, b):
        await a.connect(b.peer_id, b.listen_addrs())
        faults.faults = LinkFaults(latency=0.15)
        assert await a.ping(b.peer_id) >= 0.3
        # Hopeless loss: the next writes are lost more than MAX_RETRANSMITS
        # times in a row and the connection breaks, as TCP gives up.
        faults.faults = LinkFaults(loss=0.999)
        with trio.fail_after(60), pytest.raises(PeerUnreachable):
            await a.ping(b.peer_id)
        assert faults.stats["breaks"] >= 1
        faults.faults = LinkFaults()
        with trio.fail_after(30):
            while a.is_connected(b.peer_id):  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert await a.ping(b.peer_id) >= 0  # a new connection, no faults


async def test_faults_are_for_tcp_hosts() -> None:
    with pytest.raises(ConfigError, match="memory network"):
        async with open_host(host_seed(1), network=MemoryNetwork(), faults=TcpFaults()):
            pass
