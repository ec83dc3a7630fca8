"""Circuit relay v2 over real hosts on 127.0.0.1: reservations, circuits, the relay's limits."""

from __future__ import annotations

import pytest
import trio

from p2pdm.errors import PeerUnreachable
from p2pdm.net import Host
from p2pdm.net._relay import RelayLimits
from p2pdm.net.testing import ECHO_PROTOCOL as ECHO
from p2pdm.net.testing import echo, open_hosts
from tests.net.conftest import CAP

pytestmark = pytest.mark.net

TIMEOUT = 15.0


async def reserved(relay: Host, client: Host) -> str:
    held = await client.reserve(relay.peer_id, relay.listen_addrs())
    assert held.addrs and all("/p2p-circuit/p2p/" in a for a in held.addrs)
    return held.addrs[0]


async def test_a_peer_is_reached_through_its_relay() -> None:
    async with (
        open_hosts(1, join=False, hole_punching=False, relay=RelayLimits()) as (relay,),
        open_hosts(2, join=False, first_index=1, hole_punching=False) as (alice, carol),
    ):
        carol.set_handler(ECHO, echo)
        circuit = await reserved(relay, carol)
        assert circuit.endswith(f"/p2p/{relay.peer_id}/p2p-circuit/p2p/{carol.peer_id}")
        assert relay.relay_reservations_held() == 1
        stream = await alice.open_stream(carol.peer_id, ECHO, [circuit])
        await stream.write_frame(b"through the relay", TIMEOUT)
        assert await stream.read_frame(CAP, TIMEOUT) == b"through the relay"
        assert alice.is_connected(carol.peer_id)
        assert not alice.has_direct_connection(carol.peer_id)
        assert relay.relay_stats.circuits_open == 1


async def test_a_relay_refuses_reservations_beyond_its_limit() -> None:
    async with (
        open_hosts(1, join=False, hole_punching=False, relay=RelayLimits(max_reservations=1)) as (
            relay,
        ),
        open_hosts(2, join=False, first_index=1, hole_punching=False) as (alice, carol),
    ):
        await reserved(relay, carol)
        with pytest.raises(PeerUnreachable, match="resource_limit_exceeded"):
            await alice.reserve(relay.peer_id, relay.listen_addrs())
        assert relay.relay_stats.refused["reservation_limit"] == 1
        await reserved(relay, carol)  # a renewal is no new reservation


async def test_a_circuit_past_its_byte_limit_is_cut_and_the_nodes_carry_on() -> None:
    limit = 64 << 10
    async with (
        open_hosts(1, join=False, hole_punching=False, relay=RelayLimits(circuit_bytes=limit)) as (
            relay,
        ),
        open_hosts(2, join=False, first_index=1, hole_punching=False) as (alice, carol),
    ):
        carol.set_handler(ECHO, echo)
        circuit = await reserved(relay, carol)
        stream = await alice.open_stream(carol.peer_id, ECHO, [circuit])
        with pytest.raises(PeerUnreachable), trio.fail_after(TIMEOUT):
            for _ in range(8):
                await stream.write_frame(b"x" * (32 << 10), TIMEOUT)
                await stream.read_frame(CAP, TIMEOUT)
        with trio.fail_after(TIMEOUT):
            while alice.is_connected(carol.peer_id):  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert relay.relay_stats.circuits_cut == 1
        # Nobody crashed: a new circuit works (its own budget).
        again = await alice.open_stream(carol.peer_id, ECHO, [circuit])
        await again.write_frame(b"small", TIMEOUT)
        assert await again.read_frame(CAP, TIMEOUT) == b"small"


async def test_a_relay_dials_nobody_for_a_client() -> None:
    """No SSRF: a circuit is only opened to a connected peer holding a
    reservation; the relay never dials the target, even at an address it knows."""
    async with (
        open_hosts(1, join=False, hole_punching=False, relay=RelayLimits()) as (relay,),
        open_hosts(3, join=False, first_index=1, hole_punching=False) as (alice, carol, dave),
    ):
        # The relay knows Dave's address (it met him) but Dave holds no reservation.
        await relay.connect(dave.peer_id, dave.listen_addrs())
        await relay.disconnect(dave.peer_id)
        fake = f"{relay.listen_addrs()[0]}/p2p-circuit/p2p/{dave.peer_id}"
        with pytest.raises(PeerUnreachable, match="no_reservation"):
            await alice.connect(dave.peer_id, [fake])
        # Carol reserved, then went away: the relay does not dial her back.
        circuit = await reserved(relay, carol)
        await carol.disconnect(relay.peer_id)
        with trio.fail_after(TIMEOUT):
            while relay.is_connected(carol.peer_id):  # noqa: ASYNC110
                await trio.sleep(0.05)
        with pytest.raises(PeerUnreachable, match="no_reservation"):
            await alice.connect(carol.peer_id, [circuit])
        await trio.sleep(0.3)
        assert not relay.is_connected(dave.peer_id) and not relay.is_connected(carol.peer_id)
        assert relay.relay_stats.refused["no_reservation"] == 2
