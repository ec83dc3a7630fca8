"""The store contract: every test runs against MemoryStore and SQLiteStore alike.

A rule-based state machine at the end drives both stores side by side with
random operations and checks that they always give the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from operator import methodcaller
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import (
    ApiToken,
    Contact,
    DeliveryStatus,
    Direction,
    EventType,
    OutboxItem,
    Recipient,
    StatusChange,
    StoredMessage,
    TokenScope,
    direct_conversation_id,
)
from p2pdm.core.profile import Profile
from p2pdm.errors import NotFound, StoreError
from p2pdm.limits import IDEMPOTENCY_RETENTION_SECONDS, MAX_API_TOKENS, MAX_PAGE_SIZE
from p2pdm.store import MemoryStore, SQLiteStore, Store
from p2pdm.store.base import RequestCaps, RequestUsage, is_unread
from tests.store.conftest import ALICE, BOB, CAROL, receive

ME = PeerId.from_public_key(b"\x01" * 32)
WITH_ALICE = direct_conversation_id(ME, ALICE)
WITH_BOB = direct_conversation_id(ME, BOB)
WITH_CAROL = direct_conversation_id(ME, CAROL)
CONVERSATION_OF = {ALICE: WITH_ALICE, BOB: WITH_BOB, CAROL: WITH_CAROL}


def mid(n: int) -> bytes:
    """A 16-byte message (or envelope) id."""
    return n.to_bytes(16, "big")


def msg(
    n: int,
    peer: PeerId = ALICE,
    *,
    direction: Direction = Direction.IN,
    status: DeliveryStatus | None = None,
    request: bool = False,
    at_ms: int = 1_000,
) -> StoredMessage:
    if status is None:
        status = DeliveryStatus.DELIVERED if direction == Direction.IN else DeliveryStatus.QUEUED
    return StoredMessage(
        id=mid(n),
        conversation_id=CONVERSATION_OF[peer],
        peer=peer,
        direction=direction,
        kind="text",
        body=b"\xa1dtext" + n.to_bytes(4, "big"),
        sent_at_ms=at_ms - 5,
        stored_at_ms=at_ms,
        status=status,
        request=request,
    )


def outbox_item(
    n: int, recipient: PeerId = ALICE, *, created: int = 0, next_at: int = 0
) -> OutboxItem:
    return OutboxItem(
        envelope_id=mid(1000 + n),
        message_id=mid(n),
        recipient=recipient,
        envelope=b"sealed" + bytes([n]),
        created_at_ms=created,
        expires_at_ms=created + 14 * 24 * 3600 * 1000,
        next_attempt_at_ms=next_at,
    )


def contact(peer: PeerId, name: str, added_at_ms: int = 1) -> Contact:
    return Contact(peer_id=peer, name=name, added_at_ms=added_at_ms)


@pytest.fixture(params=["memory", "sqlite", "sqlcipher"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    opened: Store = (
        MemoryStore()
        if request.param == "memory"
        else SQLiteStore(
            tmp_path / "s.db", key=bytes(range(32)) if request.param == "sqlcipher" else None
        )
    )
    yield opened
    opened.close()


# --- settings ------------------------------------------------------------


def test_settings_round_trip_as_json(store: Store) -> None:
    assert store.get_setting("theme") is None
    assert store.get_setting("theme", "light") == "light"
    store.set_setting("theme", "dark")
    store.set_setting("limits", {"mailboxes": 3, "relays": ("a", "b")})
    store.set_setting("theme", "solarized")
    assert store.get_setting("theme") == "solarized"
    assert store.get_setting("limits") == {"mailboxes": 3, "relays": ["a", "b"]}
    assert store.settings() == {
        "limits": {"mailboxes": 3, "relays": ["a", "b"]},
        "theme": "solarized",
    }


def test_settings_refuse_values_json_cannot_hold(store: Store) -> None:
    with pytest.raises(StoreError, match="not JSON"):
        store.set_setting("bad", b"bytes")
    with pytest.raises(StoreError, match="not JSON"):
        store.set_setting("bad", float("nan"))
    assert store.settings() == {}


# --- contacts ------------------------------------------------------------


def test_contacts_crud(store: Store) -> None:
    full = Contact(
        peer_id=ALICE,
        name="Alice",
        added_at_ms=5,
        bundle=b"bundle",
        addrs=("/ip4/10.0.0.1/tcp/4001", "/ip4/1.2.3.4/tcp/4001"),
        last_seen_ms=99,
        verified=True,
        blocked=False,
    )
    store.put_contact(full)
    store.put_contact(contact(BOB, "bob"))
    assert store.get_contact(ALICE) == full
    assert store.get_contact(CAROL) is None
    renamed = replace(full, name="Alice W.", addrs=(), bundle=None, verified=False)
    store.put_contact(renamed)
    assert store.get_contact(ALICE) == renamed
    assert [c.peer_id for c in store.list_contacts()] == [ALICE, BOB]
    assert store.delete_contact(ALICE) is True
    assert store.delete_contact(ALICE) is False
    assert store.list_contacts() == [contact(BOB, "bob")]


def test_contacts_listed_by_name_ignoring_case(store: Store) -> None:
    store.put_contact(contact(ALICE, "zoe"))
    store.put_contact(contact(BOB, "Adam"))
    store.put_contact(contact(CAROL, "bea"))
    assert [c.name for c in store.list_contacts()] == ["Adam", "bea", "zoe"]


def test_find_contact_by_name_ignores_case(store: Store) -> None:
    store.put_contact(contact(ALICE, "Ärger Alice"))
    store.put_contact(contact(BOB, "STRASSE"))
    assert store.find_contact_by_name("ärger alice") == contact(ALICE, "Ärger Alice")
    assert store.find_contact_by_name("ÄRGER ALICE") == contact(ALICE, "Ärger Alice")
    assert store.find_contact_by_name("straße") == contact(BOB, "STRASSE")
    assert store.find_contact_by_name("ärger") is None


def test_find_contact_by_shared_name_gives_the_earliest(store: Store) -> None:
    store.put_contact(contact(BOB, "sam", added_at_ms=20))
    store.put_contact(contact(ALICE, "Sam", added_at_ms=10))
    found = store.find_contact_by_name("SAM")
    assert found is not None and found.peer_id == ALICE


# --- messages ------------------------------------------------------------


def test_add_and_get_message(store: Store) -> None:
    first = store.add_message(msg(1))
    second = store.add_message(msg(2, direction=Direction.OUT))
    assert first.seq > 0 and second.seq > first.seq
    assert first == replace(msg(1), seq=first.seq)
    assert store.get_message(mid(1)) == first
    assert store.get_message(mid(2)) == second
    assert store.get_message(mid(3)) is None


def test_duplicate_message_id_refused_and_changes_nothing(store: Store) -> None:
    store.add_message(msg(1))
    before = (store.counts(), store.list_conversations())
    with pytest.raises(StoreError, match="already stored"):
        store.add_message(msg(1, BOB, at_ms=5_000))
    assert (store.counts(), store.list_conversations()) == before
    assert store.get_message(mid(1)) == replace(msg(1), seq=1)


def test_messages_page_newest_first_until_next_before_is_none(store: Store) -> None:
    for n in range(12):
        store.add_message(msg(n, at_ms=1_000 + n))
        store.add_message(msg(100 + n, BOB))
    seen: list[bytes] = []
    before = None
    pages = 0
    while True:
        page = store.messages(WITH_ALICE, 5, before)
        pages += 1
        assert [m.seq for m in page.messages] == sorted(
            (m.seq for m in page.messages), reverse=True
        )
        seen.extend(m.id for m in page.messages)
        if page.next_before is None:
            break
        assert page.next_before == page.messages[-1].seq
        before = page.next_before
    assert pages == 3
    assert seen == [mid(n) for n in reversed(range(12))]


def test_messages_page_of_exact_multiple_ends_without_empty_page(store: Store) -> None:
    for n in range(4):
        store.add_message(msg(n))
    first = store.messages(WITH_ALICE, 2)
    second = store.messages(WITH_ALICE, 2, first.next_before)
    assert [m.id for m in second.messages] == [mid(1), mid(0)]
    assert second.next_before is None
    assert store.messages(WITH_BOB, 10).messages == ()
    assert store.messages(WITH_ALICE, 10, before=1).messages == ()


def test_messages_cursor_out_of_range_is_harmless(store: Store) -> None:
    store.add_message(msg(1))
    assert [m.id for m in store.messages(WITH_ALICE, 5, before=2**70).messages] == [mid(1)]
    assert store.messages(WITH_ALICE, 5, before=-(2**70)).messages == ()


def test_messages_limit_capped_at_max_page_size(store: Store) -> None:
    with store.transaction():
        for n in range(MAX_PAGE_SIZE + 3):
            store.add_message(msg(n))
    page = store.messages(WITH_ALICE, MAX_PAGE_SIZE * 10)
    assert len(page.messages) == MAX_PAGE_SIZE
    assert page.next_before is not None
    rest = store.messages(WITH_ALICE, MAX_PAGE_SIZE * 10, page.next_before)
    assert [m.id for m in rest.messages] == [mid(2), mid(1), mid(0)]
    assert rest.next_before is None


def test_messages_limit_below_one_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.messages(WITH_ALICE, 0)


# --- conversations -------------------------------------------------------


def test_conversations_by_recency_with_unread_counts(store: Store) -> None:
    store.add_message(msg(1, ALICE, at_ms=100))
    store.add_message(msg(2, BOB, at_ms=200))
    store.add_message(msg(3, ALICE, at_ms=300))
    store.add_message(msg(4, ALICE, direction=Direction.OUT, at_ms=250))  # late, older time
    store.add_message(msg(5, CAROL, at_ms=200))  # same time as Bob's, stored later
    store.add_message(msg(6, CAROL, status=DeliveryStatus.READ, at_ms=150))
    conversations = store.list_conversations()
    assert [(c.id, c.peer, c.last_message_at_ms, c.unread) for c in conversations] == [
        (WITH_ALICE, ALICE, 300, 2),
        (WITH_CAROL, CAROL, 200, 1),
        (WITH_BOB, BOB, 200, 1),
    ]
    assert not any(c.request for c in conversations)


def test_status_moves_only_forward_and_keeps_history(store: Store) -> None:
    store.add_message(msg(1, direction=Direction.OUT, at_ms=10))
    assert store.set_status(mid(1), DeliveryStatus.SENT, 20) is True
    assert store.set_status(mid(1), DeliveryStatus.SENT, 21) is False
    assert store.set_status(mid(1), DeliveryStatus.QUEUED, 22) is False
    assert store.set_status(mid(1), DeliveryStatus.DELIVERED, 30, "ack") is True
    assert store.set_status(mid(1), DeliveryStatus.DEPOSITED, 31) is False
    assert store.set_status(mid(1), DeliveryStatus.FAILED, 40, "gave up") is True
    assert store.set_status(mid(1), DeliveryStatus.EXPIRED, 50) is False
    message = store.get_message(mid(1))
    assert message is not None and message.status == DeliveryStatus.FAILED
    assert store.status_history(mid(1)) == [
        StatusChange(mid(1), DeliveryStatus.QUEUED, 10),
        StatusChange(mid(1), DeliveryStatus.SENT, 20),
        StatusChange(mid(1), DeliveryStatus.DELIVERED, 30, "ack"),
        StatusChange(mid(1), DeliveryStatus.FAILED, 40, "gave up"),
    ]
    assert store.status_history(mid(9)) == []


def test_an_outgoing_message_has_its_recipient_status(store: Store) -> None:
    store.add_message(msg(1, direction=Direction.OUT, at_ms=10))
    store.add_message(msg(2, at_ms=11))
    first = store.get_message(mid(1))
    assert first is not None and first.recipients == (Recipient(ALICE, DeliveryStatus.QUEUED, 10),)
    assert store.set_status(mid(1), DeliveryStatus.SENT, 20, "on the wire")
    assert store.set_status(mid(1), DeliveryStatus.DELIVERED, 30, recipient=ALICE)
    page = store.messages(WITH_ALICE, 10).messages
    assert [(m.id, m.status, m.recipients) for m in page] == [
        (mid(2), DeliveryStatus.DELIVERED, ()),  # incoming: no recipients
        (mid(1), DeliveryStatus.DELIVERED, (Recipient(ALICE, DeliveryStatus.DELIVERED, 30),)),
    ]
    with pytest.raises(NotFound, match="not a recipient"):
        store.set_status(mid(1), DeliveryStatus.READ, 40, recipient=BOB)
    assert store.get_message(mid(1)) == page[1]


def test_a_message_to_several_is_as_far_as_its_least_advanced_recipient(store: Store) -> None:
    everyone = tuple(Recipient(p, DeliveryStatus.QUEUED, 10) for p in (CAROL, ALICE, BOB))
    stored = store.add_message(
        replace(msg(1, direction=Direction.OUT, at_ms=10), recipients=everyone)
    )
    assert [r.peer for r in stored.recipients] == sorted((ALICE, BOB, CAROL), key=lambda p: p.raw)
    after = store.event_bounds()[1]
    # One recipient ahead of the others: its own row moves, the message does not;
    # the event names that recipient and keeps the message's own status.
    assert store.set_status(mid(1), DeliveryStatus.DELIVERED, 20, "ack", recipient=BOB) is True
    assert store.set_status(mid(1), DeliveryStatus.DELIVERED, 21, recipient=BOB) is False
    message = store.get_message(mid(1))
    assert message is not None and message.status == DeliveryStatus.QUEUED
    [event] = store.events(after, 10)
    assert (event.status, event.peer, event.detail) == (DeliveryStatus.QUEUED, BOB, "ack")
    # Everyone on the wire: the message is "sent", BOB stays delivered.
    assert store.set_status(mid(1), DeliveryStatus.SENT, 30) is True
    message = store.get_message(mid(1))
    assert message is not None and message.status == DeliveryStatus.SENT
    statuses = {r.peer: (r.status, r.at_ms) for r in message.recipients}
    assert statuses == {
        ALICE: (DeliveryStatus.SENT, 30),
        BOB: (DeliveryStatus.DELIVERED, 20),
        CAROL: (DeliveryStatus.SENT, 30),
    }
    delivered = sum(r.status == DeliveryStatus.DELIVERED for r in message.recipients)
    assert (delivered, len(message.recipients)) == (1, 3)  # "delivered to 1 of 3"
    for peer, at in ((ALICE, 40), (CAROL, 50)):
        assert store.set_status(mid(1), DeliveryStatus.DELIVERED, at, recipient=peer)
    assert [(c.status, c.at_ms) for c in store.status_history(mid(1))] == [
        (DeliveryStatus.QUEUED, 10),
        (DeliveryStatus.SENT, 30),
        (DeliveryStatus.DELIVERED, 50),
    ]
    # An event each time any recipient moved: the message's own status, and who moved
    # (the message's peer when several did at once).
    assert [(e.status, e.at_ms, e.peer) for e in store.events(after, 10)] == [
        (DeliveryStatus.QUEUED, 20, BOB),
        (DeliveryStatus.SENT, 30, stored.peer),
        (DeliveryStatus.SENT, 40, ALICE),
        (DeliveryStatus.DELIVERED, 50, CAROL),
    ]


def test_a_conversation_by_its_id(store: Store) -> None:
    store.add_message(msg(1, ALICE, at_ms=10))
    store.add_message(msg(2, BOB, direction=Direction.OUT, at_ms=20))
    for found in store.list_conversations():
        assert store.get_conversation(found.id) == found
    conversation = store.get_conversation(WITH_BOB)
    assert conversation is not None and conversation.peer == BOB
    assert store.get_conversation(WITH_CAROL) is None


def test_set_status_of_unknown_message_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.set_status(mid(1), DeliveryStatus.SENT, 1)


def test_reading_one_incoming_message_lowers_unread(store: Store) -> None:
    store.add_message(msg(1))
    store.add_message(msg(2))
    assert store.set_status(mid(1), DeliveryStatus.READ, 5)
    assert store.list_conversations()[0].unread == 1
    assert store.counts()["unread"] == 1


def test_mark_conversation_read(store: Store) -> None:
    store.add_message(msg(1, at_ms=10))
    store.add_message(msg(2, direction=Direction.OUT, at_ms=11))
    store.add_message(msg(3, at_ms=12))
    store.add_message(msg(4, status=DeliveryStatus.READ, at_ms=13))
    store.add_message(msg(5, BOB))
    assert store.mark_conversation_read(WITH_ALICE, 50) == [mid(1), mid(3)]
    assert store.mark_conversation_read(WITH_ALICE, 60) == []
    assert store.mark_conversation_read(b"\x00" * 16, 60) == []
    statuses = {m.id: m.status for m in store.messages(WITH_ALICE, 10).messages}
    assert statuses == {
        mid(1): DeliveryStatus.READ,
        mid(2): DeliveryStatus.QUEUED,
        mid(3): DeliveryStatus.READ,
        mid(4): DeliveryStatus.READ,
    }
    assert store.status_history(mid(3))[-1] == StatusChange(mid(3), DeliveryStatus.READ, 50)
    unread = {c.peer: c.unread for c in store.list_conversations()}
    assert unread == {ALICE: 0, BOB: 1}


# --- message requests ----------------------------------------------------


def test_requests_counted_apart_until_accepted(store: Store) -> None:
    store.add_message(msg(1, ALICE))
    store.add_message(msg(2, BOB, request=True))
    store.add_message(msg(3, BOB, request=True))
    store.add_message(msg(4, CAROL, request=True))
    by_peer = {c.peer: c for c in store.list_conversations()}
    assert (by_peer[ALICE].request, by_peer[BOB].request, by_peer[CAROL].request) == (
        False,
        True,
        True,
    )
    assert by_peer[BOB].unread == 2
    counts = store.counts()
    assert (counts["unread"], counts["requests"]) == (1, 3)

    assert store.accept_request(BOB) == 2
    assert store.accept_request(BOB) == 0
    by_peer = {c.peer: c for c in store.list_conversations()}
    assert by_peer[BOB].request is False and by_peer[CAROL].request is True
    message = store.get_message(mid(2))
    assert message is not None and message.request is False
    counts = store.counts()
    assert (counts["unread"], counts["requests"]) == (3, 1)


def test_a_normal_message_ends_a_request_conversation(store: Store) -> None:
    store.add_message(msg(1, BOB, request=True))
    store.add_message(msg(2, BOB, direction=Direction.OUT))
    assert store.list_conversations()[0].request is False
    assert store.counts()["requests"] == 1  # the incoming request itself stays one


def capped(kind: str, tmp_path: Any, caps: RequestCaps, **bounds: Any) -> Store:
    if kind == "memory":
        return MemoryStore(request_caps=caps, **bounds)
    return SQLiteStore(tmp_path / "capped.db", request_caps=caps, **bounds)


def sized(n: int, peer: PeerId, size: int) -> StoredMessage:
    return replace(msg(n, peer, request=True, at_ms=1_000 + n), body=bytes(size))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_strangers_pending_requests_are_capped_oldest_dropped_first(
    kind: str, tmp_path: Any
) -> None:
    store = capped(kind, tmp_path, RequestCaps(3, 100, 50, 10_000))
    for n in range(1, 6):  # five from Bob: the oldest two go
        store.add_message(sized(n, BOB, 10))
    assert [m.id for m in store.messages(WITH_BOB, 10).messages] == [mid(5), mid(4), mid(3)]
    assert store.get_message(mid(1)) is None and store.status_history(mid(1)) == []
    assert store.request_usage() == RequestUsage(3, 30, 2, 20)
    assert store.counts()["requests"] == 3 and store.counts()["requests_dropped"] == 2
    [conversation] = store.list_conversations()
    assert (conversation.peer, conversation.unread, conversation.request) == (BOB, 3, True)
    store.add_message(sized(6, BOB, 95))  # over Bob's 100 bytes: all his older ones go
    assert [m.id for m in store.messages(WITH_BOB, 10).messages] == [mid(6)]
    assert store.request_usage() == RequestUsage(1, 95, 5, 50)
    store.add_message(sized(7, CAROL, 10))  # someone else's are untouched
    assert store.request_usage().messages == 2
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_all_pending_requests_together_are_capped(kind: str, tmp_path: Any) -> None:
    store = capped(kind, tmp_path, RequestCaps(10, 1_000, 4, 45))
    store.add_message(msg(100, ALICE))  # a contact's message is never dropped
    for n, peer in enumerate([BOB, CAROL, BOB, CAROL, BOB], start=1):
        store.add_message(sized(n, peer, 10))
    usage = store.request_usage()
    assert (usage.messages, usage.bytes, usage.dropped) == (4, 40, 1)
    assert store.get_message(mid(1)) is None and store.get_message(mid(100)) is not None
    store.add_message(sized(6, ALICE, 20))  # bytes: 60 > 45, the two oldest go
    assert [n for n in range(1, 7) if store.get_message(mid(n))] == [4, 5, 6]
    assert store.request_usage() == RequestUsage(3, 40, 3, 30)
    store.accept_request(CAROL)  # accepted messages no longer count
    assert store.request_usage().messages == 2
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_dropping_requests_rolls_back_with_the_insert(kind: str, tmp_path: Any) -> None:
    store = capped(kind, tmp_path, RequestCaps(1, 100, 10, 1_000))
    store.add_message(sized(1, BOB, 10))
    with pytest.raises(Boom), store.transaction():
        store.add_message(sized(2, BOB, 10))
        assert store.get_message(mid(1)) is None
        raise Boom
    assert store.get_message(mid(1)) is not None
    assert store.request_usage() == RequestUsage(1, 10, 0, 0)
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_request_events_are_pruned_apart_from_contacts_events(kind: str, tmp_path: Any) -> None:
    store = capped(kind, tmp_path, RequestCaps(), max_events=3, max_request_events=2)
    receive(store, msg(1, ALICE))  # event 1
    receive(store, msg(2, ALICE))  # event 2
    for n in range(3, 13):  # a flood: contact.request + 10 message.received
        receive(store, msg(n, BOB, request=True))
    store.set_status(mid(12), DeliveryStatus.READ, 2_000)  # about a request: a request event
    ids = [(e.type, e.message_id) for e in store.events(0, 50)]
    assert ids[:2] == [(EventType.MESSAGE_RECEIVED, mid(1)), (EventType.MESSAGE_RECEIVED, mid(2))]
    assert ids[2:] == [
        (EventType.MESSAGE_RECEIVED, mid(12)),
        (EventType.MESSAGE_STATUS, mid(12)),
    ]
    assert store.events_pruned() == (0, 12)  # nothing of the main log was pruned
    assert store.event_bounds() == (1, 14)
    receive(store, msg(13, ALICE))
    receive(store, msg(14, ALICE))  # the main log's own cap still holds
    assert [e.message_id for e in store.events(0, 50) if e.peer == ALICE] == [
        mid(2),
        mid(13),
        mid(14),
    ]
    assert store.events_pruned() == (1, 12)
    store.close()


# --- replay protection ---------------------------------------------------


def test_seen_ids_and_purge(store: Store) -> None:
    store.mark_seen(mid(1), 100)
    store.mark_seen(mid(2), 200)
    store.mark_seen(mid(3), 300)
    store.mark_seen(mid(1), 250)  # seen again: remembered longer
    store.mark_seen(mid(3), 50)  # an older sighting does not shorten it
    assert store.has_seen(mid(1)) and not store.has_seen(mid(4))
    assert store.purge_seen(260) == 2
    assert [store.has_seen(mid(n)) for n in (1, 2, 3)] == [False, False, True]
    assert store.purge_seen(260) == 0


# --- sessions and prekeys ------------------------------------------------


def test_sessions_and_prekeys_round_trip(store: Store) -> None:
    assert store.get_session(ALICE) is None
    store.put_session(ALICE, b"ratchet-1", 10)
    store.put_session(BOB, b"ratchet-bob", 10)
    store.put_session(ALICE, b"ratchet-2", 20)
    assert store.get_session(ALICE) == b"ratchet-2"
    store.delete_session(ALICE)
    store.delete_session(ALICE)
    assert store.get_session(ALICE) is None
    assert store.get_session(BOB) == b"ratchet-bob"
    assert store.get_prekeys() is None
    store.put_prekeys(b"prekeys-1")
    store.put_prekeys(b"prekeys-2")
    assert store.get_prekeys() == b"prekeys-2"


# --- outbox --------------------------------------------------------------


def test_outbox_due_earliest_first(store: Store) -> None:
    store.add_outbox(outbox_item(1, created=5, next_at=30))
    store.add_outbox(outbox_item(2, created=2, next_at=10))
    store.add_outbox(outbox_item(3, BOB, created=1, next_at=10))
    store.add_outbox(outbox_item(4, created=0, next_at=99))
    assert [i.envelope_id for i in store.outbox_due(30, 10)] == [mid(1003), mid(1002), mid(1001)]
    assert [i.envelope_id for i in store.outbox_due(30, 1)] == [mid(1003)]
    assert store.outbox_due(9, 10) == []
    assert store.get_outbox(mid(1001)) == outbox_item(1, created=5, next_at=30)
    assert store.get_outbox(mid(1999)) is None
    assert store.outbox_count() == 4


def test_outbox_ties_go_in_queued_order(store: Store) -> None:
    """Equal times: the order the envelopes were queued, not their ids (which
    hash ciphertext), so a replayed run sends them in the same order."""
    for n in (3, 1, 2):
        store.add_outbox(outbox_item(n, created=7, next_at=10))
    queued = [mid(1003), mid(1001), mid(1002)]
    assert [i.envelope_id for i in store.outbox_due(10, 10)] == queued
    assert [i.envelope_id for i in store.outbox_for(ALICE)] == queued
    assert [i.envelope_id for i in store.outbox_for(ALICE, due_at_ms=10)] == queued
    store.reschedule_outbox(mid(1003), 10, 1, "refused")
    assert [i.envelope_id for i in store.outbox_due(10, 10)] == queued


def test_outbox_duplicate_envelope_refused(store: Store) -> None:
    store.add_outbox(outbox_item(1))
    with pytest.raises(StoreError, match="already in the outbox"):
        store.add_outbox(outbox_item(1, created=9))
    assert store.outbox_count() == 1


def test_outbox_reschedule_remove_and_per_recipient(store: Store) -> None:
    store.add_outbox(outbox_item(1, created=1, next_at=10))
    store.add_outbox(outbox_item(2, BOB, created=2, next_at=10))
    store.add_outbox(outbox_item(3, created=3, next_at=10))
    store.reschedule_outbox(mid(1001), 500, 1, "connection refused")
    assert [i.envelope_id for i in store.outbox_due(100, 10)] == [mid(1002), mid(1003)]
    item = store.get_outbox(mid(1001))
    assert item is not None
    assert (item.next_attempt_at_ms, item.attempts, item.last_error) == (
        500,
        1,
        "connection refused",
    )
    with pytest.raises(NotFound):
        store.reschedule_outbox(mid(1999), 1, 1)
    assert [i.envelope_id for i in store.outbox_for(ALICE)] == [mid(1001), mid(1003)]
    assert store.outbox_for(CAROL) == []
    # Due now (not rescheduled, not expired), oldest first, capped.
    assert [i.envelope_id for i in store.outbox_for(ALICE, due_at_ms=100)] == [mid(1003)]
    assert [i.envelope_id for i in store.outbox_for(ALICE, due_at_ms=500)] == [
        mid(1001),
        mid(1003),
    ]
    assert [i.envelope_id for i in store.outbox_for(ALICE, due_at_ms=500, limit=1)] == [mid(1001)]
    assert store.outbox_for(ALICE, due_at_ms=10**12) == []  # all expired by then
    assert store.remove_outbox(mid(1001)) is True
    assert store.remove_outbox(mid(1001)) is False
    assert store.outbox_count() == 2


# --- counts --------------------------------------------------------------


def test_counts(store: Store) -> None:
    assert store.counts() == {
        "contacts": 0,
        "messages": 0,
        "unread": 0,
        "requests": 0,
        "outbox": 0,
        "requests_dropped": 0,
        "actions_refused": 0,
        "held_actions_dropped": 0,
    }
    store.put_contact(contact(ALICE, "alice"))
    store.add_message(msg(1))
    store.add_message(msg(2, direction=Direction.OUT))
    store.add_message(msg(3, BOB, request=True))
    store.add_outbox(outbox_item(2))
    assert store.counts() == {
        "contacts": 1,
        "messages": 3,
        "unread": 1,
        "requests": 1,
        "outbox": 1,
        "requests_dropped": 0,
        "actions_refused": 0,
        "held_actions_dropped": 0,
    }


# --- transactions --------------------------------------------------------


class Boom(Exception):
    pass


def test_transaction_rolls_back_message_and_session_together(store: Store) -> None:
    store.put_session(ALICE, b"before", 1)
    with pytest.raises(Boom), store.transaction():
        store.add_message(msg(1))
        store.put_session(ALICE, b"after", 2)
        store.mark_seen(mid(1), 2)
        raise Boom
    assert store.get_message(mid(1)) is None
    assert store.get_session(ALICE) == b"before"
    assert not store.has_seen(mid(1))
    assert store.list_conversations() == []
    # and the seq is free again: the next message gets the same one as a fresh store
    assert store.add_message(msg(2)).seq == 1


def test_transaction_commits_everything_together(store: Store) -> None:
    with store.transaction():
        store.add_message(msg(1))
        store.put_session(ALICE, b"after", 2)
    assert store.get_message(mid(1)) is not None
    assert store.get_session(ALICE) == b"after"


def test_failed_call_inside_transaction_leaves_no_trace_but_others_commit(store: Store) -> None:
    store.add_message(msg(1))
    with store.transaction():
        store.add_message(msg(2))
        with pytest.raises(StoreError):
            store.add_message(msg(1, BOB))
        store.put_session(ALICE, b"s", 1)
    assert store.counts()["messages"] == 2
    assert [c.peer for c in store.list_conversations()] == [ALICE]
    assert store.get_session(ALICE) == b"s"


def test_nested_transaction_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="do not nest"), store.transaction():
        store.add_message(msg(1))
        with store.transaction():
            store.add_message(msg(2))
    assert store.get_message(mid(1)) is None
    with store.transaction():  # the store is usable afterwards
        store.add_message(msg(3))
    assert store.get_message(mid(3)) is not None


def test_closed_store_refuses_use(store: Store) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.counts()
    with pytest.raises(StoreError, match="closed"):
        store.add_message(msg(1))


# --- deposits and the mailbox --------------------------------------------


def held(
    n: int, recipient: PeerId = ALICE, *, expires: int = 10_000, size: int = 10
) -> StoredEnvelope:
    """An envelope held for ``recipient``; its bytes depend on ``n`` and ``size``."""
    body = n.to_bytes(4, "big") * (size // 4 + 1)
    return StoredEnvelope(recipient, mid(n), body[:size], 100, expires)


def test_deposits_keep_the_latest_time_and_go_with_the_outbox_item(store: Store) -> None:
    item = outbox_item(1)
    store.add_outbox(item)
    store.add_deposit(item.envelope_id, BOB, 500)
    store.add_deposit(item.envelope_id, CAROL, 700)
    store.add_deposit(item.envelope_id, BOB, 400)  # an older answer does not shorten it
    assert sorted(store.deposits(item.envelope_id)) == sorted([(BOB, 500), (CAROL, 700)])
    assert store.deposits(mid(9)) == []
    store.remove_outbox(item.envelope_id)
    assert store.deposits(item.envelope_id) == []


def test_mailbox_add_fetch_in_order_and_dedupe_by_content(store: Store) -> None:
    first, new = store.mailbox_add(held(1))
    assert new and first.seq > 0
    second, _ = store.mailbox_add(held(2))
    store.mailbox_add(held(3, BOB))
    again, new = store.mailbox_add(held(1))
    assert not new and again == first
    # Same envelope id, other bytes: both kept (ids are chosen by depositors).
    other, new = store.mailbox_add(replace(held(9), envelope_id=mid(1)))
    assert new and other.seq > second.seq
    fetched = store.mailbox_fetch(ALICE, 0, 0, 10)
    assert [e.seq for e in fetched] == [first.seq, second.seq, other.seq]
    assert fetched[0] == first and fetched[0].envelope == held(1).envelope
    assert store.mailbox_fetch(ALICE, first.seq, 0, 1) == [second]
    assert [e.recipient for e in store.mailbox_fetch(BOB, 0, 0, 10)] == [BOB]
    assert store.mailbox_usage(ALICE) == (3, 30) and store.mailbox_usage() == (4, 40)
    assert store.mailbox_recipients() == 2  # Alice and Bob, however many each


def test_mailbox_recipients_counts_each_recipient_once_until_purged(store: Store) -> None:
    assert store.mailbox_recipients() == 0
    store.mailbox_add(held(1, expires=500))
    store.mailbox_add(held(2, expires=900))
    assert store.mailbox_recipients() == 1
    store.mailbox_add(held(3, BOB, expires=500))
    assert store.mailbox_recipients() == 2
    store.mailbox_purge(500)
    assert store.mailbox_recipients() == 1


def test_mailbox_delete_touches_only_the_recipients_own(store: Store) -> None:
    a, _ = store.mailbox_add(held(1))
    b, _ = store.mailbox_add(held(2, BOB))
    assert store.mailbox_delete(ALICE, [b.seq, 999]) == 0
    assert store.mailbox_usage(BOB) == (1, 10)
    assert store.mailbox_delete(ALICE, [a.seq, a.seq]) == 1
    assert store.mailbox_fetch(ALICE, 0, 0, 10) == []
    # Deleted content may be deposited again.
    _, new = store.mailbox_add(held(1))
    assert new


def test_mailbox_usage_per_depositor(store: Store) -> None:
    store.mailbox_add(replace(held(1), depositor=b"mallory"))
    store.mailbox_add(replace(held(2), depositor=b"mallory"))
    store.mailbox_add(replace(held(3), depositor=b"alice"))
    store.mailbox_add(replace(held(4, BOB), depositor=b"mallory"))
    assert store.mailbox_usage(ALICE, b"mallory") == (2, 20)
    assert store.mailbox_usage(ALICE, b"alice") == (1, 10)
    assert store.mailbox_usage(ALICE, b"nobody") == (0, 0)
    assert store.mailbox_usage(ALICE) == (3, 30)
    assert [e.depositor for e in store.mailbox_fetch(BOB, 0, 0, 10)] == [b"mallory"]


def test_mailbox_expiry_hides_then_purge_drops(store: Store) -> None:
    store.mailbox_add(held(1, expires=500))
    store.mailbox_add(held(2, expires=900))
    assert len(store.mailbox_fetch(ALICE, 0, 499, 10)) == 2
    assert [e.envelope_id for e in store.mailbox_fetch(ALICE, 0, 500, 10)] == [mid(2)]
    assert store.mailbox_purge(500) == 1
    assert store.mailbox_usage() == (1, 10)
    assert store.mailbox_purge(10_000) == 1 and store.mailbox_usage() == (0, 0)


def test_mailbox_add_rolls_back_with_its_transaction(store: Store) -> None:
    with pytest.raises(Boom), store.transaction():
        store.mailbox_add(held(1))
        raise Boom
    assert store.mailbox_usage() == (0, 0)


# --- the event log -----------------------------------------------------------


def kinds(store: Store, after: int = 0) -> list[tuple[EventType, PeerId | None, bytes | None]]:
    return [(e.type, e.peer, e.message_id) for e in store.events(after, MAX_PAGE_SIZE)]


def test_storing_a_message_writes_no_event(store: Store) -> None:
    # The caller logs what a received message makes (p2pdm.core.eventlog).
    store.add_message(msg(1, ALICE))
    store.add_message(msg(2, CAROL, request=True))
    store.add_message(msg(3, BOB, direction=Direction.OUT))
    assert store.event_bounds() == (0, 0)


def test_pending_requests_are_known_per_peer(store: Store) -> None:
    assert not store.has_requests(CAROL)
    store.add_message(msg(1, CAROL))  # a contact's message is not a request
    assert not store.has_requests(CAROL)
    store.add_message(msg(2, CAROL, request=True))
    assert store.has_requests(CAROL) and not store.has_requests(ALICE)
    store.accept_request(CAROL)
    assert not store.has_requests(CAROL)


def test_incoming_messages_and_first_requests_are_events(store: Store) -> None:
    assert store.event_bounds() == (0, 0)
    receive(store, msg(1, ALICE))
    receive(store, msg(2, BOB, direction=Direction.OUT))  # outgoing: no event
    receive(store, msg(3, CAROL, request=True))
    receive(store, msg(4, CAROL, request=True))  # not the first request: no contact.request
    assert kinds(store) == [
        (EventType.MESSAGE_RECEIVED, ALICE, mid(1)),
        (EventType.CONTACT_REQUEST, CAROL, mid(3)),
        (EventType.MESSAGE_RECEIVED, CAROL, mid(3)),
        (EventType.MESSAGE_RECEIVED, CAROL, mid(4)),
    ]
    events = store.events(0, 10)
    assert [e.id for e in events] == [1, 2, 3, 4]
    assert events[0].at_ms == 1_000
    assert store.event_bounds() == (1, 4)
    store.accept_request(CAROL)
    receive(store, msg(5, CAROL, request=True))  # pending requests were accepted: first again
    assert kinds(store, 4)[0] == (EventType.CONTACT_REQUEST, CAROL, mid(5))


def test_status_changes_and_reads_are_events(store: Store) -> None:
    store.add_message(msg(1, BOB, direction=Direction.OUT))
    receive(store, msg(2, ALICE))
    receive(store, msg(3, ALICE))
    assert store.set_status(mid(1), DeliveryStatus.SENT, 2_000, "on the wire")
    assert not store.set_status(mid(1), DeliveryStatus.QUEUED, 2_001)  # refused: no event
    assert store.mark_conversation_read(WITH_ALICE, 3_000) == [mid(2), mid(3)]
    assert store.mark_conversation_read(WITH_ALICE, 3_001) == []
    [sent, read2, read3] = store.events(2, 10)
    assert (sent.type, sent.peer, sent.message_id) == (EventType.MESSAGE_STATUS, BOB, mid(1))
    assert (sent.status, sent.detail, sent.at_ms) == (DeliveryStatus.SENT, "on the wire", 2_000)
    assert [(e.message_id, e.status, e.peer) for e in (read2, read3)] == [
        (mid(2), DeliveryStatus.READ, ALICE),
        (mid(3), DeliveryStatus.READ, ALICE),
    ]
    # Events about a message carry its conversation.
    assert sent.conversation_id == WITH_BOB
    assert [e.conversation_id for e in store.events(0, 10)] == [
        WITH_ALICE,  # message.received
        WITH_ALICE,
        WITH_BOB,
        WITH_ALICE,
        WITH_ALICE,
    ]


def test_a_status_change_logged_by_its_caller_writes_no_event(store: Store) -> None:
    store.add_message(msg(1, BOB, direction=Direction.OUT))
    assert store.set_status(mid(1), DeliveryStatus.READ, 2_000, "receipt", event=False)
    assert store.events(0, 10) == []
    assert [c.status for c in store.status_history(mid(1))][-1] == DeliveryStatus.READ


def test_a_new_contact_is_an_event_a_rename_is_not(store: Store) -> None:
    store.put_contact(contact(ALICE, "alice", 7))
    store.put_contact(contact(ALICE, "Alice B.", 7))
    assert [(e.type, e.peer, e.at_ms) for e in store.events(0, 10)] == [
        (EventType.CONTACT_ADDED, ALICE, 7)
    ]


def test_events_filter_by_type_and_peer_and_page(store: Store) -> None:
    for n in range(1, 7):
        store.add_event(EventType.PEER_ONLINE if n % 2 else EventType.PEER_OFFLINE, n, ALICE)
    store.add_event(EventType.PEER_ONLINE, 7, BOB)
    store.add_event(EventType.PEER_ONLINE, 8)  # about no peer
    assert [e.id for e in store.events(0, 3)] == [1, 2, 3]
    assert [e.id for e in store.events(3, 3)] == [4, 5, 6]
    assert [e.id for e in store.events(0, 10, types={EventType.PEER_OFFLINE})] == [2, 4, 6]
    assert [e.id for e in store.events(0, 10, peers={BOB})] == [7]
    assert store.events(0, 10, peers=set()) == []
    assert store.events(0, 10, types=set()) == []
    online = {EventType.PEER_ONLINE}
    assert [e.id for e in store.events(2, 2, types=online, peers={ALICE, BOB})] == [3, 5]
    assert [e.peer for e in store.events(7, 10)] == [None]
    assert store.events(8, 10) == [] and store.events(2**63 - 1, 10) == []
    with pytest.raises(StoreError):
        store.events(0, 0)


def test_events_roll_back_with_their_transaction(store: Store) -> None:
    store.add_message(msg(1, BOB, direction=Direction.OUT))
    with pytest.raises(Boom), store.transaction():
        store.set_status(mid(1), DeliveryStatus.SENT, 5)
        store.put_contact(contact(BOB, "bob"))
        raise Boom
    assert store.events(0, 10) == [] and store.event_bounds() == (0, 0)
    with store.transaction():
        store.set_status(mid(1), DeliveryStatus.SENT, 5)
    assert [e.id for e in store.events(0, 10)] == [1]  # the id of the rolled back one is reused


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_event_log_keeps_the_newest_max_events(kind: str, tmp_path: Any) -> None:
    small: Store = (
        MemoryStore(max_events=3)
        if kind == "memory"
        else SQLiteStore(tmp_path / "s.db", max_events=3)
    )
    woken: list[int] = []
    small.set_event_listener(lambda: woken.append(1))
    for n in range(5):
        small.add_event(EventType.PEER_ONLINE, n, ALICE)
    assert [e.id for e in small.events(0, 10)] == [3, 4, 5]
    assert small.event_bounds() == (3, 5)
    assert len(woken) == 5
    small.set_event_listener(None)
    small.add_event(EventType.PEER_OFFLINE, 9)
    assert len(woken) == 5
    small.close()


def test_listener_is_called_for_events_from_every_path(store: Store) -> None:
    woken: list[int] = []
    store.set_event_listener(lambda: woken.append(store.event_bounds()[1]))
    store.add_message(msg(1, BOB, direction=Direction.OUT))
    assert woken == []
    store.set_status(mid(1), DeliveryStatus.SENT, 5)
    receive(store, msg(2, ALICE))
    store.mark_conversation_read(WITH_ALICE, 6)
    store.put_contact(contact(CAROL, "carol"))
    assert woken and woken[-1] == store.event_bounds()[1] == 4


# --- idempotency keys and API tokens ----------------------------------------------


def test_idempotency_keys_remember_the_message_per_scope(store: Store) -> None:
    assert store.sent_with("bot", "k1") is None
    store.remember_send("bot", "k1", mid(1), 1_000)
    store.remember_send("other-bot", "k1", mid(2), 1_000)
    assert store.sent_with("bot", "k1") == mid(1)
    assert store.sent_with("other-bot", "k1") == mid(2)
    with pytest.raises(StoreError, match="already used"):
        store.remember_send("bot", "k1", mid(3), 1_001)
    assert store.sent_with("bot", "k1") == mid(1)
    later = 1_000 + IDEMPOTENCY_RETENTION_SECONDS * 1000 + 1
    store.remember_send("bot", "k2", mid(4), later)  # forgets the expired ones
    assert store.sent_with("bot", "k1") is None
    assert store.sent_with("bot", "k2") == mid(4)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_idempotency_keys_are_capped_oldest_first(kind: str, tmp_path: Any) -> None:
    small: Store = (
        MemoryStore(max_idempotency_keys=2)
        if kind == "memory"
        else SQLiteStore(tmp_path / "s.db", max_idempotency_keys=2)
    )
    for n in range(3):
        small.remember_send("bot", f"k{n}", mid(n), 1_000)
    assert [small.sent_with("bot", f"k{n}") for n in range(3)] == [None, mid(1), mid(2)]
    small.close()


def token(name: str, n: int, scope: TokenScope = TokenScope.READ, *peers: PeerId) -> ApiToken:
    return ApiToken(name, bytes([n]) * 32, scope, tuple(peers), created_at_ms=n)


def test_api_tokens_crud(store: Store) -> None:
    assert store.list_tokens() == []
    store.put_token(token("zed", 1, TokenScope.SEND, ALICE, BOB))
    store.put_token(token("amy", 2))
    assert store.list_tokens() == [token("amy", 2), token("zed", 1, TokenScope.SEND, ALICE, BOB)]
    with pytest.raises(StoreError, match="exists"):
        store.put_token(token("amy", 3))
    with pytest.raises(StoreError, match="exists"):
        store.put_token(token("bea", 1))  # same secret hash
    assert store.delete_token("amy") and not store.delete_token("amy")
    assert [t.name for t in store.list_tokens()] == ["zed"]


def test_api_tokens_are_capped(store: Store) -> None:
    for n in range(MAX_API_TOKENS):
        store.put_token(token(f"t{n:03d}", n))
    with pytest.raises(StoreError, match="revoke one"):
        store.put_token(token("one-more", 255))
    assert len(store.list_tokens()) == MAX_API_TOKENS


# --- both stores, side by side -------------------------------------------

_PEERS = (ALICE, BOB, CAROL)
_peers = st.sampled_from(_PEERS)
_ids = st.integers(0, 5).map(mid)
_envelope_numbers = st.integers(0, 4)
_times = st.integers(0, 12)  # small, so that equal times (ties) are common
_statuses = st.sampled_from(DeliveryStatus)
_names = st.sampled_from(["alice", "Alice", "ÄLICE", "älice", "bob", "Straße", "STRASSE"])
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
_messages = st.builds(
    lambda n, peer, direction, status, request, at: replace(
        msg(0, peer, direction=direction, status=status, request=request, at_ms=at), id=n
    ),
    _ids,
    _peers,
    st.sampled_from(Direction),
    _statuses,
    st.booleans(),
    _times,
)
_outbox_items = st.builds(
    lambda n, peer, created, next_at: outbox_item(n, peer, created=created, next_at=next_at),
    _envelope_numbers,
    _peers,
    _times,
    _times,
)

#: Writes a transaction may run: (name, function applying it to a store).
_Write = tuple[str, Callable[[Store], object]]
_writes: st.SearchStrategy[_Write] = st.one_of(
    _messages.map(lambda m: ("add_message", lambda s: s.add_message(m))),
    st.tuples(_ids, _statuses, _times).map(
        lambda a: ("set_status", lambda s: s.set_status(a[0], a[1], a[2]))
    ),
    st.tuples(_peers, st.binary(max_size=4)).map(
        lambda a: ("put_session", lambda s: s.put_session(a[0], a[1], 0))
    ),
    st.tuples(_ids, _times).map(lambda a: ("mark_seen", lambda s: s.mark_seen(a[0], a[1]))),
    _outbox_items.map(lambda i: ("add_outbox", lambda s: s.add_outbox(i))),
    _peers.map(lambda p: ("accept_request", lambda s: s.accept_request(p))),
    st.tuples(st.integers(0, 4), _peers).map(
        lambda a: ("mailbox_add", lambda s: s.mailbox_add(held(a[0], a[1])))
    ),
    # What the SQLite store remembers of its reads (HotReads): a write in a
    # transaction that is rolled back must not leave them behind.
    st.tuples(_peers, _names).map(
        lambda a: ("put_contact", lambda s: s.put_contact(Contact(a[0], a[1], 1)))
    ),
    _peers.map(lambda p: ("block_peer", lambda s: s.block_peer(p, 1))),
    st.tuples(_peers, st.integers(0, 3), st.booleans()).map(
        lambda a: (
            "update_conversation",
            lambda s: s.update_conversation(
                CONVERSATION_OF[a[0]], a[0], 1, timer=(a[1], 5), muted=a[2]
            ),
        )
    ),
    st.tuples(st.integers(0, 4), _peers).map(
        lambda a: ("add_deposit", lambda s: s.add_deposit(mid(1000 + a[0]), a[1], 9))
    ),
    st.integers(0, 4).map(lambda n: ("remove_outbox", lambda s: s.remove_outbox(mid(1000 + n)))),
)


class StoresAgree(RuleBasedStateMachine):
    """MemoryStore and SQLiteStore, given the same calls, give the same answers."""

    def __init__(self) -> None:
        super().__init__()
        # Small caps, so that dropped requests and pruned events happen often.
        bounds: dict[str, Any] = {
            "request_caps": RequestCaps(3, 25, 4, 35),
            "max_events": 8,
            "max_request_events": 4,
        }
        self.stores: tuple[Store, Store] = (
            MemoryStore(**bounds),
            SQLiteStore(":memory:", **bounds),
        )

    def teardown(self) -> None:
        for store in self.stores:
            store.close()

    def both(self, call: Callable[[Store], object]) -> object:
        answers = []
        for store in self.stores:
            try:
                answers.append(("ok", call(store)))
            except StoreError as exc:
                answers.append(("raised", type(exc)))
        assert answers[0] == answers[1]
        return answers[0]

    @rule(peer=_peers, name=_names, added=_times, seen=st.none() | _times)
    def put_contact(self, peer: PeerId, name: str, added: int, seen: int | None) -> None:
        addrs = (f"/ip4/10.0.0.{added}/tcp/4001",)
        c = Contact(peer, name, added, addrs=addrs, last_seen_ms=seen, verified=added % 2 == 0)
        self.both(lambda s: s.put_contact(c))

    @rule(peer=_peers)
    def delete_contact(self, peer: PeerId) -> None:
        self.both(lambda s: s.delete_contact(peer))

    @rule(name=_names)
    def find_contact(self, name: str) -> None:
        self.both(lambda s: s.find_contact_by_name(name))

    @initialize(messages=st.lists(_messages, max_size=6))
    def add_first_messages(self, messages: list[StoredMessage]) -> None:
        for message in messages:
            self.both(partial(receive, message=message))

    @rule(messages=st.lists(_messages, min_size=1, max_size=3))
    def add_messages(self, messages: list[StoredMessage]) -> None:
        for message in messages:
            self.both(partial(receive, message=message))

    @rule(
        message=_messages,
        timer_s=st.integers(1, 3),
        expires=st.none() | _times,
    )
    def add_disappearing(self, message: StoredMessage, timer_s: int, expires: int | None) -> None:
        timed = replace(message, timer_s=timer_s, expires_at_ms=expires)
        if expires is not None and is_unread(timed):  # an incoming timer starts on reading
            timed = replace(timed, status=DeliveryStatus.READ)
        self.both(partial(receive, message=timed))

    @rule(now=_times, limit=st.integers(1, 3))
    def expire(self, now: int, limit: int) -> None:
        self.both(lambda s: s.expire_messages(now, limit))

    @rule(message_id=_ids, status=_statuses, at=_times, detail=st.sampled_from(["", "ack"]))
    def set_status(self, message_id: bytes, status: DeliveryStatus, at: int, detail: str) -> None:
        self.both(lambda s: s.set_status(message_id, status, at, detail))

    @rule(peer=_peers)
    def accept_request(self, peer: PeerId) -> None:
        self.both(lambda s: s.accept_request(peer))

    @rule(message_id=_ids, peer=_peers, at=_times, ok=st.booleans())
    def ack(self, message_id: bytes, peer: PeerId, at: int, ok: bool) -> None:
        """As a node applies an ack: the sent mark and the ack's move one after
        the other in an undivided transaction (the SQLite store reads once)."""

        def run(store: Store) -> list[object]:
            answers: list[object] = []
            with store.transaction(undivided=True):
                for status in (DeliveryStatus.SENT, DeliveryStatus.DELIVERED):
                    try:
                        answers.append(store.set_status(message_id, status, at, recipient=peer))
                    except NotFound:
                        answers.append("not found")
                answers.append(store.get_message(message_id))
            return answers

        self.both(run)

    @rule(
        message_id=_ids,
        peer=st.none() | _peers,
        at=_times,
        statuses=st.lists(_statuses, min_size=1, max_size=3),
    )
    def set_statuses(
        self, message_id: bytes, peer: PeerId | None, at: int, statuses: list[DeliveryStatus]
    ) -> None:
        """Several moves in one call (an ack's sent mark and its move), in an
        undivided transaction: the SQLite store writes each row once; the
        memory store's moves one by one are the reference."""

        def run(store: Store) -> list[object]:
            answers: list[object] = []
            with store.transaction(undivided=True):
                try:
                    answers.append(store.set_statuses(message_id, statuses, at, recipient=peer))
                except NotFound:
                    answers.append("not found")
                answers.append(store.get_message(message_id))
            return answers

        self.both(run)

    @rule(
        writes=st.lists(st.tuples(_peers, st.binary(max_size=4), st.booleans()), max_size=4),
        fail=st.booleans(),
    )
    def sessions_in_a_group(self, writes: list[tuple[PeerId, bytes, bool]], fail: bool) -> None:
        """Sessions saved in a group's transactions, some of which fail, and
        the group itself failing or not (the SQLite store saves them when the
        group commits)."""

        def run(store: Store) -> list[object]:
            answers: list[object] = []
            try:
                with store.group():
                    for n, (peer, state, fails) in enumerate(writes):
                        try:
                            with store.transaction():
                                store.put_session(peer, state, n)
                                answers.append(store.get_session(peer))
                                if fails:
                                    raise Boom
                        except Boom:
                            answers.append([store.get_session(p) for p in _PEERS])
                    if fail:
                        raise Boom
            except Boom:
                answers.append("rolled back")
            answers.append([store.get_session(p) for p in _PEERS])
            return answers

        self.both(run)

    @rule(peer=_peers, at=_times, blocked=st.booleans())
    def block(self, peer: PeerId, at: int, blocked: bool) -> None:
        self.both(lambda s: s.block_peer(peer, at) if blocked else s.unblock_peer(peer, at))

    @rule(peer=_peers, timer_s=st.integers(0, 3), set_at=_times, muted=st.none() | st.booleans())
    def update_conversation(
        self, peer: PeerId, timer_s: int, set_at: int, muted: bool | None
    ) -> None:
        conversation_id = CONVERSATION_OF[peer]
        self.both(
            lambda s: s.update_conversation(
                conversation_id, peer, set_at, timer=(timer_s, set_at), muted=muted
            )
        )

    @rule(message_id=_ids)
    def delete_message(self, message_id: bytes) -> None:
        self.both(lambda s: s.delete_message(message_id))

    @rule(peer=_peers)
    def delete_conversation(self, peer: PeerId) -> None:
        self.both(lambda s: s.delete_conversation(CONVERSATION_OF[peer]))

    @rule(message_id=_ids, at=_times)
    def mark_seen(self, message_id: bytes, at: int) -> None:
        self.both(lambda s: s.mark_seen(message_id, at))

    @rule(peer=_peers, state=st.binary(max_size=4), at=_times)
    def put_session(self, peer: PeerId, state: bytes, at: int) -> None:
        self.both(lambda s: s.put_session(peer, state, at))

    @rule(item=_outbox_items)
    def add_outbox(self, item: OutboxItem) -> None:
        self.both(lambda s: s.add_outbox(item))

    @rule(peer=_peers, limit=st.integers(1, 4), before=st.none() | st.integers(0, 12))
    def page(self, peer: PeerId, limit: int, before: int | None) -> None:
        self.both(lambda s: s.messages(CONVERSATION_OF[peer], limit, before))

    @rule(peer=_peers, at=_times)
    def mark_read(self, peer: PeerId, at: int) -> None:
        self.both(lambda s: s.mark_conversation_read(CONVERSATION_OF[peer], at))

    @rule(before=_times)
    def purge_seen(self, before: int) -> None:
        self.both(lambda s: s.purge_seen(before))

    @rule(peer=_peers)
    def delete_session(self, peer: PeerId) -> None:
        self.both(lambda s: s.delete_session(peer))

    @rule(state=st.binary(max_size=4))
    def put_prekeys(self, state: bytes) -> None:
        self.both(lambda s: s.put_prekeys(state))

    @rule(
        n=_envelope_numbers, next_at=_times, attempts=st.integers(0, 5), error=st.text(max_size=3)
    )
    def reschedule(self, n: int, next_at: int, attempts: int, error: str) -> None:
        self.both(lambda s: s.reschedule_outbox(mid(1000 + n), next_at, attempts, error))

    @rule(n=_envelope_numbers)
    def remove_outbox(self, n: int) -> None:
        self.both(lambda s: s.remove_outbox(mid(1000 + n)))

    @rule(now=_times, limit=st.integers(1, 4))
    def outbox_due(self, now: int, limit: int) -> None:
        self.both(lambda s: s.outbox_due(now, limit))

    @rule(n=st.integers(0, 4), peer=_peers, expires=_times, size=st.integers(0, 9))
    def mailbox_add(self, n: int, peer: PeerId, expires: int, size: int) -> None:
        self.both(lambda s: s.mailbox_add(held(n, peer, expires=expires, size=size)))

    @rule(peer=_peers, after=st.integers(0, 6), now=_times, limit=st.integers(1, 4))
    def mailbox_fetch(self, peer: PeerId, after: int, now: int, limit: int) -> None:
        self.both(lambda s: s.mailbox_fetch(peer, after, now, limit))

    @rule(peer=_peers, seqs=st.lists(st.integers(1, 8), max_size=4))
    def mailbox_delete(self, peer: PeerId, seqs: list[int]) -> None:
        self.both(lambda s: s.mailbox_delete(peer, seqs))

    @rule(now=_times)
    def mailbox_purge(self, now: int) -> None:
        self.both(lambda s: s.mailbox_purge(now))

    @rule(n=_envelope_numbers, peer=_peers, until=_times)
    def add_deposit(self, n: int, peer: PeerId, until: int) -> None:
        self.both(lambda s: s.add_deposit(mid(1000 + n), peer, until))

    @rule(key=st.sampled_from(["a", "b"]), value=_json)
    def set_setting(self, key: str, value: object) -> None:
        self.both(lambda s: s.set_setting(key, value))

    @rule(writes=st.lists(_writes, max_size=4), fail=st.booleans())
    def transaction(self, writes: list[_Write], fail: bool) -> None:
        def run(store: Store) -> list[object]:
            answers: list[object] = []
            try:
                with store.transaction():
                    for _, apply in writes:
                        try:
                            answers.append(apply(store))
                        except StoreError as exc:
                            answers.append(type(exc))
                    if fail:
                        raise Boom
            except Boom:
                answers.append("rolled back")
            return answers

        self.both(run)

    @invariant()
    def same_state(self) -> None:
        self.both(lambda s: s.counts())
        self.both(lambda s: s.next_expiry_ms())
        self.both(lambda s: s.list_conversations())
        self.both(lambda s: s.list_contacts())
        # Read one by one too: the SQLite store remembers these reads (HotReads).
        self.both(lambda s: [s.get_contact(peer) for peer in _PEERS])
        self.both(lambda s: [s.get_conversation(CONVERSATION_OF[peer]) for peer in _PEERS])
        self.both(lambda s: [s.conversation_answered(CONVERSATION_OF[peer]) for peer in _PEERS])
        self.both(lambda s: s.settings())
        self.both(lambda s: s.get_prekeys())
        self.both(lambda s: s.events(0, MAX_PAGE_SIZE))
        self.both(lambda s: s.event_bounds())
        self.both(lambda s: s.events_pruned())
        self.both(lambda s: s.request_usage())
        self.both(lambda s: [s.outbox_for(peer) for peer in _PEERS])
        self.both(lambda s: [s.outbox_for(peer, due_at_ms=1500, limit=2) for peer in _PEERS])
        self.both(lambda s: [s.get_session(peer) for peer in _PEERS])
        self.both(lambda s: [s.mailbox_usage(peer) for peer in (*_PEERS, None)])
        self.both(lambda s: s.mailbox_recipients())
        self.both(lambda s: [s.mailbox_fetch(peer, 0, 0, 50) for peer in _PEERS])
        self.both(lambda s: [s.deposits(mid(1000 + n)) for n in range(5)])
        for n in range(6):
            self.both(methodcaller("get_message", mid(n)))
            self.both(methodcaller("status_history", mid(n)))
            self.both(methodcaller("has_seen", mid(n)))


StoresAgree.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestStoresAgree = StoresAgree.TestCase


# --- groups: one commit for many transactions -------------------------------------


def test_a_group_keeps_what_succeeded_and_drops_what_failed(store: Store) -> None:
    with store.group():
        with store.transaction():
            store.set_setting("a", 1)
        with pytest.raises(RuntimeError), store.transaction():
            store.set_setting("b", 2)
            raise RuntimeError("this one fails alone")
        with store.transaction():
            store.set_setting("c", 3)
    assert store.settings() == {"a": 1, "c": 3}


def test_a_failing_group_keeps_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.group():
        with store.transaction():
            store.set_setting("a", 1)
        raise RuntimeError("the group fails")
    assert store.get_setting("a") is None


def test_groups_do_not_nest_or_start_in_a_transaction(store: Store) -> None:
    with pytest.raises(StoreError, match="cannot be nested"), store.group(), store.group():
        pass
    with pytest.raises(StoreError, match="cannot be nested"), store.transaction(), store.group():
        pass


def test_blocking_is_kept_logged_and_read_into_the_contact(store: Store) -> None:
    store.put_contact(contact(ALICE, "alice"))
    assert store.block_peer(ALICE, 10) and store.block_peer(CAROL, 20)
    assert store.block_peer(ALICE, 30) is False  # already blocked: nothing changes
    assert store.is_blocked(ALICE) and not store.is_blocked(BOB)
    assert [(b.peer_id, b.blocked_at_ms) for b in store.list_blocked()] == [
        (CAROL, 20),
        (ALICE, 10),
    ]
    found = store.get_contact(ALICE)
    assert found is not None and found.blocked
    assert [c.blocked for c in store.list_contacts()] == [True]
    assert store.unblock_peer(ALICE, 40) and not store.unblock_peer(ALICE, 50)
    found = store.get_contact(ALICE)
    assert found is not None and not found.blocked
    kinds = [(e.type, e.peer) for e in store.events(0, 100) if e.type != EventType.CONTACT_ADDED]
    assert kinds == [
        (EventType.CONTACT_BLOCKED, ALICE),
        (EventType.CONTACT_BLOCKED, CAROL),
        (EventType.CONTACT_UNBLOCKED, ALICE),
    ]


def test_requests_are_listed_per_sender_and_declined_without_counting(store: Store) -> None:
    receive(store, msg(1, CAROL, request=True, at_ms=100))
    receive(store, msg(2, CAROL, request=True, at_ms=200))
    receive(store, msg(3, ALICE))  # a contact's message is not a request
    listed = store.list_requests()
    assert [(r.peer_id, r.count, r.first.id, r.last_at_ms) for r in listed] == [
        (CAROL, 2, mid(1), 200)
    ]
    assert store.delete_requests(CAROL) == 2 and store.delete_requests(CAROL) == 0
    assert store.list_requests() == [] and store.get_message(mid(1)) is None
    assert store.get_conversation(CONVERSATION_OF[CAROL]) is None
    assert store.get_message(mid(3)) is not None
    assert store.request_usage().dropped == 0  # declined, not dropped over the caps


def test_a_conversation_is_answered_by_a_message_from_the_peer_or_a_read(store: Store) -> None:
    store.add_message(msg(1, BOB, direction=Direction.OUT))
    assert not store.conversation_answered(CONVERSATION_OF[BOB])
    store.set_status(mid(1), DeliveryStatus.READ, 5)
    assert store.conversation_answered(CONVERSATION_OF[BOB])
    assert not store.conversation_answered(CONVERSATION_OF[CAROL])
    store.add_message(msg(2, CAROL))
    assert store.conversation_answered(CONVERSATION_OF[CAROL])


def test_the_profile_round_trips_and_clears(store: Store) -> None:
    assert store.get_profile() is None  # opt-in: none until set
    profile = Profile("Alice K", "alice.k", "bio", b"\xff\xd8\xff" + bytes(100))
    store.put_profile(profile, 5)
    assert store.get_profile() == profile
    store.put_profile(Profile(name="Alice"), 6)
    assert store.get_profile() == Profile(name="Alice")
    store.put_profile(Profile(), 7)  # an empty profile is none
    assert store.get_profile() is None
    store.put_profile(profile, 8)
    store.put_profile(None, 9)
    assert store.get_profile() is None


def test_handle_claims_keep_their_first_sighting_and_are_bounded(store: Store) -> None:
    assert store.note_handle_claims("alice", [ALICE, BOB], 100, cap=3) == {ALICE: 100, BOB: 100}
    assert store.note_handle_claims("alice", [CAROL, ALICE], 200, cap=3) == {
        CAROL: 200,
        ALICE: 100,
    }
    # The longest seen first, ties by PeerID.
    oldest = sorted([ALICE, BOB], key=lambda p: p.raw)
    assert store.handle_claimants("alice", 10) == [*oldest, CAROL]
    # Over the cap: the least recently seen claim (bob's, at 100) goes first.
    store.note_handle_claims("bob", [ME], 300, cap=3)
    assert BOB not in store.handle_claimants("alice", 10)
    assert store.handle_claimants("alice", 10) == [ALICE, CAROL]
    assert store.handle_claimants("alice", 1) == [ALICE]
    assert store.handle_claimants("bob", 10) == [ME]
    assert store.handle_claimants("carol", 10) == []


def test_a_note_for_one_recipient_is_that_recipients_detail_while_it_waits(store: Store) -> None:
    everyone = tuple(Recipient(p, DeliveryStatus.QUEUED, 10) for p in (ALICE, BOB))
    store.add_message(replace(msg(1, direction=Direction.OUT, at_ms=10), recipients=everyone))
    assert store.set_status(mid(1), DeliveryStatus.DELIVERED, 20, recipient=ALICE)
    assert store.note_status(mid(1), 30, "bob is not reachable", recipient=BOB) is True
    # A delivered recipient keeps its own (empty) detail; the note is also history.
    assert store.note_status(mid(1), 31, "alice is slow", recipient=ALICE) is True
    message = store.get_message(mid(1))
    assert message is not None
    details = {r.peer: r.detail for r in message.recipients}
    assert details == {ALICE: "", BOB: "bob is not reachable"}
    assert store.status_history(mid(1))[-1].detail == "alice is slow"
    # Failing later replaces the waiting note with the failure's reason.
    assert store.set_status(mid(1), DeliveryStatus.FAILED, 40, "refused", recipient=BOB)
    message = store.get_message(mid(1))
    assert message is not None
    assert {r.peer: (r.status, r.detail) for r in message.recipients}[BOB] == (
        DeliveryStatus.FAILED,
        "refused",
    )


# --- withdrawals and withdraw hashes ----------------------------------------------


def test_unsending_turns_deposits_into_withdrawals_until_done_or_expired(store: Store) -> None:
    store.add_message(msg(1, direction=Direction.OUT))
    item = replace(outbox_item(5), message_id=mid(1))
    chunk = outbox_item(6)
    store.add_outbox(item)
    store.add_outbox(chunk)
    store.follow_message(chunk.envelope_id, mid(1))
    store.add_deposit(item.envelope_id, BOB, 500)
    store.add_deposit(item.envelope_id, CAROL, 900)
    store.add_deposit(chunk.envelope_id, BOB, 700)
    assert store.withdrawals_count() == 0  # a deposit is not withdrawn by itself
    store.remove_outbox_of(mid(1))
    store.remove_followers_of(mid(1))
    assert store.deposits(item.envelope_id) == store.deposits(chunk.envelope_id) == []
    due = store.withdrawals_due(100, 10)
    assert {(w.envelope_id, w.mailbox, w.until_ms) for w in due} == {
        (item.envelope_id, BOB, 500),
        (item.envelope_id, CAROL, 900),
        (chunk.envelope_id, BOB, 700),
    }
    assert [w.mailbox for w in due] == sorted((w.mailbox for w in due), key=lambda p: p.raw)
    assert len(store.withdrawals_due(100, 1)) == 1
    # A retry waits; done ones go; past the mailbox's own time they go by themselves.
    store.withdrawal_retry(item.envelope_id, CAROL, 1, 300)
    assert (item.envelope_id, CAROL) not in {
        (w.envelope_id, w.mailbox) for w in store.withdrawals_due(200, 10)
    }
    [again] = [w for w in store.withdrawals_due(300, 10) if w.mailbox == CAROL]
    assert again.attempts == 1
    store.withdrawal_done(chunk.envelope_id, BOB)
    assert store.withdrawals_count() == 2
    assert [(w.envelope_id, w.mailbox) for w in store.withdrawals_due(600, 10)] == [
        (item.envelope_id, CAROL)
    ]
    assert store.withdrawals_count() == 1


def test_a_delivered_envelope_leaves_nothing_to_withdraw(store: Store) -> None:
    item = outbox_item(1)
    store.add_outbox(item)
    store.add_deposit(item.envelope_id, BOB, 500)
    store.remove_outbox(item.envelope_id)  # acknowledged: the recipient has it
    assert store.withdrawals_count() == 0


def test_mailbox_withdraw_removes_only_what_its_hashes_name(store: Store) -> None:
    a, _ = store.mailbox_add(replace(held(1), withdraw=b"a" * 32))
    store.mailbox_add(replace(held(2, BOB), withdraw=b"b" * 32))
    store.mailbox_add(held(3))  # deposited without a hash: nobody can withdraw it
    assert store.mailbox_withdraw([b"x" * 32, b""]) == 0
    assert store.mailbox_usage() == (3, 30)
    assert store.mailbox_withdraw([b"a" * 32, b"a" * 32]) == 1
    assert [e.seq for e in store.mailbox_fetch(ALICE, 0, 0, 10)] != [a.seq]
    assert store.mailbox_usage(ALICE) == (1, 10)
    assert store.mailbox_withdraw([b"b" * 32]) == 1 and store.mailbox_usage() == (1, 10)


def test_the_same_bytes_deposited_under_two_hashes_cannot_be_withdrawn(store: Store) -> None:
    first, _ = store.mailbox_add(replace(held(1), withdraw=b"a" * 32))
    same, new = store.mailbox_add(replace(held(1), withdraw=b"m" * 32))
    assert not new and same.seq == first.seq and same.withdraw == b""
    assert store.mailbox_withdraw([b"a" * 32, b"m" * 32]) == 0
    assert store.mailbox_usage() == (1, 10)


def test_live_shares_are_remembered_without_positions(store: Store) -> None:
    store.put_live_share(mid(1), BOB, 5000)
    store.put_live_share(mid(2), None, 7000)
    store.put_live_share(mid(1), BOB, 6000)  # a new share replaces the old
    assert store.live_shares() == [(mid(1), BOB, 6000), (mid(2), None, 7000)]
    assert store.remove_live_share(mid(1)) and not store.remove_live_share(mid(1))
    assert store.live_shares() == [(mid(2), None, 7000)]
