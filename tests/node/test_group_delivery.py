"""Per-member delivery events of a group message: each member's move makes a
``message.status`` event at once, not only the slowest member's."""

from __future__ import annotations

import random

from p2pdm.core.model import DeliveryStatus, EventType
from p2pdm.node.node import Node
from p2pdm.services.dm.outbox import OutboxBook
from tests.conftest import make_node
from tests.node.conftest import GroupOfThree, acquainted, flush


def status_events(node: Node, after: int) -> list[tuple[str, str, str]]:
    """(status, peer name, detail) of ``node``'s message.status events after ``after``."""
    names = {c.peer_id: c.name for c in node.contacts()}
    return [
        (str(e.status), names[e.peer], e.detail)
        for e in node.store.events(after, 100)
        if e.type is EventType.MESSAGE_STATUS and e.peer is not None
    ]


async def test_each_members_delivery_and_read_is_an_event_at_once(
    group_of_three: GroupOfThree,
) -> None:
    alice, bob, carol = group_of_three.nodes
    group = group_of_three.id
    sent = await alice.send_group_text(group, "ovens on")
    after = alice.store.event_bounds()[1]
    book = OutboxBook(alice, random.Random(0), 10)
    # Bob's copy is acknowledged as the delivery service does; Carol's waits.
    [to_bob] = [i for i in alice.store.outbox_for(bob.peer_id) if i.message_id == sent.message.id]
    bob.messenger.receive(to_bob.envelope)
    assert book.set_status(to_bob, DeliveryStatus.DELIVERED, "ack")
    message = alice.messenger.message(sent.message.id)
    assert message.status is DeliveryStatus.QUEUED  # the slowest member's
    assert status_events(alice, after) == [("queued", "bob", "ack")]
    # Bob reads it: his read receipt is an event too, the message still Carol's pace.
    bob.mark_read(group)
    flush(bob, alice)
    [(status, by, detail)] = status_events(alice, after)[1:]
    assert (status, by, detail.startswith("receipt from")) == ("queued", "bob", True)
    recipients = {r.peer: r.status for r in alice.messenger.message(sent.message.id).recipients}
    assert recipients == {bob.peer_id: DeliveryStatus.READ, carol.peer_id: DeliveryStatus.QUEUED}
    # Carol's delivery moves the message itself: the event says "delivered", by her.
    [to_carol] = [
        i for i in alice.store.outbox_for(carol.peer_id) if i.message_id == sent.message.id
    ]
    carol.messenger.receive(to_carol.envelope)
    assert book.set_status(to_carol, DeliveryStatus.DELIVERED)
    assert status_events(alice, after)[2:] == [("delivered", "carol", "")]


async def test_a_one_to_one_message_makes_one_event_per_move() -> None:
    alice, bob = make_node("alice"), make_node("bob")
    acquainted(alice, bob)
    sent = await alice.send(bob.peer_id, "hi")
    after = alice.store.event_bounds()[1]
    [item] = alice.store.outbox_for(bob.peer_id)
    book = OutboxBook(alice, random.Random(0), 10)
    assert book.set_status(item, DeliveryStatus.DELIVERED, "ack")
    assert not book.set_status(item, DeliveryStatus.DELIVERED, "again")
    assert status_events(alice, after) == [("delivered", "bob", "ack")]
    assert alice.messenger.message(sent.id).status is DeliveryStatus.DELIVERED


async def test_a_member_it_failed_for_and_one_it_waits_for_say_why(
    group_of_three: GroupOfThree,
) -> None:
    from p2pdm.api.views import message_view
    from p2pdm.cli.chat import delivery_words

    alice, bob, carol = group_of_three.nodes
    group = group_of_three.id
    sent = await alice.send_group_text(group, "ovens on")
    book = OutboxBook(alice, random.Random(0), 10)
    mine = [i for p in (bob, carol) for i in alice.store.outbox_for(p.peer_id)]
    [to_bob] = [i for i in mine if i.recipient == bob.peer_id and i.message_id == sent.message.id]
    [to_carol] = [
        i for i in mine if i.recipient == carol.peer_id and i.message_id == sent.message.id
    ]
    # Carol waits: the note is hers, in the message's note and her own.
    book.note(to_carol, "carol is not reachable: connection refused")
    shown = message_view(alice, alice.messenger.message(sent.message.id))
    assert shown["delivery"] == {"members": 2, "delivered": 0, "read": 0, "failed": 0}
    assert shown["status_detail"].startswith("carol is not reachable: connection refused since")
    by_peer = {r["peer"]: r["status_detail"] for r in shown["recipients"]}
    assert by_peer == {
        str(bob.peer_id): "",
        str(carol.peer_id): "carol is not reachable: connection refused",
    }
    words = delivery_words(shown)
    assert words == "delivered to 0 of 2"
    # Bob has it; Carol's node refuses it for good: "delivered" no longer hides her.
    assert book.set_status(to_bob, DeliveryStatus.DELIVERED)
    assert book.set_status(to_carol, DeliveryStatus.FAILED, "refused: no session")
    shown = message_view(alice, alice.messenger.message(sent.message.id))
    assert shown["status"] == "delivered"
    assert shown["delivery"] == {"members": 2, "delivered": 1, "read": 0, "failed": 1}
    assert shown["status_detail"] == "failed for carol: refused: no session"
    by_peer = {r["peer"]: r["status_detail"] for r in shown["recipients"]}
    assert by_peer == {str(bob.peer_id): "", str(carol.peer_id): "refused: no session"}
    assert delivery_words(shown) == "delivered to 1 of 2, failed for 1"
