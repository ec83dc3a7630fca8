"""Live location between real nodes over libp2p on loopback, through the HTTP
API. Updates go over the open connection only, and nothing of a share is
stored: not its position, not past its period."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from p2pdm.core.kinds import LiveLocationBody
from p2pdm.core.model import EventType, direct_conversation_id
from p2pdm.limits import LIVE_LOCATION_DIAL_S, LIVE_LOCATION_INTERVAL_S
from p2pdm.node.live_location import (
    RESEND_PAUSES_S,
    expire_live_locations,
    receive_live_location,
    recipients_of,
    share_live_location,
)
from p2pdm.node.messenger import wall_ms
from p2pdm.node.node import Node
from p2pdm.sim.network import SimNetwork, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from tests.conftest import UPKEEP, Api, serving

pytestmark = pytest.mark.net


async def call(api: Api, method: str, path: str, **kwargs: Any) -> Any:
    response = await api.call(method, path, **kwargs)
    assert response.status_code < 300, response.text
    return response.json()


async def events(api: Api, types: str) -> list[dict[str, Any]]:
    page = await call(api, "GET", "/v1/events/poll", params={"types": types, "timeout": 0})
    return list(page["events"])


async def wait_events(api: Api, types: str, count: int) -> list[dict[str, Any]]:
    with trio.fail_after(20):
        while True:
            found = await events(api, types)
            if len(found) >= count:
                return found
            await trio.sleep(0.05)


async def conversation(api: Api, other: Node) -> dict[str, Any]:
    listed = (await call(api, "GET", "/v1/conversations"))["conversations"]
    [found] = [c for c in listed if c["peer"] == str(other.peer_id)]
    return dict(found)


@asynccontextmanager
async def connected_pair(
    sim_network: SimNetworkFactory,
) -> AsyncIterator[tuple[SimNetwork, Api, Api]]:
    """Alice and Bob, contacts, connected (a message went), each with its API."""
    async with sim_network(2, clock="real", contacts=[(0, 1)], upkeep=UPKEEP) as net:
        alice, bob = net[0].running.node, net[1].running.node
        hello = await net.send(0, 1, "on my way")
        await net.wait_delivered(0, hello, 30)
        await wait_until(lambda: bob.peer_id in alice.online, 30)
        async with serving(alice) as a, serving(bob) as b:
            yield net, a, b


def path_to(node: Node) -> str:
    return f"/v1/conversations/{node.peer_id}/live-location"


@pytest.mark.slow
async def group_in_touch(n0: Node, n1: Node, n2: Node) -> bytes:
    """The id of a group node 0 makes with 1 and 2 (not contacts of each other),
    once node 1 has written in it: it then has a session and a connection with
    both others."""
    gid = (await n0.create_group("walk", [n1.peer_id, n2.peer_id])).row.id

    def active(node: Node) -> bool:
        row = node.store.get_group(gid)
        return row is not None and row.state == "active"

    await wait_until(lambda: active(n1) and active(n2), 60)
    await n1.send_group_text(gid, "leaving now")
    await wait_until(lambda: bool(n2.messages(gid, 10).messages), 60)
    await wait_until(lambda: n1.connected_to(n2.peer_id) and n1.connected_to(n0.peer_id), 60)
    return gid


async def test_a_live_location_goes_over_the_open_connection_moves_stops_and_is_never_kept(
    sim_network: SimNetworkFactory,
) -> None:
    async with connected_pair(sim_network) as (_, a, b):
        alice, bob = a.node, b.node
        counts = (alice.store.counts(), bob.store.counts())
        path = path_to(bob)
        # A period must be one of the named ones.
        bad = await a.call("POST", path, json={"lat": 52.52, "lon": 13.4, "duration_s": 60})
        assert bad.status_code == 400 and "duration_s" in bad.text
        moved = await a.call("POST", path, json={"lat": 52.52, "lon": 13.4})
        assert moved.status_code == 400 and "duration_s" in moved.text  # nothing to move yet
        place = {"lat": 52.52, "lon": 13.40, "accuracy_m": 12, "duration_s": 900}
        started = await call(a, "POST", path, json=place)
        assert started["sent"] is True and started["reason"] is None
        share = started["live_location"]
        assert share["mine"] is True and share["accuracy_m"] == 12
        assert 899_000 <= share["until_ms"] - wall_ms() <= 900_000

        [live] = await wait_events(b, "location.live", 1)
        assert live["peer"] == str(alice.peer_id)
        assert int(live["detail"]) == share["until_ms"] // 1000 * 1000
        [seen] = (await conversation(b, alice))["live_locations"]
        assert (seen["lat"], seen["lon"], seen["accuracy_m"], seen["mine"]) == (
            52.52,
            13.4,
            12,
            False,
        )
        assert (await conversation(a, bob))["live_locations"][0]["mine"] is True

        # A move within the interval stays here; it is never queued for later.
        again = await call(a, "POST", path, json={"lat": 52.53, "lon": 13.41})
        assert again["sent"] is False and "less than" in again["reason"]
        assert again["live_location"]["until_ms"] == share["until_ms"]
        got = await call(b, "GET", path_to(alice))
        assert got["live_locations"][0]["lat"] == 52.52

        # Nothing of it was stored or queued on either side.
        assert (alice.store.counts(), bob.store.counts()) == counts
        assert alice.store.outbox_count() == 0

        # Stopping tells the contact at once.
        assert (await call(a, "DELETE", path))["stopped"] is True
        [stopped] = await wait_events(b, "location.stopped", 1)
        assert stopped["peer"] == str(alice.peer_id)
        assert (await conversation(b, alice))["live_locations"] == []
        assert (await call(a, "DELETE", path))["stopped"] is False


@pytest.mark.slow
async def test_a_live_location_ends_with_its_period_and_only_comes_directly(
    sim_network: SimNetworkFactory,
) -> None:
    async with connected_pair(sim_network) as (_, a, b):
        alice, bob = a.node, b.node
        place = {"lat": -33.9, "lon": 151.2, "duration_s": 3600}
        await call(a, "POST", path_to(bob), json=place)
        await wait_events(b, "location.live", 1)
        conversation_id = direct_conversation_id(alice.peer_id, bob.peer_id)

        # Through a mailbox it would be stale: such an update is dropped.
        body = LiveLocationBody(wall_ms() // 1000 + 600, 10, 20)
        assert receive_live_location(bob, alice.peer_id, body, direct=False) is None
        # One that claims to run past the longest period is refused.
        too_long = LiveLocationBody(wall_ms() // 1000 + 9 * 3600, 10, 20)
        assert receive_live_location(bob, alice.peer_id, too_long, direct=True) is None

        # An hour later both sides forget it, each with a location.stopped.
        for peer in (alice, bob):
            peer.now_ms = lambda: wall_ms() + 3600 * 1000 + 1
            [gone] = expire_live_locations(peer)
            assert gone.peer == alice.peer_id
            assert peer.live_locations.active(conversation_id, peer.now_ms()) == []
        await wait_events(b, "location.stopped", 1)
        await wait_events(a, "location.stopped", 1)


@pytest.mark.slow
async def test_a_running_share_goes_again_at_once_to_a_contact_that_comes_back(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(2, contacts=[(0, 1)]) as net:
        alice = net[0].running.node
        bob_id = net[1].peer_id
        hello = await net.send(0, 1, "on my way")
        await net.wait_delivered(0, hello, 60)
        await wait_until(lambda: alice.connected_to(bob_id), 60)
        conversation_id = direct_conversation_id(alice.peer_id, bob_id)
        share, why_not = await share_live_location(
            alice, conversation_id, [bob_id], 488_500_000, 23_500_000, 7, 3600
        )
        assert why_not is None
        # Bob goes away (and forgets every share: memory only) and comes back.
        await net.stop(net[1])
        await wait_until(lambda: not alice.connected_to(bob_id), 60)
        # A move while Bob is away reaches nobody, and is not queued.
        await trio.sleep(LIVE_LOCATION_INTERVAL_S)
        _, why_not = await share_live_location(
            alice, conversation_id, [bob_id], 488_600_000, 23_600_000, 7, None
        )
        assert why_not is not None and "not connected" in why_not
        assert alice.store.outbox_count() == 0
        await net.start(net[1])
        bob = net[1].running.node

        # Bob's node learns Alice's current position with no new update from her.
        def shown() -> list[Any]:
            return bob.live_locations.active(conversation_id, bob.now_ms())

        await wait_until(lambda: len(shown()) == 1, 60)
        [seen] = shown()
        assert (seen.peer, seen.mine) == (alice.peer_id, False)
        assert (seen.lat_e7, seen.lon_e7, seen.accuracy_m) == (488_600_000, 23_600_000, 7)
        assert seen.until_ms == share.until_ms // 1000 * 1000


@pytest.mark.slow
async def test_a_live_location_in_a_group_reaches_each_member_online(
    sim_network: SimNetworkFactory,
) -> None:
    # Nodes 1 and 2 are members of 0's group, not contacts of each other.
    async with sim_network(3, clock="real", contacts=[(0, 1), (0, 2)], upkeep=UPKEEP) as net:
        n0, n1, n2 = (net[i].running.node for i in range(3))
        gid = await group_in_touch(n0, n1, n2)
        async with serving(n1) as a, serving(n2) as c:
            path = f"/v1/conversations/{gid.hex()}/live-location"
            place = {"lat": 40.41, "lon": -3.70, "duration_s": 900}
            started = await call(a, "POST", path, json=place)
            assert started["sent"] is True and started["live_location"]["mine"] is True

            def shown(node: Node, conversation: bytes) -> list[Any]:
                return node.live_locations.active(conversation, node.now_ms())

            await wait_until(lambda: len(shown(n0, gid)) == len(shown(n2, gid)) == 1, 30)
            for node in (n0, n2):
                [share] = shown(node, gid)
                assert share.peer == n1.peer_id and share.lat_e7 == 404_100_000
                # In the group's conversation only, not the one-to-one one.
                assert shown(node, direct_conversation_id(node.peer_id, n1.peer_id)) == []
            [seen] = (await call(c, "GET", path))["live_locations"]
            assert (seen["peer"], seen["mine"], seen["lon"]) == (str(n1.peer_id), False, -3.7)

            assert (await call(a, "DELETE", path))["stopped"] is True
            await wait_until(lambda: shown(n0, gid) == shown(n2, gid) == [], 30)
            [stopped] = await wait_events(c, "location.stopped", 1)
            assert stopped["conversation_id"] == gid.hex()

            # One who left the group shares nothing there.
            await n2.change_group(gid, "leave")
            refused = await c.call("POST", path, json=place)
            assert refused.status_code == 422 and "not in this group" in refused.text


@pytest.mark.slow
async def test_a_start_dials_a_contact_the_node_has_not_seen_connected_yet(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(2, contacts=[(0, 1)]) as net:
        alice, bob = net[0].running.node, net[1].running.node
        conversation_id = direct_conversation_id(alice.peer_id, bob.peer_id)
        # As right after a start: the node has not seen the connection yet.
        alice.connected_to = lambda peer: False
        _, why_not = await share_live_location(
            alice, conversation_id, [bob.peer_id], 10, 20, None, 900
        )
        assert why_not is None  # dialed, and it went
        await wait_until(lambda: bool(bob.live_locations.active(conversation_id, bob.now_ms())))
        # A move does not dial: it waits for the connection.
        await trio.sleep(LIVE_LOCATION_INTERVAL_S)
        _, why_not = await share_live_location(
            alice, conversation_id, [bob.peer_id], 11, 21, None, None
        )
        assert why_not is not None and "not connected" in why_not
        # A contact that is away: the start says so after a bounded wait.
        await net.stop(net[1])
        before = trio.current_time()
        _, why_not = await share_live_location(
            alice, conversation_id, [bob.peer_id], 10, 20, None, 3600
        )
        assert why_not is not None and "could not be reached" in why_not
        assert trio.current_time() - before <= LIVE_LOCATION_DIAL_S + 1
        assert alice.store.outbox_count() == 0


@pytest.mark.slow
async def test_a_share_that_ran_when_the_sharer_crashed_is_stopped_when_it_starts_again(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    # SQLite stores: what the node reads back at its start is what was committed.
    async with sim_network(2, store="sqlite", contacts=[(0, 1)]) as net:
        alice, bob = net[0].running.node, net[1].running.node
        hello = await net.send(0, 1, "on my way")
        await net.wait_delivered(0, hello, 60)
        await wait_until(lambda: alice.connected_to(bob.peer_id), 60)
        conversation_id = direct_conversation_id(alice.peer_id, bob.peer_id)
        share, why_not = await share_live_location(
            alice, conversation_id, [bob.peer_id], 488_500_000, 23_500_000, 7, 3600
        )
        assert why_not is None
        await wait_until(lambda: bool(bob.live_locations.active(conversation_id, bob.now_ms())))
        # The store remembers which share runs and until when, never where.
        assert alice.store.live_shares() == [(conversation_id, bob.peer_id, share.until_ms)]

        # Alice's node dies (no clean shutdown: nothing is sent) and starts again.
        await net.stop(net[0])
        assert bob.live_locations.active(conversation_id, bob.now_ms()) != []
        await net.start(net[0])
        alice = net[0].running.node
        assert alice.live_locations.active(conversation_id, alice.now_ms()) == []
        before = trio.current_time()

        # Bob is told it stopped, within the dial bound plus the resend pauses.
        bound = LIVE_LOCATION_DIAL_S + sum(RESEND_PAUSES_S) + 30
        await wait_until(
            lambda: bob.live_locations.active(conversation_id, bob.now_ms()) == [], bound
        )
        assert trio.current_time() - before <= bound
        stopped = bob.store.events(0, 100, [EventType.LOCATION_STOPPED], [alice.peer_id])
        assert stopped
        # Everyone was told: the row is gone, and no share runs on Alice's side.
        await wait_until(lambda: alice.store.live_shares() == [], 10)
        assert alice.live_locations.own(alice.now_ms()) == []


@pytest.mark.slow
async def test_a_recipient_away_at_the_restart_is_told_when_it_comes_back(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(2, contacts=[(0, 1)]) as net:
        alice, bob = net[0].running.node, net[1].running.node
        hello = await net.send(0, 1, "on my way")
        await net.wait_delivered(0, hello, 60)
        await wait_until(lambda: alice.connected_to(bob.peer_id), 60)
        conversation_id = direct_conversation_id(alice.peer_id, bob.peer_id)
        await share_live_location(alice, conversation_id, [bob.peer_id], 1, 2, None, 3600)
        await net.stop(net[0])
        await net.stop(net[1])
        await net.start(net[0])
        alice = net[0].running.node
        # Bob is away: the start-up stop reaches nobody; the share is kept to tell.
        await trio.sleep(LIVE_LOCATION_DIAL_S + 1)
        assert conversation_id in alice.live_locations.orphans
        assert alice.store.live_shares() != []
        # Bob's node forgot every share with its own restart; it is told anyway
        # when its connection comes back, and Alice forgets the share then.
        await net.start(net[1])
        await wait_until(lambda: alice.store.live_shares() == [], 120)
        assert conversation_id not in alice.live_locations.orphans


@pytest.mark.slow
async def test_a_group_share_of_before_a_restart_is_stopped_at_each_member(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(3, contacts=[(0, 1), (0, 2)]) as net:
        n0, n1, n2 = (net[i].running.node for i in range(3))
        gid = await group_in_touch(n0, n1, n2)
        members = recipients_of(n1, gid, n1.peer_id)
        share, _ = await share_live_location(n1, gid, members, 404_100_000, -37_000_000, None, 900)

        def shown(node: Node) -> list[Any]:
            return node.live_locations.active(gid, node.now_ms())

        await wait_until(lambda: len(shown(n0)) == len(shown(n2)) == 1, 30)
        assert n1.store.live_shares() == [(gid, None, share.until_ms)]
        await net.stop(net[1])
        await net.start(net[1])
        n1 = net[1].running.node
        await wait_until(lambda: shown(n0) == shown(n2) == [], 60)
        await wait_until(lambda: n1.store.live_shares() == [], 10)
