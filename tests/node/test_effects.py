"""The messenger applies the conversation machine's effects: its event-log
entries in the receiving transaction, and the receipts a path is due."""

from __future__ import annotations

import os

import pytest

from p2pdm.core.conversation import ReceiptDue
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus, EventType
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_PAGE_SIZE
from p2pdm.node.messenger import Messenger


def log(m: Messenger, after: int = 0) -> list[tuple[EventType, DeliveryStatus | None, bool]]:
    return [
        (e.type, e.status, e.peer is not None)
        for e in m.store.events(after, MAX_PAGE_SIZE)
        if e.type is not EventType.CONTACT_ADDED
    ]


def test_a_strangers_requests_and_a_contacts_receipts_are_logged(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    first = alice.send_text(bob.peer_id, "hi, we met yesterday")
    bob.receive(first.outbox.envelope)
    bob.receive(alice.send_text(bob.peer_id, "it's Alice").outbox.envelope)
    assert log(bob) == [
        (EventType.CONTACT_REQUEST, None, True),
        (EventType.MESSAGE_RECEIVED, None, True),
        (EventType.MESSAGE_RECEIVED, None, True),  # not the first pending request
    ]
    events = bob.store.events(0, MAX_PAGE_SIZE)
    assert all(e.peer == alice.peer_id for e in events)
    assert events[0].message_id == events[1].message_id == first.outbox.message_id
    # Accepted, then read: Alice's node logs the status the receipt moves, once.
    bob.add_contact(alice.peer_id, "alice", alice.bundle())
    clock.ms += 1_000
    _, receipts = bob.mark_read(alice.peer_id)
    after = alice.store.event_bounds()[1]
    got = alice.receive(receipts[0].outbox.envelope)
    assert len(got.status_changes) == 2
    moved = alice.store.events(after, MAX_PAGE_SIZE)
    assert [(e.type, e.status, e.message_id, e.at_ms) for e in moved] == [
        (EventType.MESSAGE_STATUS, DeliveryStatus.READ, message_id, clock.ms)
        for message_id, _ in got.status_changes
    ]
    assert all(e.detail == f"receipt from {bob.peer_id.short()}" for e in moved)


def test_a_receipt_that_moves_nothing_logs_nothing(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice.send_text(bob.peer_id, "read me")
    bob.receive(out.outbox.envelope)
    receipt = bob.send_receipt(alice.peer_id, "read", [out.outbox.message_id])[0]
    again = bob.send_receipt(alice.peer_id, "delivered", [out.outbox.message_id])[0]
    alice.receive(receipt.outbox.envelope)
    after = alice.store.event_bounds()[1]
    assert alice.receive(again.outbox.envelope).status_changes == ()  # never backwards
    assert alice.store.events(after, MAX_PAGE_SIZE) == []


def test_the_events_commit_with_the_message_or_not_at_all(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice.send_text(bob.peer_id, "one")
    real = bob.store.add_event

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise StoreError("disk full")

    bob.store.add_event = failing
    with pytest.raises(StoreError):
        bob.receive(out.outbox.envelope)
    bob.store.add_event = real
    assert bob.store.counts()["messages"] == 0 and log(bob) == []
    assert bob.receive(out.outbox.envelope).message is not None  # the retry gets in
    assert log(bob) == [(EventType.MESSAGE_RECEIVED, None, True)]


def test_only_what_a_mailbox_brought_is_due_a_delivered_receipt(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    direct = bob.receive(alice.send_text(bob.peer_id, "by stream").outbox.envelope, "direct")
    assert direct.effects.receipts == ()  # its ack told Alice
    fetched = alice.send_text(bob.peer_id, "from a mailbox")
    got = bob.receive(fetched.outbox.envelope, "mailbox")
    assert got.effects.receipts == (
        ReceiptDue(alice.peer_id, "delivered", (fetched.outbox.message_id,)),
    )
    # A receipt fetched from a mailbox is due none, and names what it confirms.
    receipt = bob.send_receipt(alice.peer_id, "delivered", [fetched.outbox.message_id])[0]
    confirmed = alice.receive(receipt.outbox.envelope, "mailbox")
    assert confirmed.effects.receipts == ()
    assert confirmed.effects.confirms == (fetched.outbox.message_id,)
