"""Blocking and message requests in the node: drops, stamps, rates, answers."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import nacl.public
import pytest
import trio

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.core.kinds import Body, decode_stored, encode_body
from p2pdm.core.kinds.base import decode_ext
from p2pdm.core.model import MESSAGE_ID_BYTES, DeliveryStatus, direct_conversation_id
from p2pdm.core.request_stamp import (
    REQUEST_STAMP_BYTES,
    mint_request_stamp,
    request_name_of,
    request_stamp_of,
    verify_request_stamp,
)
from p2pdm.core.strangers import StrangerGate
from p2pdm.core.wire import Envelope
from p2pdm.errors import NotFound, PeerBlocked, RateLimited, SchemaError, StampMissing
from p2pdm.limits import MAX_CACHED_REQUEST_STAMPS, MAX_FRAME_BYTES, MAX_TEXT_BYTES
from p2pdm.node.messenger import Messenger
from p2pdm.node.node import Node
from p2pdm.store.base import Store
from p2pdm.store.memory import MemoryStore
from tests.conftest import deliver, make_node
from tests.node.conftest import FixedStamps, peek_body


def _stamped(sender: Messenger, to: Messenger, text: str, stamp: bytes | None) -> bytes:
    """The envelope of ``text`` from ``sender`` to ``to``, carrying ``stamp`` (or none)."""
    real = sender.stamps
    sender.stamps = FixedStamps(real, stamp)
    try:
        return sender.send_text(to.peer_id, text).outbox.envelope
    finally:
        sender.stamps = real


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
    unstamped = _stamped(alice, bob, "hi bob", None)
    # a stamp for Carol meets Bob's own difficulty by chance once in
    # 2**bits: take one that does not (what a forger would have to pay for)
    for _ in range(64):
        token = mint_request_stamp(carol, alice.peer_id, clock(), bob.stamps.bits + 8)
        if not verify_request_stamp(bob.peer_id, alice.peer_id, clock(), token, bob.stamps.bits):
            break
    carols = _stamped(alice, bob, "hi", token)
    envelope = alice.send_text(bob.peer_id, "hi bob").outbox.envelope
    before = bob.store.counts()
    for bad in (unstamped, carols):
        with pytest.raises(StampMissing):
            bob.receive(bad)
    assert bob.store.counts() == before and bob.dropped_unstamped == 2
    assert bob.receive(envelope).outcome == "request"  # the stamp Alice made is good


def test_contacts_need_no_stamp_and_answered_peers_get_none(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    assert bob.receive(_stamped(alice, bob, "first", None)).outcome == "stored"
    assert alice.stamps.needed(bob.peer_id)  # Bob has said nothing yet
    alice.receive(bob.send_text(alice.peer_id, "answer").outbox.envelope)
    assert not alice.stamps.needed(bob.peer_id)
    envelope = alice.send_text(bob.peer_id, "second").outbox.envelope
    assert request_stamp_of(peek_body(envelope, bob)) is None


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


def _count_threads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The functions run in worker threads from now on."""
    threads: list[object] = []
    real = trio.to_thread.run_sync

    async def in_a_thread(fn: Callable[..., object], *args: object, **kwargs: Any) -> object:
        threads.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(trio.to_thread, "run_sync", in_a_thread)
    return threads


async def test_a_stamp_is_made_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = _nodes()
    stamps = alice.messenger.stamps
    stamps.bits = 8  # however cheap: the rule is off_loop's, not the cost's
    threads = _count_threads(monkeypatch)
    await stamps.prepare(bob.peer_id)
    assert len(threads) == 1  # in a worker thread
    made = stamps.for_peer(bob.peer_id)
    await stamps.prepare(bob.peer_id)
    assert made is not None and len(threads) == 1  # made once, kept


