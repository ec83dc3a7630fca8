"""The conversation machine: accepted message + local state in, effects out. No event loop."""

from __future__ import annotations

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
    on_message,
    on_read,
    on_send,
)
from p2pdm.core.identity import Identity
from p2pdm.core.kinds import Body, ReceiptBody, TextBody, UnknownBody
from p2pdm.core.model import (
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
    assert effects.events == (EventType.MESSAGE_RECEIVED,)
    assert effects.status_moves == () and effects.receipts == ()


def test_a_strangers_text_is_a_request() -> None:
    effects = on_message(from_alice(TextBody("hi")), LocalState(BOB.peer_id), NOW)
    assert effects.outcome == "request" and effects.store is not None and effects.store.request


def test_a_blocked_contact_changes_nothing() -> None:
    blocked = LocalState(BOB.peer_id, contact=True, blocked=True, targets={MINE: sent_by_bob()})
    for body in (TextBody("hi"), ReceiptBody("read", (MINE,)), UnknownBody("poke", {})):
        effects = on_message(from_alice(body), blocked, NOW)
        assert effects == conversation.Effects("blocked")


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
    assert effects.events == (EventType.MESSAGE_STATUS,)
    # Carol cannot confirm what Bob sent Alice.
    carol = on_message(from_alice(ReceiptBody("read", (MINE,)), CAROL), state, NOW)
    assert carol.outcome == "receipt" and carol.status_moves == ()
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
)


@given(bodies, st.sampled_from([ALICE, CAROL]), states, st.integers(0, 2**63))
def test_the_machine_never_raises_and_keeps_its_promises(
    body: Body, sender: Identity, state: LocalState, now: int
) -> None:
    inner = from_alice(body, sender)
    effects = on_message(inner, state, now)
    standing = state.standing
    assert effects.outcome in set(TRANSITIONS.values())
    if standing is Standing.BLOCKED:
        assert effects == conversation.Effects("blocked")
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
