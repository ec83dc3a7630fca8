"""Blocking and message requests in the node: drops, stamps, rates, answers."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

import pytest
import trio

from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus
from p2pdm.core.request_stamp import mint_request_stamp
from p2pdm.core.sealing import open_envelope, seal
from p2pdm.core.strangers import StrangerGate
from p2pdm.core.wire import Envelope, SessionMessage
from p2pdm.errors import NotFound, PeerBlocked, RateLimited, StampMissing
from p2pdm.limits import MAX_CACHED_REQUEST_STAMPS
from p2pdm.node.messenger import Messenger
from p2pdm.node.node import Node
from p2pdm.store.base import Store
from p2pdm.store.memory import MemoryStore
from tests.conftest import deliver, make_node


def _restamped(envelope: bytes, to: Messenger, stamp: bytes | None) -> bytes:
    """``envelope`` (for ``to``) sealed again around the same session message with ``stamp``."""
    sealed = Envelope.decode(envelope)
    outer: SessionMessage = replace(open_envelope(to.identity, sealed), stamp=stamp)
    return seal(to.peer_id, outer, sealed.expires_at_s).encode()


def _stranger_pair(
    make_store: Callable[[], Store], clock: Callable[[], int]
) -> tuple[Messenger, Messenger]:
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())  # Bob does not know Alice
    return alice, bob


def test_a_strangers_message_without_a_valid_stamp_is_refused_and_nothing_stored(  # type: ignore[no-untyped-def]
    make_store, clock
) -> None:
    alice, bob = _stranger_pair(make_store, clock)
    carol = Identity(os.urandom(32)).peer_id
    envelope = alice.send_text(bob.peer_id, "hi bob").outbox.envelope
    unstamped = _restamped(envelope, bob, None)
    carols = _restamped(
        envelope, bob, mint_request_stamp(carol, alice.peer_id, clock(), bob.stamps.bits + 8)
    )
    before = bob.store.counts()
    for bad in (unstamped, carols):
        with pytest.raises(StampMissing):
            bob.receive(bad)
    assert bob.store.counts() == before and bob.dropped_unstamped == 2
    assert bob.receive(envelope).outcome == "request"  # the stamp Alice made is good


def test_contacts_need_no_stamp_and_answered_peers_get_none(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice.send_text(bob.peer_id, "first")
    assert bob.receive(_restamped(out.outbox.envelope, bob, None)).outcome == "stored"
    assert alice.stamps.needed(bob.peer_id)  # Bob has said nothing yet
    alice.receive(bob.send_text(alice.peer_id, "answer").outbox.envelope)
    assert not alice.stamps.needed(bob.peer_id)
    envelope = Envelope.decode(alice.send_text(bob.peer_id, "second").outbox.envelope)
    assert open_envelope(bob.identity, envelope).stamp is None


def test_new_requests_are_limited_per_hour_from_all_strangers(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    gate = StrangerGate(new_per_hour=1, new_burst=2)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock, strangers=gate)
    refused = 0
    for n in range(4):
        stranger = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
        stranger.add_contact(bob.peer_id, "bob", bob.bundle())
        try:
            bob.receive(stranger.send_text(bob.peer_id, f"request {n}").outbox.envelope)
        except RateLimited:
            refused += 1
    assert refused == 2 and len(bob.store.list_requests()) == 2
    clock.ms += 3_600_000  # an hour later, one more
    late = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    late.add_contact(bob.peer_id, "bob", bob.bundle())
    assert bob.receive(late.send_text(bob.peer_id, "later").outbox.envelope).outcome == "request"


def _nodes() -> tuple[Node, Node]:
    alice, bob = make_node("alice"), make_node("bob")
    alice.add_contact_from_invite(bob.invite(), "bob")
    return alice, bob


def test_blocking_takes_back_the_outbox_and_refuses_sends() -> None:
    alice, bob = _nodes()
    waiting = alice.send_text(bob.peer_id, "not yet delivered")
    assert alice.block(bob.peer_id) and not alice.block(bob.peer_id)
    assert alice.store.outbox_for(bob.peer_id) == []
    assert alice.messenger.message(waiting.id).status is DeliveryStatus.FAILED
    with pytest.raises(PeerBlocked):
        alice.send_text(bob.peer_id, "hello?")
    assert not alice.is_accepted(bob.peer_id)
    assert alice.unblock(bob.peer_id) and alice.is_accepted(bob.peer_id)


def test_a_blocked_contact_gets_no_read_receipt() -> None:
    alice, bob = _nodes()
    bob.add_contact_from_invite(alice.invite(), "alice")
    alice.send_text(bob.peer_id, "hi")
    deliver(alice, bob)
    bob.block(alice.peer_id)
    assert bob.mark_read(alice.peer_id) and bob.store.outbox_for(alice.peer_id) == []


def test_answering_a_request_needs_one() -> None:
    alice, bob = _nodes()
    for answer in (bob.accept_request, bob.decline_request, bob.block_request):
        with pytest.raises(NotFound):
            answer(alice.peer_id)
    alice.send_text(bob.peer_id, "hi")
    deliver(alice, bob)
    assert [r.count for r in bob.requests()] == [1] and not bob.is_accepted(alice.peer_id)
    assert bob.accept_request(alice.peer_id).contact.peer_id == alice.peer_id
    assert bob.requests() == [] and bob.is_accepted(alice.peer_id)


def test_a_node_keeps_no_more_stamps_than_its_cap() -> None:
    node = Node(Identity(os.urandom(32)), MemoryStore())
    stamps = node.messenger.stamps
    for _ in range(300):
        stamps.for_peer(Identity(os.urandom(32)).peer_id)
    assert len(stamps._stamps) == MAX_CACHED_REQUEST_STAMPS


async def test_a_costly_stamp_is_made_off_the_event_loop() -> None:
    alice, bob = _nodes()
    stamps = alice.messenger.stamps
    stamps.bits = 16  # tens of thousands of hashes: long enough to see the loop run
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.005)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        started = trio.current_time()
        await stamps.prepare(bob.peer_id)
        took = trio.current_time() - started
        nursery.cancel_scope.cancel()
    assert stamps.for_peer(bob.peer_id) is not None  # made once, kept
    assert took < 0.02 or ticks >= 2  # the loop ran while the stamp was made
