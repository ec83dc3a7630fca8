"""Actions in a conversation with disappearing messages: their envelopes live no
longer than their messages, and an action held for a message that has not
arrived waits no longer than the conversation's timer."""

from __future__ import annotations

import pytest

from p2pdm.core.model import StoredMessage, direct_conversation_id
from p2pdm.core.wire import Envelope
from p2pdm.errors import EnvelopeExpired
from p2pdm.limits import ENVELOPE_TTL_SECONDS, MAX_CLOCK_SKEW_SECONDS
from p2pdm.node.node import Node
from tests.conftest import deliver
from tests.node.conftest import Clock

TIMER_S = 300


def _set_timer(alice: Node, bob: Node, timer_s: int) -> None:
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
    alice.update_conversation(conversation, bob.peer_id, timer_s=timer_s)
    deliver(alice, bob)


def _last_expiry_s(node: Node, to: Node) -> int:
    """When the envelope ``node`` queued last for ``to`` expires (as sealed)."""
    item = node.store.outbox_for(to.peer_id)[-1]
    envelope = Envelope.decode(item.envelope)
    assert item.expires_at_ms == envelope.expires_at_s * 1000
    return envelope.expires_at_s


def _read_by_both(alice: Node, bob: Node, text: str) -> StoredMessage:
    """Alice sends ``text``; Bob reads it; Alice gets the read receipt."""
    sent = alice.send_text(bob.peer_id, text)
    deliver(alice, bob)
    bob.mark_read(alice.peer_id)
    deliver(bob, alice)
    mine = alice.store.get_message(sent.id)
    assert mine is not None and mine.expires_at_ms is not None
    return mine


