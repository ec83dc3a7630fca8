"""The conversation machine: accepted message + local state in, effects out. No event loop."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core import conversation
from p2pdm.core.conversation import (
    TRANSITIONS,
    Handling,
    LocalState,
    ReceiptDue,
    Standing,
    StatusMove,
    Via,
    on_message,
    on_read,
    on_send,
)
from p2pdm.core.eventlog import LogEvent, contact_added, received_events, status_event
from p2pdm.core.identity import Identity
from p2pdm.core.kinds import Body, ReceiptBody, TextBody, UnknownBody
from p2pdm.core.model import (
    Contact,
    DeliveryStatus,
    Direction,
    EventType,
    StoredMessage,
    direct_conversation_id,
)
from p2pdm.core.wire import InnerMessage
from tests.core.conftest import ALICE, BOB, CAROL

NOW = 1_700_000_000_500
MINE = bytes([7]) * 16  # a message Bob sent to Alice
CONV = direct_conversation_id(ALICE.peer_id, BOB.peer_id)


def from_alice(body: Body, sender: Identity = ALICE, id: bytes = bytes(16)) -> InnerMessage:
    return InnerMessage.create(
        sender,
        id=id,
        recipient=BOB.peer_id,
        conversation=direct_conversation_id(sender.peer_id, BOB.peer_id),
        sent_at_ms=NOW - 500,
        body=body,
    )


def sent_by_bob(
    status: DeliveryStatus = DeliveryStatus.SENT, to: Identity = ALICE
) -> StoredMessage:
    return StoredMessage(
        MINE, CONV, to.peer_id, Direction.OUT, "text", b"", NOW - 9, NOW - 9, status
    )


def test_the_table_covers_every_standing_and_handling() -> None:
    assert set(TRANSITIONS) == {(s, h) for s in Standing for h in Handling}
    assert all(TRANSITIONS[(Standing.BLOCKED, h)] == "blocked" for h in Handling)


def test_a_contacts_text_is_stored_shown_and_announced() -> None:
    inner = from_alice(TextBody("hi"))
    effects = on_message(inner, LocalState(BOB.peer_id, contact=True), NOW)
    assert effects.outcome == "stored" and effects.show and not effects.unsupported
    stored = effects.store
    assert stored is not None
    assert (stored.id, stored.peer, stored.direction, stored.kind) == (
        inner.id,
        ALICE.peer_id,
        Direction.IN,
        "text",
    )
    assert stored.conversation_id == CONV and stored.body == inner.body_bytes()
    assert (stored.sent_at_ms, stored.stored_at_ms) == (NOW - 500, NOW)
    assert stored.status is DeliveryStatus.DELIVERED and not stored.request
    assert effects.events == (
        LogEvent(EventType.MESSAGE_RECEIVED, NOW, ALICE.peer_id, inner.id, conversation_id=CONV),
    )
    assert effects.status_moves == () and effects.receipts == () and effects.confirms == ()


def test_a_strangers_text_is_a_request() -> None:
    effects = on_message(from_alice(TextBody("hi")), LocalState(BOB.peer_id), NOW)
    assert effects.outcome == "request" and effects.store is not None and effects.store.request


def test_a_strangers_first_pending_request_is_also_a_contact_request_event() -> None:
    inner = from_alice(TextBody("hi"))
    first = on_message(inner, LocalState(BOB.peer_id), NOW)
    entry = LogEvent(
        EventType.CONTACT_REQUEST, NOW, ALICE.peer_id, inner.id, conversation_id=CONV, request=True
    )
    assert first.events == (entry, replace(entry, type=EventType.MESSAGE_RECEIVED))
    # Requests of its are pending already: only the message is announced.
    more = on_message(inner, LocalState(BOB.peer_id, has_requests=True), NOW)
    assert more.events == (replace(entry, type=EventType.MESSAGE_RECEIVED),)
    # Pending requests say nothing about a contact.
    contact = on_message(inner, LocalState(BOB.peer_id, contact=True, has_requests=True), NOW)
    assert [e.type for e in contact.events] == [EventType.MESSAGE_RECEIVED]
    assert not any(e.request for e in contact.events)


def test_a_message_from_a_mailbox_is_due_a_delivered_receipt_a_direct_one_is_not() -> None:
    inner = from_alice(TextBody("hi"))
    due = (ReceiptDue(ALICE.peer_id, "delivered", (inner.id,)),)
    for state in (LocalState(BOB.peer_id, contact=True), LocalState(BOB.peer_id)):
        assert on_message(inner, state, NOW, via="mailbox").receipts == due
        assert on_message(inner, state, NOW, via="direct").receipts == ()
    unknown = from_alice(UnknownBody("poke", {}))
    assert on_message(unknown, LocalState(BOB.peer_id), NOW, via="mailbox").receipts == (
        ReceiptDue(ALICE.peer_id, "delivered", (unknown.id,)),
    )
    # Nothing stored, nothing to confirm: a receipt, or a blocked contact's text.
    state = LocalState(BOB.peer_id, contact=True, targets={MINE: sent_by_bob()})
    receipt = from_alice(ReceiptBody("delivered", (MINE,)))
    assert on_message(receipt, state, NOW, via="mailbox").receipts == ()
    blocked = LocalState(BOB.peer_id, contact=True, blocked=True)
    assert on_message(inner, blocked, NOW, via="mailbox").receipts == ()


def test_a_blocked_contact_changes_nothing() -> None:
    blocked = LocalState(BOB.peer_id, contact=True, blocked=True, targets={MINE: sent_by_bob()})
    for body in (TextBody("hi"), UnknownBody("poke", {})):
        for via in ("direct", "mailbox"):
            effects = on_message(from_alice(body), blocked, NOW, via=via)
            assert effects == conversation.Effects("blocked")
    # Its receipt moves nothing, but what it confirms did arrive: no resending.
    effects = on_message(from_alice(ReceiptBody("read", (MINE,))), blocked, NOW)
    assert effects == conversation.Effects("blocked", confirms=(MINE,))


def test_an_unknown_kind_is_stored_as_unsupported() -> None:
    inner = from_alice(UnknownBody("reaction", {"emoji": "👍", "to": MINE}))
    effects = on_message(inner, LocalState(BOB.peer_id, contact=True), NOW)
    assert effects.outcome == "stored" and effects.unsupported and effects.show
    assert effects.store is not None and effects.store.kind == "reaction"
    stranger = on_message(inner, LocalState(BOB.peer_id), NOW)
    assert stranger.outcome == "request" and stranger.unsupported


def test_a_receipt_moves_only_the_senders_own_messages_forward() -> None:
    state = LocalState(BOB.peer_id, contact=True, targets={MINE: sent_by_bob()})
    effects = on_message(from_alice(ReceiptBody("read", (MINE, MINE, bytes(16)))), state, NOW)
    assert effects.outcome == "receipt" and effects.store is None
    assert effects.status_moves == (
        StatusMove(MINE, DeliveryStatus.READ, f"receipt from {ALICE.peer_id.short()}"),
    )
    assert effects.events == (
        LogEvent(
            EventType.MESSAGE_STATUS,
            NOW,
            ALICE.peer_id,
            MINE,
            DeliveryStatus.READ,
            f"receipt from {ALICE.peer_id.short()}",
            CONV,
        ),
    )
    # Every id it names is confirmed (the outbox keeps only Alice's own).
    assert effects.confirms == (MINE, bytes(16))
    # Carol cannot confirm what Bob sent Alice.
    carol = on_message(from_alice(ReceiptBody("read", (MINE,)), CAROL), state, NOW)
    assert carol.outcome == "receipt" and carol.status_moves == () and carol.events == ()
    # Never backwards.
    read = LocalState(BOB.peer_id, contact=True, targets={MINE: sent_by_bob(DeliveryStatus.READ)})
    assert on_message(from_alice(ReceiptBody("delivered", (MINE,))), read, NOW).status_moves == ()
    # Not an incoming message either.
    incoming = StoredMessage(
        MINE, CONV, ALICE.peer_id, Direction.IN, "text", b"", 1, 1, DeliveryStatus.DELIVERED
    )
    theirs = LocalState(BOB.peer_id, contact=True, targets={MINE: incoming})
    assert on_message(from_alice(ReceiptBody("read", (MINE,))), theirs, NOW).status_moves == ()


def test_targets_are_named_for_the_caller_to_look_up() -> None:
    assert conversation.targets_of(from_alice(ReceiptBody("read", (MINE, MINE, CONV)))) == (
        MINE,
        CONV,
    )
    assert conversation.targets_of(from_alice(TextBody("hi", reply_to=MINE))) == ()
    assert conversation.targets_of(from_alice(UnknownBody("reaction", {"to": MINE}))) == ()


def test_sending_stores_only_stored_kinds() -> None:
    text = on_send(from_alice(TextBody("hi")), NOW)
    assert text.store is not None and text.store.status is DeliveryStatus.QUEUED
    assert text.store.direction is Direction.OUT and text.store.peer == BOB.peer_id
    assert on_send(from_alice(ReceiptBody("read", (MINE,))), NOW).store is None


def test_reading_sends_a_read_receipt_to_contacts_with_receipts_on() -> None:
    ids = (MINE,)
    on = LocalState(BOB.peer_id, contact=True)
    assert on_read(ALICE.peer_id, ids, on).receipts == (ReceiptDue(ALICE.peer_id, "read", ids),)
    assert on_read(ALICE.peer_id, ids, LocalState(BOB.peer_id)).receipts == ()  # a request
    off = LocalState(BOB.peer_id, contact=True, read_receipts=False)
    assert on_read(ALICE.peer_id, ids, off).receipts == ()
    assert on_read(ALICE.peer_id, (), on).receipts == ()


# --- never raises on valid input ------------------------------------------------

ids16 = st.binary(min_size=16, max_size=16)
leaves = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.binary(max_size=8)
values = st.recursive(
    leaves | st.text(max_size=6),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=8,
)
exts = st.none() | st.dictionaries(st.text(min_size=1, max_size=8), values, min_size=1, max_size=3)
bodies = (
    st.builds(TextBody, st.text(max_size=40), st.none() | ids16, exts)
    | st.builds(
        ReceiptBody,
        st.sampled_from(["delivered", "read"]),
        st.lists(ids16 | st.just(MINE), min_size=1, max_size=4).map(tuple),
        exts,
    )
    | st.builds(
        UnknownBody,
        st.text(min_size=1, max_size=8).filter(lambda k: k not in ("text", "receipt")),
        st.dictionaries(st.text(max_size=6), values, max_size=3),
    )
)
stored_messages = st.builds(
    StoredMessage,
    id=st.just(MINE),
    conversation_id=ids16,
    peer=st.sampled_from([ALICE.peer_id, CAROL.peer_id]),
    direction=st.sampled_from(list(Direction)),
    kind=st.sampled_from(["text", "reaction"]),
    body=st.binary(max_size=8),
    sent_at_ms=st.integers(0, 2**63),
    stored_at_ms=st.integers(0, 2**63),
    status=st.sampled_from(list(DeliveryStatus)),
)
states = st.builds(
    LocalState,
    me=st.just(BOB.peer_id),
    contact=st.booleans(),
    blocked=st.booleans(),
    targets=st.dictionaries(st.just(MINE), stored_messages, max_size=1),
    read_receipts=st.booleans(),
    has_requests=st.booleans(),
)


@given(
    bodies,
    st.sampled_from([ALICE, CAROL]),
    states,
    st.integers(0, 2**63),
    st.sampled_from(["direct", "mailbox"]),
)
def test_the_machine_never_raises_and_keeps_its_promises(
    body: Body, sender: Identity, state: LocalState, now: int, via: Via
) -> None:
    inner = from_alice(body, sender)
    effects = on_message(inner, state, now, via=via)
    standing = state.standing
    assert effects.outcome in set(TRANSITIONS.values())
    if standing is Standing.BLOCKED:
        assert effects == conversation.Effects("blocked", confirms=effects.confirms)
    # What is stored is announced; what moves is logged, one entry a move.
    received = [e for e in effects.events if e.type is EventType.MESSAGE_RECEIVED]
    assert [e.message_id for e in received] == ([] if effects.store is None else [inner.id])
    statuses = [e for e in effects.events if e.type is EventType.MESSAGE_STATUS]
    assert [(e.message_id, e.status) for e in statuses] == [
        (m.message_id, m.status) for m in effects.status_moves
    ]
    assert all(e.at_ms == now for e in effects.events)
    # A delivered receipt is due exactly for what a mailbox brought and was stored.
    mailbox_stored = via == "mailbox" and effects.store is not None
    assert effects.receipts == (
        (ReceiptDue(sender.peer_id, "delivered", (inner.id,)),) if mailbox_stored else ()
    )
    assert set(effects.confirms) <= set(conversation.targets_of(inner))
    if effects.store is not None:
        assert effects.store.id == inner.id and effects.store.peer == sender.peer_id
        assert effects.store.request == (standing is Standing.STRANGER)
        assert effects.unsupported == isinstance(body, UnknownBody)
    else:
        assert not isinstance(body, TextBody | UnknownBody) or standing is Standing.BLOCKED
    for move in effects.status_moves:
        target = state.targets[move.message_id]
        assert target.peer == sender.peer_id and target.direction is Direction.OUT
    read = on_read(sender.peer_id, (inner.id,), state)
    assert all(due.to == sender.peer_id for due in read.receipts)


# --- the event log's entries ---------------------------------------------------


def test_each_change_has_its_entries_built_in_one_place() -> None:
    out = sent_by_bob(DeliveryStatus.QUEUED)
    assert received_events(out, first_request=True) == ()  # outgoing: its statuses speak
    entry = status_event(out, DeliveryStatus.SENT, 5, "on the wire")
    assert entry == LogEvent(
        EventType.MESSAGE_STATUS, 5, ALICE.peer_id, MINE, DeliveryStatus.SENT, "on the wire", CONV
    )
    request = replace(out, direction=Direction.IN, request=True)
    assert status_event(request, DeliveryStatus.READ, 6).request  # kept with the requests
    assert [e.type for e in received_events(request, first_request=True)] == [
        EventType.CONTACT_REQUEST,
        EventType.MESSAGE_RECEIVED,
    ]
    assert [e.type for e in received_events(request, first_request=False)] == [
        EventType.MESSAGE_RECEIVED
    ]
    contact = Contact(ALICE.peer_id, "alice", added_at_ms=7)
    assert contact_added(contact) == LogEvent(EventType.CONTACT_ADDED, 7, ALICE.peer_id)
