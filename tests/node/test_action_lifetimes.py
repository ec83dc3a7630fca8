"""Actions in a conversation with disappearing messages: their envelopes live no
longer than their messages, and an action held for a message that has not
arrived waits no longer than the conversation's timer."""

from __future__ import annotations

import pytest

from p2pdm.core.model import StoredMessage, direct_conversation_id
from p2pdm.core.wire import Envelope
from p2pdm.limits import ENVELOPE_TTL_SECONDS, HELD_ACTION_TTL_MS
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


@pytest.mark.parametrize("timer_s", [TIMER_S, 0])
def test_a_held_action_waits_no_longer_than_the_timer(
    nodes: tuple[Node, Node], clock: Clock, timer_s: int
) -> None:
    alice, bob = nodes
    if timer_s:
        _set_timer(alice, bob, timer_s)
    sent = alice.send_text(bob.peer_id, "soon gone")
    clock.ms += 1
    alice.react(sent.id, "🎉")
    clock.ms += 1
    alice.edit(sent.id, "soon gone, edited")
    message, *actions = alice.store.outbox_for(bob.peer_id)
    assert message.message_id == sent.id and len(actions) == 2
    for item in actions:  # the actions overtake their message
        bob.messenger.receive(item.envelope)
    assert bob.store.held_count() == 2
    dropped = bob.store.counts()["held_actions_dropped"]

    clock.ms += TIMER_S * 1000 + 1_000
    bob.purge_expired()
    if not timer_s:  # no timer: held as long as any envelope may still come
        assert bob.store.held_count() == 2
        bob.messenger.receive(message.envelope)
        got = bob.store.get_message(sent.id)
        assert got is not None and got.edited_at_ms is not None
        assert bob.extras([got])[got.id].reactions == {"🎉": [alice.peer_id]}
        return
    assert bob.store.held_count() == 0
    assert bob.store.counts()["held_actions_dropped"] == dropped + 2
    bob.messenger.receive(message.envelope)  # too late for the actions
    got = bob.store.get_message(sent.id)
    assert got is not None and got.edited_at_ms is None
    assert bob.extras([got])[got.id].reactions == {}


def test_a_held_action_past_the_timer_is_not_applied_before_the_purge_runs(
    nodes: tuple[Node, Node], clock: Clock
) -> None:
    alice, bob = nodes
    _set_timer(alice, bob, TIMER_S)
    sent = alice.send_text(bob.peer_id, "quick")
    clock.ms += 1
    alice.edit(sent.id, "quick, edited")
    message, edit = alice.store.outbox_for(bob.peer_id)
    bob.messenger.receive(edit.envelope)
    clock.ms += TIMER_S * 1000 + 1_000  # no purge ran: the message meets a stale edit
    bob.messenger.receive(message.envelope)
    got = bob.store.get_message(sent.id)
    assert got is not None and got.edited_at_ms is None and bob.store.held_count() == 0
    assert TIMER_S * 1000 < HELD_ACTION_TTL_MS
