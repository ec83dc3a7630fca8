"""Message requests and blocking between whole nodes on loopback (real TCP, libp2p).

Node 0 offers the mailbox service; Alice (node 2) has Carol (node 1) from
her invite, Carol does not know Alice: what Alice writes is a request.
"""

from __future__ import annotations

import pytest
import trio

from p2pdm.core.model import DeliveryStatus
from p2pdm.errors import PeerBlocked
from p2pdm.node.messenger import message_text
from p2pdm.sim.network import SimNetwork, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from tests.conftest import UPKEEP

pytestmark = pytest.mark.net

CAROL, ALICE = 1, 2


def _introduce(net: SimNetwork) -> None:
    """Alice adds Carol from Carol's invite; Carol knows nothing of Alice."""
    alice, carol = net[ALICE].running.node, net[CAROL].running.node
    alice.add_contact_from_invite(carol.invite(), "carol")


async def test_a_request_waits_apart_until_accepted_then_receipts_flow(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(3, clock="real", contacts=0, upkeep=UPKEEP) as net:
        _introduce(net)
        alice, carol = net[ALICE].running.node, net[CAROL].running.node
        first = await net.send(ALICE, CAROL, "hi carol, we met at the station")
        await net.wait_delivered(ALICE, first, 20)
        [request] = carol.requests()
        assert (request.peer_id, request.count) == (alice.peer_id, 1)
        assert message_text(request.first) == "hi carol, we met at the station"
        [conversation] = carol.conversations()
        assert conversation.request and carol.store.counts()["unread"] == 0
        assert not carol.is_accepted(alice.peer_id)
        # Reading a request sends no read receipt.
        carol.mark_read(alice.peer_id)
        await trio.sleep(1)
        assert alice.messenger.message(first.id).status is DeliveryStatus.DELIVERED

        added = carol.accept_request(alice.peer_id)
        assert added.contact.peer_id == alice.peer_id and carol.is_accepted(alice.peer_id)
        assert carol.requests() == [] and not carol.conversations()[0].request
        second = await net.send(ALICE, CAROL, "thanks")
        await net.wait_received(CAROL, second, 20)
        carol.mark_read(alice.peer_id)
        await net.wait_status(ALICE, second, DeliveryStatus.READ, 20)
        # Carol's answer needs no stamp, and Alice's next one none either: Carol wrote.
        reply = await net.send(CAROL, ALICE, "welcome")
        await net.wait_received(ALICE, reply, 20)
        assert not alice.messenger.stamps.needed(carol.peer_id)


async def test_a_declined_request_is_gone_and_the_sender_learns_nothing_more(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(3, clock="real", contacts=0, upkeep=UPKEEP) as net:
        _introduce(net)
        alice, carol = net[ALICE].running.node, net[CAROL].running.node
        sent = await net.send(ALICE, CAROL, "buy my course")
        await net.wait_delivered(ALICE, sent, 20)
        assert carol.decline_request(alice.peer_id) == 1
        assert carol.requests() == [] and carol.conversations() == []
        assert carol.store.get_message(sent.id) is None
        assert carol.store.get_contact(alice.peer_id) is None
        carol.mark_read(alice.peer_id)  # nothing left to read, nothing to receipt
        await trio.sleep(1)
        assert alice.messenger.message(sent.id).status is DeliveryStatus.DELIVERED


@pytest.mark.slow
async def test_a_blocked_peer_reaches_nothing_directly_or_by_mailbox_and_sees_no_delivery(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(3, clock="real", contacts=0, upkeep=UPKEEP) as net:
        _introduce(net)
        mailbox = net[0]
        alice, carol = net[ALICE].running.node, net[CAROL].running.node
        first = await net.send(ALICE, CAROL, "hello?")
        await net.wait_delivered(ALICE, first, 20)
        assert carol.block_request(alice.peer_id) == 1 and carol.is_blocked(alice.peer_id)
        assert [e.type.value for e in carol.store.events(0, 100)][-1] == "contact.blocked"

        # Directly: Carol's node resets Alice's streams; Alice's stays "sent",
        # then "deposited" once the mailbox holds it (protocol §18.1).
        unseen = (DeliveryStatus.SENT, DeliveryStatus.DEPOSITED)  # never delivered, never read
        direct = await net.send(ALICE, CAROL, "why did you block me")
        await wait_until(lambda: carol.messenger.dropped_blocked >= 1, 20)
        await wait_until(lambda: alice.messenger.message(direct.id).status in unseen, 20)
        # By mailbox, Carol away: fetched on her return, deleted unseen.
        await net.stop(net[CAROL])
        later = await net.send(ALICE, CAROL, "while you were away")
        await net.wait_status(ALICE, later, DeliveryStatus.DEPOSITED, 30)
        await net.start(net[CAROL])
        carol = net[CAROL].running.node  # a new node object on the same store
        await wait_until(lambda: mailbox.store.mailbox_usage(carol.peer_id)[0] == 0, 30)
        await trio.sleep(1)
        for message in (direct, later):
            assert carol.store.get_message(message.id) is None
            assert alice.messenger.message(message.id).status in unseen
        assert carol.messenger.dropped_blocked >= 1 and carol.conversations() == []
        # Nothing goes the other way either.
        with pytest.raises(PeerBlocked):
            await carol.send(alice.peer_id, "no")


async def test_a_stranger_without_enough_work_is_refused_and_nothing_stored(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(3, clock="real", contacts=0, upkeep=UPKEEP) as net:
        _introduce(net)
        alice, carol = net[ALICE].running.node, net[CAROL].running.node
        alice.messenger.stamps.bits = 0  # a stamp nearly anyone has for free
        carol.messenger.stamps.bits = 20  # what Carol asks of strangers
        sent = await net.send(ALICE, CAROL, "spam")
        await net.wait_status(ALICE, sent, DeliveryStatus.FAILED, 20)
        assert carol.store.counts()["messages"] == 0 and carol.requests() == []
        assert carol.messenger.dropped_unstamped >= 1
