"""While a recipient is away: what the sender's status says, and what the waiting costs.

Over the in-memory network under a MockClock, so hours of retries take milliseconds.
"""

from __future__ import annotations

import random

import trio

from p2pdm.core.dm import Ack
from p2pdm.core.model import DeliveryStatus, EventType
from p2pdm.services.dm.outbox import OutboxBook
from p2pdm.services.limits import PEER_LOOKUP_INTERVAL_SECONDS
from tests.fakenet import FakeNetwork
from tests.services.test_dm import Peer

#: Virtual time Bob stays away: long enough for the backoff to reach its cap.
AWAY_SECONDS = 3 * 3600.0


def _alice_knows_bob(nursery: trio.Nursery) -> tuple[Peer, Peer]:
    """Alice and Bob on a fake network, Bob one of Alice's contacts."""
    net = FakeNetwork(nursery)
    alice, bob = Peer(net, "alice"), Peer(net, "bob")
    alice.node.add_contact_from_invite(bob.node.invite())
    return alice, bob


async def test_an_absent_contact_costs_one_fresh_lookup_per_interval(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    alice, bob = _alice_knows_bob(nursery)
    await nursery.start(alice.delivery.run)
    bob.host.online = False
    started = trio.current_time()
    await alice.node.send(bob.node.peer_id, "are you there?")
    await trio.sleep(600)

    [item] = alice.node.store.outbox_for(bob.node.peer_id)
    lookups = [fresh for peer, fresh in alice.host.lookups if peer == bob.node.peer_id]
    assert lookups and all(lookups)  # every lookup asks the network, not a cache
    elapsed = trio.current_time() - started
    assert len(lookups) <= 1 + elapsed / PEER_LOOKUP_INTERVAL_SECONDS
    assert len(lookups) < item.attempts  # early retries (1 s, 2 s, 4 s …) skip the lookup


async def test_the_status_says_why_and_when_without_flooding_the_history(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    alice, bob = _alice_knows_bob(nursery)
    bob.node.add_contact_from_invite(alice.node.invite())
    for peer in (alice, bob):
        await nursery.start(peer.delivery.run)
    bob.host.online = False
    sent = await alice.node.send(bob.node.peer_id, "are you there?")
    await trio.sleep(AWAY_SECONDS)

    message, history = alice.node.message(sent.id.hex())
    assert message.status is DeliveryStatus.QUEUED
    detail = alice.node.status_detail(message)
    assert detail.startswith("bob is not reachable: ") and "; next try " in detail
    assert " UTC; next try " in detail and detail.endswith(" UTC")
    # Hours of retries for one reason: one note (with when it was first seen),
    # one event; the next try is added when the message is shown.
    [queued, note] = history
    assert queued.status is note.status is DeliveryStatus.QUEUED
    assert note.detail == f"bob is not reachable: {bob.node.peer_id.short()} is offline"
    assert detail.startswith(note.detail + " since ")
    events = alice.node.event_page(0, 1000, types=[EventType.MESSAGE_STATUS]).events
    assert [e.detail for e in events if e.message_id == sent.id] == [note.detail]

    # Bob comes back: the message goes out and the status stops explaining.
    bob.host.online = True
    alice.delivery.retry_now(bob.node.peer_id)
    with trio.fail_after(60):
        while alice.node.message(sent.id.hex())[0].status is not DeliveryStatus.DELIVERED:  # noqa: ASYNC110
            await trio.sleep(0.1)
    assert alice.node.status_detail(alice.node.message(sent.id.hex())[0]) == ""


async def test_a_sender_blocked_while_its_stream_is_open_learns_no_more_than_a_reset(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # Bob blocks Alice while her stream to him is open: his node resets it at
    # her next message, as it does a new stream of hers (docs/protocol.md §18.1),
    # never an ack: not even "retry", which a stranger over its rate also gets.
    alice, bob = _alice_knows_bob(nursery)
    bob.node.add_contact_from_invite(alice.node.invite())
    await nursery.start(alice.delivery.run)
    await nursery.start(bob.delivery.run)
    first = await alice.node.send(bob.node.peer_id, "hello")
    for _ in range(100):
        if alice.node.message(first.id.hex())[0].status is DeliveryStatus.DELIVERED:
            break
        await trio.sleep(0.1)
    bob.node.block(alice.node.peer_id)
    second = await alice.node.send(bob.node.peer_id, "are you there?")
    await trio.sleep(30)

    shown = alice.node.message(second.id.hex())[0]
    assert shown.status in (DeliveryStatus.QUEUED, DeliveryStatus.SENT)
    detail = alice.node.status_detail(shown)
    assert "retry" not in detail and "block" not in detail, detail
    assert bob.node.store.get_message(second.id) is None


async def test_a_retry_without_a_reason_reads_as_one(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    # A relayed envelope of a blocked sender is answered "retry" with no reason.
    alice, bob = _alice_knows_bob(nursery)
    sent = await alice.node.send(bob.node.peer_id, "are you there?")
    [item] = alice.node.store.outbox_for(bob.node.peer_id)
    OutboxBook(alice.node, random.Random(0), 10).acked([(item, Ack(1, "retry", ""))])
    detail = alice.node.status_detail(alice.node.message(sent.id.hex())[0])
    assert detail.startswith("recipient asked to retry; retrying since "), detail