async def test_under_a_virtual_clock_a_stamp_is_made_on_the_loop(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    alice, bob = _nodes()
    alice.messenger.stamps.bits = 8
    threads = _count_threads(monkeypatch)
    await alice.messenger.stamps.prepare(bob.peer_id)
    assert threads == [] and alice.messenger.stamps.for_peer(bob.peer_id) is not None


#: The session message's fields as a node that checks no request stamps decodes
#: them (docs/protocol.md §8.1): its strict decoder refuses any other key.
_OLDER_SESSION_FIELDS = frozenset({"v", "from", "x3dh", "dh", "pn", "n", "ct"})


def _older_text_decoder(body: Body) -> str:
    """A ``text`` body read by the rules of a node that checks no request stamps:
    its fields, ``ext`` checked and otherwise ignored (§6.4), nothing else."""
    fields = cbor.decode_map(cbor.encode(encode_body(body)), MAX_FRAME_BYTES, "text body")
    text = fields.text("text", MAX_TEXT_BYTES)
    fields.opt_blob("reply_to", size=MESSAGE_ID_BYTES)
    decode_ext(fields)
    fields.done()
    return text


def test_a_stamped_envelope_keeps_to_what_nodes_without_stamps_decode(  # type: ignore[no-untyped-def]
    make_store, clock
) -> None:
    alice, bob = _stranger_pair(make_store, clock)
    envelope = alice.send_text(bob.peer_id, "hi, a request").outbox.envelope
    box = nacl.public.SealedBox(nacl.public.PrivateKey(bob.identity.x25519_private_key))
    session = cbor.decode_map(box.decrypt(Envelope.decode(envelope).sealed), MAX_FRAME_BYTES, "s")
    assert set(session.raw()) <= _OLDER_SESSION_FIELDS
    body = peek_body(envelope, bob)
    stamp = request_stamp_of(body)
    assert stamp is not None and verify_request_stamp(
        bob.peer_id, alice.peer_id, clock(), stamp, bob.stamps.bits
    )
    assert _older_text_decoder(body) == "hi, a request"  # the stamp is an ignored ext field
    assert bob.receive(envelope).outcome == "request"
    # A stamp of the wrong shape in ext is no stamp: refused, nothing stored.
    forged = _stamped(alice, bob, "again", b"\x00" * (REQUEST_STAMP_BYTES - 1))
    with pytest.raises(StampMissing):
        bob.receive(forged)


def test_a_request_is_named_by_what_its_sender_goes_by_unless_two_share_it() -> None:
    bob = make_node("bob")
    senders = {}
    for name in ("Carol", "Carol", "Dave", "Eve\u202e"):  # the last: a bidi override
        sender = make_node(name) if name.isprintable() else make_node("eve")
        if not name.isprintable():
            sender.store.set_setting("name", name)  # as an older or hostile node might send
        sender.add_contact_from_invite(bob.invite(), "bob")
        sender.send_text(bob.peer_id, f"hi from {name}")
        deliver(sender, bob)
        senders[sender.peer_id] = name
    names = {r.peer_id: bob.request_name(r) for r in bob.requests()}
    assert sorted(n or "-" for n in names.values()) == ["-", "Carol", "Carol", "Dave"]
    with pytest.raises(SchemaError, match="names 2 requests"):
        bob.resolve_request("carol")
    [dave] = [p for p, n in names.items() if n == "Dave"]
    assert bob.resolve_request("dave") == dave
    assert bob.resolve_request("~" + dave.short()) == dave
    assert bob.resolve_request(str(dave)[:12]) == dave
    with pytest.raises(NotFound):
        bob.resolve_request(str(dave)[:11])  # too short to name anyone
    # What is stored of a request keeps its sender's name, never the stamp.
    [first] = [r.first for r in bob.requests() if r.peer_id == dave]
    body = decode_stored(first.kind, first.body)
    assert request_stamp_of(body) is None and request_name_of(body) == "Dave"


def test_a_peer_this_node_wrote_to_is_answering_not_asking(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    # Carol writes to Bob's PeerID without adding him; Bob accepts and answers.
    carol = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    carol.member_bundles[bob.peer_id] = bob.bundle()  # as a node does from the DHT
    assert bob.receive(carol.send_text(bob.peer_id, "hi bob").outbox.envelope).outcome == "request"
    bob.add_contact(carol.peer_id, "carol")
    assert not bob.stamps.needed(carol.peer_id)  # she wrote first: she knows him
    answer = bob.send_text(carol.peer_id, "hi carol").outbox.envelope
    before = carol.dropped_unstamped
    assert carol.receive(answer).outcome == "stored"  # an answer, not a request
    assert carol.dropped_unstamped == before and carol.store.list_requests() == []
    assert carol.store.get_contact(bob.peer_id) is None  # nobody was added for her
    # A peer nobody wrote to is still a stranger.
    dave = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    dave.add_contact(carol.peer_id, "carol", carol.bundle())
    with pytest.raises(StampMissing):
        carol.receive(_stamped(dave, carol, "hello", None))


def test_whom_this_node_wrote_to_is_read_once_and_again_after_a_change(  # type: ignore[no-untyped-def]
    make_store, clock, monkeypatch
) -> None:
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    reads: list[bytes] = []
    real = alice.store.conversation_written

    def counted(conversation: bytes) -> bool:
        reads.append(conversation)
        return real(conversation)

    monkeypatch.setattr(alice.store, "conversation_written", counted)
    known = alice.known
    assert not known.wrote_to(bob.peer_id) and not known.wrote_to(bob.peer_id)
    assert len(reads) == 1
    alice.send_text(bob.peer_id, "hi")  # a send reads it again
    assert known.wrote_to(bob.peer_id) and known.wrote_to(bob.peer_id)
    assert len(reads) == 2
    alice.store.delete_conversation(direct_conversation_id(alice.peer_id, bob.peer_id))
    known.refresh()  # as deleting, erasing or a reload after a failed commit do
    assert not known.wrote_to(bob.peer_id) and len(reads) == 3
