"""Blocking and requests across the other features: actions, timers, typing, stamps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio

from p2pdm.core.model import EventType, direct_conversation_id
from p2pdm.core.request_stamp import request_stamp_of
from p2pdm.errors import PeerBlocked
from p2pdm.node.node import Node
from tests.conftest import deliver, make_node
from tests.node.conftest import peek_body

#: The events a blocked peer's actions and signals would make.
_ACTION_EVENTS = [
    EventType.MESSAGE_REACTION,
    EventType.MESSAGE_EDITED,
    EventType.MESSAGE_UNSENT,
    EventType.TYPING,
    EventType.CONVERSATION_TIMER,
]


def _contacts() -> tuple[Node, Node]:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")
    bob.add_contact_from_invite(alice.invite(), "alice")
    return alice, bob


def _stamp_of(envelope: bytes, to: Node) -> bytes | None:
    return request_stamp_of(peek_body(envelope, to.messenger))


def test_a_blocked_peers_reactions_edits_unsends_timers_and_typing_are_dropped_unread() -> None:
    alice, bob = _contacts()
    sent = alice.send_text(bob.peer_id, "hello")
    deliver(alice, bob)
    before = bob.store.get_message(sent.id)
    bob.block(alice.peer_id)
    alice.react(sent.id, "👍")
    alice.edit(sent.id, "hello again")
    alice.update_conversation(
        direct_conversation_id(alice.peer_id, bob.peer_id), bob.peer_id, timer_s=300
    )
    alice.unsend(sent.id)
    envelopes = [item.envelope for item in alice.store.outbox_for(bob.peer_id)]
    envelopes.append(alice.messenger.seal_typing(bob.peer_id))
    assert len(envelopes) == 5
    for envelope in envelopes:
        with pytest.raises(PeerBlocked):
            bob.messenger.receive(envelope)
    assert bob.messenger.dropped_blocked == 5
    after = bob.store.get_message(sent.id)
    assert after == before and after is not None and not after.unsent
    assert bob.extras([after])[after.id].reactions == {}
    assert bob.event_page(0, 50, types=_ACTION_EVENTS).events == ()
    conversation = bob.store.get_conversation(after.conversation_id)
    assert conversation is not None and conversation.timer_s == 0


async def test_typing_goes_only_to_accepted_peers() -> None:
    alice, bob = _contacts()
    carol = make_node("carol")
    carol.add_contact_from_invite(alice.invite(), "alice")
    carol.send_text(alice.peer_id, "hi, a request")
    deliver(carol, alice)
    assert not alice.is_accepted(carol.peer_id)
    sends: list[bytes] = []

    async def send_now(peer: object, envelope: bytes) -> bool:
        sends.append(envelope)
        return True

    alice.send_now = send_now
    alice.online.update({bob.peer_id, carol.peer_id})
    to_carol = direct_conversation_id(alice.peer_id, carol.peer_id)
    to_bob = direct_conversation_id(alice.peer_id, bob.peer_id)
    assert await alice.send_typing(to_carol, carol.peer_id) == "typing is shown only to contacts"
    alice.block(bob.peer_id)
    assert await alice.send_typing(to_bob, bob.peer_id) == "you blocked them"
    assert sends == []
    alice.unblock(bob.peer_id)
    assert await alice.send_typing(to_bob, bob.peer_id) is None
    [typing] = sends
    assert _stamp_of(typing, bob) is None  # a contact needs no stamp
    with bob.events.listener().follow() as follower:
        bob.messenger.receive(typing)
        assert [e.peer for e in follower.take()] == [alice.peer_id]


def test_actions_and_timer_notices_to_a_stranger_carry_the_stamp() -> None:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")  # Bob does not know Alice
    sent = alice.send_text(bob.peer_id, "hello")
    deliver(alice, bob)
    alice.react(sent.id, "👋")
    alice.edit(sent.id, "hello, it is Alice")
    alice.update_conversation(
        direct_conversation_id(alice.peer_id, bob.peer_id), bob.peer_id, timer_s=300
    )
    items = alice.store.outbox_for(bob.peer_id)
    assert len(items) == 3
    assert all(_stamp_of(item.envelope, bob) is not None for item in items)
    deliver(alice, bob)  # none refused for want of a stamp
    assert bob.messenger.dropped_unstamped == 0
    shown = bob.store.get_message(sent.id)
    assert shown is not None and shown.edited_at_ms is not None
    assert bob.extras([shown])[shown.id].reactions == {"👋": [alice.peer_id]}


async def test_a_costly_stamp_for_an_action_is_made_before_it_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")
    sent = alice.send_text(bob.peer_id, "hello")
    stamps = alice.messenger.stamps
    stamps._stamps.clear()  # as on the next day: today's stamp is not made yet
    stamps.bits = 16
    threads: list[Callable[[], bytes]] = []
    real = trio.to_thread.run_sync

    async def in_a_thread(fn: Callable[[], bytes], *args: object, **kwargs: Any) -> bytes:
        threads.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", in_a_thread)
    await alice.stamp_ahead_for(sent.id)
    assert len(threads) == 1  # made in a worker thread
    made = dict(stamps._stamps)
    alice.react(sent.id, "👍")  # finds it made: nothing is minted in the loop
    assert dict(stamps._stamps) == made
    [_, reaction] = alice.store.outbox_for(bob.peer_id)
    assert _stamp_of(reaction.envelope, bob) in made.values()