def test_actions_on_a_disappearing_message_expire_with_it(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    _set_timer(alice, bob, TIMER_S)
    sent = _read_by_both(alice, bob, "meet at the fountain")
    theirs = bob.store.get_message(sent.id)
    assert theirs is not None and theirs.expires_at_ms is not None
    clock.ms += 10_000
    alice.edit(sent.id, "meet at the gate")
    edit_expiry = _last_expiry_s(alice, bob)
    assert sent.expires_at_ms is not None
    assert edit_expiry == -(-sent.expires_at_ms // 1000)  # rounded up to the second
    assert edit_expiry < clock.ms // 1000 + TIMER_S + 1
    bob.react(sent.id, "👍")  # Bob's copy: its own expiry, from his reading
    assert _last_expiry_s(bob, alice) == -(-theirs.expires_at_ms // 1000)
    alice.unsend(sent.id)
    assert _last_expiry_s(alice, bob) == edit_expiry


def test_actions_in_a_conversation_without_a_timer_keep_the_usual_lifetime(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    sent = alice.send_text(bob.peer_id, "no timer here")
    deliver(alice, bob)
    alice.edit(sent.id, "still no timer")
    expiry = _last_expiry_s(alice, bob)
    assert expiry == clock.ms // 1000 + ENVELOPE_TTL_SECONDS


def _overtaken(alice: Node, bob: Node, text: str) -> tuple[StoredMessage, bytes]:
    """Alice sends ``text``, reacts to it and edits it; Bob gets the two actions
    first (they are held). Returns the message and its envelope, not yet given."""
    sent = alice.send_text(bob.peer_id, text)
    alice.react(sent.id, "🎉")
    alice.edit(sent.id, text + ", edited")
    message, *actions = alice.store.outbox_for(bob.peer_id)
    assert message.message_id == sent.id and len(actions) == 2
    for item in actions:
        bob.messenger.receive(item.envelope)
    assert bob.store.held_count() == 2
    return sent, message.envelope


def test_an_action_held_for_a_disappearing_message_waits_no_longer_than_it(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    _set_timer(alice, bob, TIMER_S)
    alice.update_settings({"read_receipts": False})  # her copy's timer runs from sending
    sent, envelope = _overtaken(alice, bob, "soon gone")
    dropped = bob.store.counts()["held_actions_dropped"]
    # As long as the message may still come (its envelope's life, and the skew
    # every expiry allows), the actions wait for it ...
    clock.ms += (TIMER_S + MAX_CLOCK_SKEW_SECONDS) * 1000
    bob.purge_expired()
    assert bob.store.held_count() == 2
    # ... and not a moment longer: nor can the message come any more.
    clock.ms += 1_000
    bob.purge_expired()
    assert bob.store.held_count() == 0
    assert bob.store.counts()["held_actions_dropped"] == dropped + 2
    with pytest.raises(EnvelopeExpired):
        bob.messenger.receive(envelope)
    assert bob.store.get_message(sent.id) is None


def test_an_action_on_a_message_without_a_timer_waits_as_long_as_ever(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    """A message sent before the timer was set does not disappear: an action on
    it waits for it as long as any, so both sides end up showing the same."""
    alice, bob = nodes
    alice.update_settings({"read_receipts": False})
    sent = alice.send_text(bob.peer_id, "sent before the timer")
    conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
    alice.update_conversation(conversation, bob.peer_id, timer_s=TIMER_S)
    alice.react(sent.id, "👍")
    message, *later = alice.store.outbox_for(bob.peer_id)
    assert message.message_id == sent.id
    for item in later:  # the timer notice and the reaction overtake the message
        bob.messenger.receive(item.envelope)
    assert bob.store.held_count() == 1
    clock.ms += (TIMER_S + MAX_CLOCK_SKEW_SECONDS + 60) * 1000  # the timer is no bound here
    bob.purge_expired()
    assert bob.store.held_count() == 1
    bob.messenger.receive(message.envelope)
    got = bob.store.get_message(sent.id)
    assert got is not None and bob.extras([got])[got.id].reactions == {"👍": [alice.peer_id]}


# --- the same in a group with a timer (docs/protocol.md §19.5) ----------------


async def _timed_group(alice: Node, bob: Node) -> bytes:
    """A group of Alice and Bob with the group timer TIMER_S, known to both;
    Alice's copies' timers run from sending (no read receipts)."""
    alice.update_settings({"read_receipts": False})
    gid = (await alice.create_group("timed", [bob.peer_id], timer_s=TIMER_S)).row.id
    deliver(alice, bob)
    assert bob.group_info(gid).state.timer_s == TIMER_S
    return gid


async def test_group_actions_on_a_disappearing_message_expire_with_it(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    gid = await _timed_group(alice, bob)
    sent = (await alice.send_group_text(gid, "meet at the fountain")).message
    assert sent.expires_at_ms is not None
    # The message's own envelope lives no longer than Alice's copy.
    message_expiry = _last_expiry_s(alice, bob)
    assert message_expiry == -(-sent.expires_at_ms // 1000)
    deliver(alice, bob)
    bob.mark_group_read(gid)
    theirs = bob.store.get_message(sent.id)
    assert theirs is not None and theirs.expires_at_ms is not None
    clock.ms += 10_000
    alice.edit(sent.id, "meet at the gate")
    assert _last_expiry_s(alice, bob) == message_expiry
    bob.react(sent.id, "👍")  # Bob's copy: its own expiry, from his reading
    assert _last_expiry_s(bob, alice) == -(-theirs.expires_at_ms // 1000)
    alice.unsend(sent.id)
    assert _last_expiry_s(alice, bob) == message_expiry


async def test_group_actions_without_a_timer_keep_the_usual_lifetime(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    gid = (await alice.create_group("untimed", [bob.peer_id])).row.id
    deliver(alice, bob)
    sent = (await alice.send_group_text(gid, "no timer here")).message
    assert _last_expiry_s(alice, bob) == clock.ms // 1000 + ENVELOPE_TTL_SECONDS
    deliver(alice, bob)
    alice.edit(sent.id, "still no timer")
    assert _last_expiry_s(alice, bob) == clock.ms // 1000 + ENVELOPE_TTL_SECONDS


async def test_a_group_action_held_for_a_disappearing_message_waits_no_longer_than_it(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    gid = await _timed_group(alice, bob)
    sent = (await alice.send_group_text(gid, "soon gone")).message
    alice.react(sent.id, "🎉")
    alice.edit(sent.id, "soon gone, edited")
    message, *actions = alice.store.outbox_for(bob.peer_id)
    assert message.message_id == sent.id and len(actions) == 2
    for item in actions:
        bob.messenger.receive(item.envelope)
    assert bob.store.held_count() == 2
    dropped = bob.store.counts()["held_actions_dropped"]
    clock.ms += (TIMER_S + MAX_CLOCK_SKEW_SECONDS) * 1000
    bob.purge_expired()
    assert bob.store.held_count() == 2
    clock.ms += 1_000
    bob.purge_expired()
    assert bob.store.held_count() == 0
    assert bob.store.counts()["held_actions_dropped"] == dropped + 2
    with pytest.raises(EnvelopeExpired):
        bob.messenger.receive(message.envelope)
    assert bob.store.get_message(sent.id) is None
