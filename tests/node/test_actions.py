"""Reactions, edits, unsends, replies and deletions between two nodes over both
stores, with envelopes carried by hand so that they can arrive in any order."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from p2pdm.core.identity import Identity
from p2pdm.core.kinds import EditBody, ReactionBody, TextBody, UnsendBody, decode_stored
from p2pdm.core.model import MESSAGE_ID_BYTES, EventType, StoredMessage, direct_conversation_id
from p2pdm.errors import ActionRefused, ReplayError, SchemaError
from p2pdm.limits import EDIT_WINDOW_MS, HELD_ACTION_TTL_MS
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from tests.node.conftest import Clock


def _nodes(make_store: Callable[[], object], clock: Clock, n: int = 2) -> list[Node]:
    nodes = [Node(Identity(os.urandom(32)), make_store(), now_ms=clock) for _ in range(n)]  # type: ignore[arg-type]
    for a in nodes:
        for b in nodes:
            if a is not b:
                a.messenger.add_contact(b.peer_id, f"n{nodes.index(b)}", b.messenger.bundle())
    return nodes


def take(src: Node, dst: Node) -> list[bytes]:
    """Every envelope ``src`` has queued for ``dst``, oldest first, taken out of its outbox."""
    items = src.store.outbox_for(dst.peer_id)
    for item in items:
        src.store.remove_outbox(item.envelope_id)
    return [item.envelope for item in items]


def carry(src: Node, dst: Node) -> None:
    for envelope in take(src, dst):
        dst.messenger.receive(envelope, "mailbox")


def shown(node: Node, message_id: bytes) -> StoredMessage:
    found = node.store.get_message(message_id)
    assert found is not None
    return found


@pytest.fixture
def two(make_store: Callable[[], object], clock: Clock) -> tuple[Node, Node]:
    alice, bob = _nodes(make_store, clock)
    # Both sessions established, so later envelopes may arrive in any order.
    alice.send_text(bob.peer_id, "hi")
    carry(alice, bob)
    bob.send_text(alice.peer_id, "hello")
    carry(bob, alice)
    carry(alice, bob)  # the receipts
    return alice, bob


def events(node: Node, kind: EventType) -> list[tuple[bytes | None, str]]:
    return [(e.message_id, e.detail) for e in node.store.events(0, 500, [kind])]


def test_reply_react_edit_unsend_reach_the_other_side(two: tuple[Node, Node], clock: Clock) -> None:
    alice, bob = two
    first = alice.send_text(bob.peer_id, "lunch at noon?")
    carry(alice, bob)
    reply = bob.send_text(alice.peer_id, "yes!", reply_to=first.id)
    bob.react(first.id, "👍")
    carry(bob, alice)
    extras = alice.extras([shown(alice, reply.id)])[reply.id]
    assert (extras.reply_to, extras.reply_snippet) == (first.id, "lunch at noon?")
    assert alice.extras([shown(alice, first.id)])[first.id].reactions == {"👍": [bob.peer_id]}
    assert events(alice, EventType.MESSAGE_REACTION) == [(first.id, "👍")]
    assert not any(
        e.message_id == first.id for e in alice.store.events(0, 500, [EventType.MESSAGE_RECEIVED])
    )

    clock.ms += 1000
    alice.edit(first.id, "lunch at one?")
    carry(alice, bob)
    got = shown(bob, first.id)
    assert message_text(got) == "lunch at one?" and got.edited_at_ms is not None
    assert events(bob, EventType.MESSAGE_EDITED) == [(first.id, "")]
    # the reply's snippet follows the latest text
    assert bob.extras([shown(bob, reply.id)])[reply.id].reply_snippet == "lunch at one?"

    bob.react(first.id, "")  # taken back
    carry(bob, alice)
    assert alice.extras([shown(alice, first.id)])[first.id].reactions == {}

    alice.unsend(first.id)
    carry(alice, bob)
    for node in (alice, bob):
        gone = shown(node, first.id)
        assert gone.unsent and gone.body == b"" and message_text(gone) is None
        assert node.extras([shown(node, reply.id)])[reply.id].reply_snippet is None
    assert events(bob, EventType.MESSAGE_UNSENT) == [(first.id, "")]


def test_a_reply_to_a_message_of_another_conversation_is_refused(
    make_store: Callable[[], object], clock: Clock
) -> None:
    alice, bob, carol = _nodes(make_store, clock, 3)
    elsewhere = alice.send_text(carol.peer_id, "secret")
    with pytest.raises(SchemaError, match="reply_to"):
        alice.send_text(bob.peer_id, "see above", reply_to=elsewhere.id)
    with pytest.raises(SchemaError, match="reply_to"):
        alice.send_text(bob.peer_id, "see above", reply_to=os.urandom(MESSAGE_ID_BYTES))


def test_actions_that_overtake_their_message_still_win(
    two: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = two
    gone = alice.send_text(bob.peer_id, "oops")
    edited = alice.send_text(bob.peer_id, "typo")
    in_mailbox = take(alice, bob)  # left at a mailbox: the outbox lets them go
    alice.unsend(gone.id)
    clock.ms += 1
    alice.edit(edited.id, "fixed")
    actions = take(alice, bob)
    for envelope in actions + in_mailbox:  # the actions first
        bob.messenger.receive(envelope, "mailbox")
    assert bob.store.held_count() == 0
    got = shown(bob, gone.id)
    assert got.unsent and got.body == b""
    assert message_text(shown(bob, edited.id)) == "fixed"


def test_a_reaction_to_an_unknown_message_is_held_then_applied_or_dropped(
    two: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = two
    early = alice.send_text(bob.peer_id, "one")
    clock.ms += 1
    late = alice.send_text(bob.peer_id, "two")
    [to_early, to_late] = take(alice, bob)
    bob.messenger.receive(to_early, "mailbox")
    bob.react(early.id, "❤️")
    bob.messenger.send(alice.peer_id, ReactionBody(late.id, "😮"))  # not arrived at bob yet
    carry(bob, alice)  # alice has both, applies both
    assert alice.extras([shown(alice, late.id)])[late.id].reactions == {"😮": [bob.peer_id]}
    # Now the other way round: alice reacts to a message bob has not sent her yet.
    future = os.urandom(MESSAGE_ID_BYTES)
    alice.messenger.send(bob.peer_id, ReactionBody(future, "👀"))
    carry(alice, bob)
    assert bob.store.held_count() == 1
    clock.ms += HELD_ACTION_TTL_MS + 1
    bob.messenger.receive(to_late, "mailbox")  # unrelated arrival: nothing applies
    assert bob.store.take_held(future, clock.ms) == []
    assert bob.store.counts()["held_actions_dropped"] == 1


def _refused(node: Node, before: int) -> bool:
    return node.store.counts()["actions_refused"] == before + 1


def test_hostile_actions_are_refused_counted_and_never_stored(
    make_store: Callable[[], object], clock: Clock
) -> None:
    alice, bob, carol = _nodes(make_store, clock, 3)
    mine = alice.send_text(bob.peer_id, "mine")
    carry(alice, bob)
    to_carol = alice.send_text(carol.peer_id, "for carol only")
    carry(alice, carol)
    theirs = bob.send_text(alice.peer_id, "bob's")
    carry(bob, alice)
    counted = alice.store.counts()["actions_refused"]
    # bob edits and unsends alice's message (forging the body past his own node's checks)
    bob.messenger.send(alice.peer_id, EditBody(mine.id, "I never said that"))
    carry(bob, alice)
    assert _refused(alice, counted)
    bob.messenger.send(alice.peer_id, UnsendBody(mine.id))
    carry(bob, alice)
    assert _refused(alice, counted + 1)
    assert message_text(shown(alice, mine.id)) == "mine" and not shown(alice, mine.id).unsent
    # bob reacts to alice's message to carol
    bob.messenger.send(alice.peer_id, ReactionBody(to_carol.id, "😈"))
    carry(bob, alice)
    assert _refused(alice, counted + 2)
    assert alice.store.reactions([to_carol.id]) == {}
    # bob edits his own message after the window
    clock.ms += EDIT_WINDOW_MS + 1
    bob.messenger.send(alice.peer_id, EditBody(theirs.id, "rewritten history"))
    envelope = take(bob, alice)[0]
    alice.messenger.receive(envelope, "direct")
    assert _refused(alice, counted + 3)
    assert message_text(shown(alice, theirs.id)) == "bob's"
    with pytest.raises(ActionRefused):
        bob.edit(theirs.id, "rewritten history")
    with pytest.raises(ActionRefused):
        alice.unsend(theirs.id)
    alice.unsend(mine.id)
    with pytest.raises(ActionRefused, match=r"^cannot react to that message: "):
        alice.react(mine.id, "👍")
    assert not alice.store.has_seen(b"") and alice.store.held_count() == 0


def test_a_replayed_or_older_edit_changes_nothing(two: tuple[Node, Node], clock: Clock) -> None:
    alice, bob = two
    message = alice.send_text(bob.peer_id, "v1")
    carry(alice, bob)
    clock.ms += 1
    alice.edit(message.id, "v2")
    clock.ms += 1
    alice.edit(message.id, "v3")
    [to_v2, to_v3] = take(alice, bob)
    bob.messenger.receive(to_v3, "mailbox")
    bob.messenger.receive(to_v2, "mailbox")  # older: the latest text stays
    assert message_text(shown(bob, message.id)) == "v3"
    with pytest.raises(ReplayError):
        bob.messenger.receive(to_v2, "mailbox")
    assert message_text(shown(bob, message.id)) == "v3"


def test_unsend_drops_a_message_never_delivered_from_the_outbox(two: tuple[Node, Node]) -> None:
    alice, bob = two
    message = alice.send_text(bob.peer_id, "wait, no")
    alice.unsend(message.id)
    alice.unsend(message.id)  # again: nothing more is sent
    queued = alice.store.outbox_for(bob.peer_id)
    assert len(queued) == 1 and queued[0].message_id != message.id  # the unsend alone
    carry(alice, bob)
    # bob never sees the message; the unsend waits as its tombstone
    assert bob.store.get_message(message.id) is None and bob.store.held_count() == 1


def test_delete_for_me_and_a_whole_conversation_send_nothing(two: tuple[Node, Node]) -> None:
    alice, bob = two
    message = alice.send_text(bob.peer_id, "to forget")
    carry(alice, bob)
    bob.delete_for_me(message.id)
    assert bob.store.get_message(message.id) is None and take(bob, alice) == []
    conversation = shown(alice, message.id).conversation_id
    assert alice.delete_conversation(conversation) == 3
    assert alice.store.get_conversation(conversation) is None
    assert alice.messages(bob.peer_id).messages == () and take(alice, bob) == []


def test_an_edited_disappearing_text_keeps_its_timer_and_goes_with_its_reactions(
    two: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = two
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
    alice.update_conversation(conversation, bob.peer_id, timer_s=300)
    sent = alice.send_text(bob.peer_id, "meet at 8")
    alice.edit(sent.id, "meet at 9")
    carry(alice, bob)
    bob.react(sent.id, "👍")
    carry(bob, alice)
    for node in (alice, bob):
        body = decode_stored("text", shown(node, sent.id).body)
        assert isinstance(body, TextBody) and (body.text, body.timer_s) == ("meet at 9", 300)
        assert node.extras([shown(node, sent.id)])[sent.id].reactions == {"👍": [bob.peer_id]}
    bob.mark_read(alice.peer_id)
    carry(bob, alice)  # the read receipt starts alice's copy's timer
    clock.ms += 301_000
    for node in (alice, bob):
        assert [m.id for m in node.purge_expired()] == [sent.id]
        assert node.store.get_message(sent.id) is None
        assert node.store.reactions([sent.id]) == {}
