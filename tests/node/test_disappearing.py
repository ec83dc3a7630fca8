"""Disappearing messages, mute and search between two nodes' own code paths
(the delivery service replaced by handing envelopes over)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import trio
import trio.testing

from p2pdm.api.views import event_json
from p2pdm.core import cbor
from p2pdm.core.kinds import LocationBody, spec_for
from p2pdm.core.model import Direction, EventType, StoredMessage, direct_conversation_id
from p2pdm.core.sealing import seal
from p2pdm.errors import SchemaError, StampMissing, WireError
from p2pdm.limits import SENDER_EXPIRY_BACKSTOP_S
from p2pdm.node.housekeeping import purge_loop
from p2pdm.node.media_ops import location_body, with_conversation_timer
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.node.notices import message_notice, message_timer
from p2pdm.store.base import Store
from tests.conftest import deliver
from tests.node.conftest import Clock, make

DAY_MS = 86_400_000


def conv(a: Node, b: Node) -> bytes:
    return direct_conversation_id(a.peer_id, b.peer_id)


def shown(node: Node, other: Node) -> list[StoredMessage]:
    return list(reversed(node.messages(other.peer_id, 50).messages))


def types(node: Node) -> list[EventType]:
    return [e.type for e in node.event_page(0, 200).events]


def test_a_timer_notice_shows_on_both_sides_and_applies_to_later_messages(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    before = alice.send_text(bob.peer_id, "before the timer")
    clock.ms += 1  # handed over in the order they were queued
    changed = alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=86_400)
    assert changed.timer_s == 86_400
    deliver(alice, bob)
    conversation = bob.store.get_conversation(conv(bob, alice))
    assert conversation is not None and conversation.timer_s == 86_400
    for node, other in ((alice, bob), (bob, alice)):
        notices = [message_notice(m) for m in shown(node, other)]
        assert notices == [None, "set disappearing messages to 1 day"], node.name
        assert EventType.CONVERSATION_TIMER in types(node)
    after = alice.send_text(bob.peer_id, "after the timer")
    reply = bob.send_text(alice.peer_id, "a reply")
    assert (message_timer(before), message_timer(after), message_timer(reply)) == (
        0,
        86_400,
        86_400,
    )
    deliver(alice, bob)
    got = bob.store.get_message(after.id)
    assert got is not None and got.timer_s == 86_400 and got.expires_at_ms is None
    # Unchanged: nothing is sent.
    queued = alice.store.outbox_count()
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=86_400)
    assert alice.store.outbox_count() == queued


def test_a_message_disappears_from_both_stores_its_timer_after_it_was_read(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=86_400)
    sent = alice.send_text(bob.peer_id, "the zebracorn plan")
    deliver(alice, bob)
    assert [h.message_id for h in bob.search("zebracorn")] == [sent.id]
    clock.ms += 3 * DAY_MS  # unread: it stays
    assert bob.purge_expired() == [] and alice.purge_expired() == []
    bob.mark_read(alice.peer_id)
    deliver(bob, alice)  # the read receipt starts the sender's timer too
    for node in (alice, bob):
        copy = node.store.get_message(sent.id)
        assert copy is not None and copy.expires_at_ms == clock.ms + DAY_MS
    clock.ms += DAY_MS - 1
    assert bob.purge_expired() == [] and alice.purge_expired() == []
    clock.ms += 1
    assert [m.id for m in bob.purge_expired()] == [sent.id]
    assert [m.id for m in alice.purge_expired()] == [sent.id]
    for node, other in ((alice, bob), (bob, alice)):
        assert node.store.get_message(sent.id) is None
        assert [message_notice(m) for m in shown(node, other)] == [
            "set disappearing messages to 1 day"
        ]
        assert node.search("zebracorn") == []
        assert EventType.MESSAGE_EXPIRED in types(node)


def test_without_read_receipts_the_senders_copy_and_its_envelope_expire_from_sending(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=300)
    alice.update_settings({"read_receipts": False})
    sent = alice.send_text(bob.peer_id, "short lived")
    assert sent.expires_at_ms == clock.ms + 300_000
    [item] = [i for i in alice.store.outbox_for(bob.peer_id) if i.message_id == sent.id]
    assert item.expires_at_ms <= sent.expires_at_ms + 1000  # mailboxes keep it no longer
    clock.ms += 300_000
    assert [m.id for m in alice.purge_expired()] == [sent.id]
    assert [i.message_id for i in alice.store.outbox_for(bob.peer_id)].count(sent.id) == 0


def test_the_senders_copy_goes_at_the_backstop_when_the_recipient_never_says_it_read_it(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=300)
    bob.update_settings({"read_receipts": False})
    sent = alice.send_text(bob.peer_id, "read, silently")
    deliver(alice, bob)
    bob.mark_read(alice.peer_id)
    deliver(bob, alice)  # nothing: Bob sends no read receipt
    assert sent.expires_at_ms == sent.sent_at_ms + 300_000 + SENDER_EXPIRY_BACKSTOP_S * 1000
    clock.ms = sent.expires_at_ms - 1
    assert alice.purge_expired() == []
    assert [m.id for m in bob.purge_expired()] == [sent.id]  # read long ago
    clock.ms += 1
    assert [m.id for m in alice.purge_expired()] == [sent.id]


def test_the_newest_timer_wins_whatever_order_the_notices_arrive_in(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=86_400)
    clock.ms += 1000
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=3_600)
    items = alice.store.outbox_for(bob.peer_id)
    for item in reversed(items):  # the newer setting first
        bob.messenger.receive(item.envelope)
    conversation = bob.store.get_conversation(conv(bob, alice))
    assert conversation is not None and conversation.timer_s == 3_600


def test_a_timer_outside_the_allowed_set_is_refused_and_nothing_is_sent(
    nodes: tuple[Node, Node],
) -> None:
    alice, bob = nodes
    for bad in (42, -1, 86_401):
        with pytest.raises(SchemaError, match="must be one of"):
            alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=bad)
    assert alice.store.outbox_count() == 0 and alice.store.counts()["messages"] == 0


def test_a_stranger_cannot_set_a_conversations_timer(
    make_store: Callable[[], Store], clock: Clock, nodes: tuple[Node, Node]
) -> None:
    _, bob = nodes
    carol = make("carol", make_store(), clock)
    carol.add_contact_from_invite(bob.invite(), "bob")  # Bob does not know Carol
    carol.update_conversation(conv(carol, bob), bob.peer_id, timer_s=300)
    deliver(carol, bob)
    assert bob.store.get_conversation(conv(bob, carol)) is None
    assert bob.store.counts()["messages"] == 0


def test_a_muted_conversation_stores_without_notifying(nodes: tuple[Node, Node]) -> None:
    alice, bob = nodes
    muted = bob.update_conversation(conv(bob, alice), alice.peer_id, muted=True, archived=True)
    assert (muted.muted, muted.archived) == (True, True)
    alice.send_text(bob.peer_id, "quiet")
    deliver(alice, bob)
    bob.update_conversation(conv(bob, alice), alice.peer_id, muted=False)
    alice.send_text(bob.peer_id, "loud")
    deliver(alice, bob)
    received = [e for e in bob.event_page(0, 50).events if e.type is EventType.MESSAGE_RECEIVED]
    views = [event_json(e, bob.store.get_message(e.message_id or b"")) for e in received]
    assert [(v["message"]["text"], v["notify"]) for v in views] == [
        ("quiet", False),
        ("loud", True),
    ]
    assert [message_text(m) for m in shown(bob, alice)] == ["quiet", "loud"]


def test_search_is_plain_words_and_refuses_what_has_none(nodes: tuple[Node, Node]) -> None:
    alice, bob = nodes
    first = alice.send_text(bob.peer_id, 'she said "hello" NEAR the door')
    second = alice.send_text(bob.peer_id, "hello again")
    assert [h.message_id for h in alice.search("hello")] == [second.id, first.id]
    assert [h.message_id for h in alice.search('"hello" NEAR(')] == [first.id]
    assert alice.search("hello", bob.peer_id, 1)[0].message_id == second.id
    assert all(h.direction == Direction.OUT.value for h in alice.search("hello"))
    for bad in ("", "***", "x" * 1000):
        with pytest.raises(SchemaError):
            alice.search(bad)
    with pytest.raises(SchemaError):
        alice.search("hello", limit=0)


async def test_the_purge_loop_runs_at_start_and_on_its_schedule(
    nodes: tuple[Node, Node], clock: Clock, autojump_clock: trio.testing.MockClock
) -> None:
    alice, bob = nodes
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=300)
    alice.update_settings({"read_receipts": False})
    early = alice.send_text(bob.peer_id, "one")
    clock.ms += 300_000
    late = alice.send_text(bob.peer_id, "two")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(purge_loop, alice, 10)
        await trio.sleep(1)
        assert alice.store.get_message(early.id) is None  # at start-up
        assert alice.store.get_message(late.id) is not None
        clock.ms += 300_000
        await trio.sleep(10)
        assert alice.store.get_message(late.id) is None  # on the schedule
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("kind", "body"), [("timer", {"timer_s": 42}), ("text", {"text": "x", "timer_s": 42})]
)
def test_a_contacts_signed_message_with_a_timer_outside_the_set_is_refused(
    nodes: tuple[Node, Node], kind: str, body: dict[str, object]
) -> None:
    """Signed by the real sender, encrypted on the real session: refused all the same."""
    alice, bob = nodes
    unsigned = {
        "v": 1,
        "id": os.urandom(16),
        "from": alice.peer_id.raw,
        "to": bob.peer_id.raw,
        "conv": conv(alice, bob),
        "ts": alice.now_ms(),
        "kind": kind,
        "body": body,
    }
    signed = {**unsigned, "sig": alice.identity.sign("msg/v1", cbor.encode(unsigned))}
    sessions = alice.messenger._session(bob.peer_id)
    sealed = sessions.encrypt(alice.messenger.own, cbor.encode(signed), bob.messenger.bundle())
    envelope = seal(bob.peer_id, sealed, alice.now_ms() // 1000 + 3600)
    before = bob.store.counts()
    with pytest.raises(WireError, match="timer_s"):
        bob.messenger.receive(envelope.encode())
    assert bob.store.counts() == before
    assert bob.store.get_conversation(conv(bob, alice)) is None


def test_typing_from_a_stranger_or_with_read_receipts_off_shows_nothing(
    make_store: Callable[[], Store], clock: Clock, nodes: tuple[Node, Node]
) -> None:
    alice, bob = nodes
    carol = make("carol", make_store(), clock)
    carol.add_contact_from_invite(bob.invite(), "bob")  # Bob does not know Carol
    # A typing signal carries no request stamp, so a stranger's is refused unread.
    with bob.events.listener().follow() as follower:
        with pytest.raises(StampMissing):
            bob.messenger.receive(carol.messenger.seal_typing(bob.peer_id))
        bob.messenger.receive(alice.messenger.seal_typing(bob.peer_id))
        assert [e.peer for e in follower.take()] == [alice.peer_id]
        clock.ms += 60_000
        bob.update_settings({"read_receipts": False})
        bob.messenger.receive(alice.messenger.seal_typing(bob.peer_id))
        assert follower.take() == []
    assert bob.event_page(0, 50, types=[EventType.TYPING]).events == ()  # never stored
    assert bob.store.counts()["messages"] == 0 and bob.store.counts()["requests"] == 0
    assert alice.store.outbox_count() == 0 and carol.store.outbox_count() == 0


def test_a_place_in_a_timed_conversation_carries_the_timer_and_goes_from_both_stores(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    alice.update_conversation(conv(alice, bob), bob.peer_id, timer_s=3600)
    body = with_conversation_timer(alice, bob.peer_id, location_body(52.52, 13.40, label="cafe"))
    assert isinstance(body, LocationBody) and body.timer_s == 3600
    sent = alice.messenger.send(bob.peer_id, body).message
    assert sent is not None
    deliver(alice, bob)
    got = bob.store.get_message(sent.id)
    assert got is not None and message_timer(got) == 3600
    bob.mark_read(alice.peer_id)
    deliver(bob, alice)
    clock.ms += 3600 * 1000
    assert [m.id for m in bob.purge_expired()] == [sent.id]
    assert [m.id for m in alice.purge_expired()] == [sent.id]
    assert bob.store.get_message(sent.id) is None and alice.store.get_message(sent.id) is None


def test_a_place_with_a_timer_outside_the_set_is_refused_on_decode() -> None:
    spec = spec_for("location")
    assert spec is not None
    fine = spec.decode_bytes(cbor.encode({"lat": 0, "lon": 0, "timer_s": 300}))
    assert isinstance(fine, LocationBody) and fine.timer_s == 300
    with pytest.raises(SchemaError):
        spec.decode_bytes(cbor.encode({"lat": 0, "lon": 0, "timer_s": 42}))
