"""Disappearing messages and search between whole nodes over real libp2p on
loopback: directly, and through a mailbox while the recipient is away."""

from __future__ import annotations

import pytest

from p2pdm.core.model import DeliveryStatus, EventType, LogEvent, direct_conversation_id
from p2pdm.node.messenger import wall_ms
from p2pdm.node.node import Node
from p2pdm.node.notices import message_notice, message_timer
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from tests.conftest import UPKEEP

pytestmark = pytest.mark.net

DAY_S = 86_400


def later(node: Node, ms: int) -> None:
    """Move the node's clock (what the purge reads) ``ms`` ahead of the wall clock."""
    node.now_ms = lambda: wall_ms() + ms


@pytest.mark.slow
async def test_a_disappearing_message_goes_from_both_nodes_after_it_is_read(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(2, clock="real", contacts=[(0, 1)], upkeep=UPKEEP) as net:
        alice, bob = net[0].running.node, net[1].running.node
        conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
        alice.update_conversation(conversation, bob.peer_id, timer_s=DAY_S)

        def bobs_timer() -> int:
            found = bob.store.get_conversation(conversation)
            return 0 if found is None else found.timer_s

        await wait_until(lambda: bobs_timer() == DAY_S, 30)
        for node, other in ((alice, bob), (bob, alice)):
            [notice] = node.messages(other.peer_id).messages
            assert message_notice(notice) == "set disappearing messages to 1 day"
        sent = await net.send(0, 1, "the zebracorn plan")
        assert message_timer(sent) == DAY_S
        got = await net.wait_received(1, sent, 30)
        assert got.timer_s == DAY_S and got.expires_at_ms is None
        assert [hit.message_id for hit in bob.search("zebracorn")] == [sent.id]

        bob.mark_read(alice.peer_id)
        await net.wait_status(0, sent, DeliveryStatus.READ, 30)
        for node in (alice, bob):
            copy = node.store.get_message(sent.id)
            assert copy is not None and copy.expires_at_ms is not None
            later(node, DAY_S * 1000 + 60_000)
            assert [m.id for m in node.purge_expired()] == [sent.id]
            assert node.store.get_message(sent.id) is None
            assert node.search("zebracorn") == []
            expired = node.event_page(0, 200, types=[EventType.MESSAGE_EXPIRED]).events
            assert [e.message_id for e in expired] == [sent.id]


@pytest.mark.slow
async def test_a_timer_and_a_message_reach_an_offline_recipient_through_a_mailbox(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(3, clock="real", contacts=[(1, 2)], upkeep=UPKEEP) as net:
        carol, alice = net[1], net[2]  # node 0 offers the mailbox
        await net.stop(carol)
        sender = alice.running.node
        conversation = direct_conversation_id(sender.peer_id, carol.peer_id)
        sender.update_conversation(conversation, carol.peer_id, timer_s=3_600)
        sent = await net.send(2, 1, "while away")
        await net.wait_status(2, sent, DeliveryStatus.DEPOSITED, 30)
        await net.stop(alice)

        await net.start(carol)
        got = await net.wait_received(1, sent, 30)
        assert got.timer_s == 3_600
        recipient = carol.running.node
        await wait_until(
            lambda: getattr(recipient.store.get_conversation(conversation), "timer_s", 0) == 3_600,
            30,
        )
        notices = [message_notice(m) for m in recipient.messages(conversation).messages]
        assert "set disappearing messages to 1 hour" in notices
        recipient.mark_read(conversation)
        read = recipient.store.get_message(sent.id)
        assert read is not None and read.expires_at_ms is not None
        later(recipient, 3_600_000 + 60_000)
        assert [m.id for m in recipient.purge_expired()] == [sent.id]


@pytest.mark.slow
async def test_typing_goes_live_over_the_open_connection_and_is_never_kept(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(2, clock="real", contacts=[(0, 1)], upkeep=UPKEEP) as net:
        alice, bob = net[0].running.node, net[1].running.node
        conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
        hello = await net.send(0, 1, "hello")
        await net.wait_delivered(0, hello, 30)
        await wait_until(lambda: bob.peer_id in alice.online, 30)

        follower = bob.events.listener().follow()
        seen: list[LogEvent] = []

        def typing_events() -> list[LogEvent]:
            seen.extend(follower.take())
            return seen

        before = (alice.store.counts(), bob.store.counts())
        assert await alice.send_typing(conversation, bob.peer_id) is None
        await wait_until(lambda: len(typing_events()) == 1, 10)
        [event] = seen
        assert (event.peer, event.conversation_id) == (alice.peer_id, conversation)
        assert (alice.store.counts(), bob.store.counts()) == before  # nothing queued or kept
        assert bob.event_page(0, 200, types=[EventType.TYPING]).events == ()
        # Rate-limited per conversation.
        assert "less than" in (await alice.send_typing(conversation, bob.peer_id) or "")
        # Off with read receipts, both ways.
        alice.typing_sent.clear()
        bob.update_settings({"read_receipts": False})
        assert await alice.send_typing(conversation, bob.peer_id) is None  # taken, not shown
        alice.update_settings({"read_receipts": False})
        alice.typing_sent.clear()
        assert "read receipts" in (await alice.send_typing(conversation, bob.peer_id) or "")
        assert len(typing_events()) == 1
        follower.release()
        assert alice.store.outbox_count() == 0
