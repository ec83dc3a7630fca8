"""Messenger: messages and session state committed together; every rejection stores nothing."""

from __future__ import annotations

import itertools
import os

import pytest

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus, direct_conversation_id
from p2pdm.core.sealing import seal
from p2pdm.core.strangers import StrangerGate
from p2pdm.core.wire import Envelope, InnerMessage, SessionMessage, TextBody
from p2pdm.errors import (
    DecryptError,
    EnvelopeExpired,
    MessageIdConflict,
    PeerBlocked,
    RateLimited,
    ReplayError,
    SchemaError,
    SessionError,
    SignatureError,
    StoreError,
    WireError,
    WrongRecipient,
)
from p2pdm.limits import ENVELOPE_TTL_SECONDS, MAX_CLOCK_SKEW_SECONDS
from p2pdm.node.messenger import Messenger


def snapshot(m: Messenger) -> tuple[object, ...]:
    s = m.store
    return (s.counts(), s.get_session(s.list_contacts()[0].peer_id), s.get_prekeys())


def test_send_commits_message_session_and_outbox(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice.send_text(bob.peer_id, "hello bob")
    assert out.message is not None and out.message.status is DeliveryStatus.QUEUED
    assert alice.store.get_outbox(out.outbox.envelope_id) is not None
    assert alice.store.get_session(bob.peer_id) is not None
    got = bob.receive(out.outbox.envelope)
    assert got.outcome == "stored" and got.message is not None
    assert got.inner.body == TextBody("hello bob")
    conv = direct_conversation_id(alice.peer_id, bob.peer_id)
    assert got.message.conversation_id == conv == out.message.conversation_id
    page = bob.store.messages(conv, 10)
    assert [m.id for m in page.messages] == [out.message.id]


def test_message_from_stranger_is_a_request(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    got = bob.receive(alice.send_text(bob.peer_id, "hi, we met yesterday").outbox.envelope)
    assert got.outcome == "request" and got.message is not None and got.message.request
    assert bob.store.counts()["requests"] == 1
    bob.add_contact(alice.peer_id, "alice")
    assert bob.store.counts()["requests"] == 0


def test_blocked_contact_is_dropped(pair, clock) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    bob.store.block_peer(alice.peer_id, clock())
    contact = bob.store.get_contact(alice.peer_id)
    assert contact is not None and contact.blocked
    with pytest.raises(PeerBlocked):
        bob.receive(alice.send_text(bob.peer_id, "spam").outbox.envelope)
    assert bob.store.counts()["messages"] == 0 and bob.dropped_blocked == 1


def test_receipts_move_status_forward_only_for_own_messages(pair, clock) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice.send_text(bob.peer_id, "read me")
    bob.receive(out.outbox.envelope)
    clock.ms += 1000
    ids, receipts = bob.mark_read(alice.peer_id)
    assert ids == [out.outbox.message_id] and len(receipts) == 1
    got = alice.receive(receipts[0].outbox.envelope)
    assert got.outcome == "receipt"
    assert got.status_changes == ((out.outbox.message_id, DeliveryStatus.READ),)
    assert alice.message(out.outbox.message_id).status is DeliveryStatus.READ
    history = [c.status for c in alice.store.status_history(out.outbox.message_id)]
    assert history[-1] is DeliveryStatus.READ


def test_read_receipts_can_be_turned_off(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    bob.receive(alice.send_text(bob.peer_id, "x").outbox.envelope)
    bob.store.set_setting("read_receipts", False)
    assert bob.mark_read(alice.peer_id)[1] == []
    assert bob.store.counts()["unread"] == 0


def test_receipt_for_someone_elses_message_is_ignored(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = (
        Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock) for _ in range(3)
    )
    for a, b in itertools.permutations((alice, bob, carol), 2):
        a.add_contact(b.peer_id, "x", b.bundle())
    to_bob = alice.send_text(bob.peer_id, "for bob")
    # Carol claims to have read Alice's message to Bob.
    fake = carol.send_receipt(alice.peer_id, "read", [to_bob.outbox.message_id])[0]
    got = alice.receive(fake.outbox.envelope)
    assert got.status_changes == ()
    assert alice.message(to_bob.outbox.message_id).status is DeliveryStatus.QUEUED


def test_replayed_envelope_refused_and_not_stored_twice(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    env = alice.send_text(bob.peer_id, "once").outbox.envelope
    bob.receive(env)
    before = snapshot(bob)
    with pytest.raises(ReplayError):
        bob.receive(env)
    assert snapshot(bob) == before


def test_wrong_recipient_refused(pair, make_store, clock) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    carol = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    env = alice.send_text(bob.peer_id, "for bob").outbox.envelope
    with pytest.raises(WrongRecipient):
        carol.receive(env)
    assert carol.store.counts()["messages"] == 0


def test_envelope_readdressed_to_another_node_cannot_be_opened(pair, make_store, clock) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    carol = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    env = Envelope.decode(alice.send_text(bob.peer_id, "for bob").outbox.envelope)
    readdressed = Envelope.create(carol.peer_id, env.expires_at_s, env.sealed)
    with pytest.raises(DecryptError):
        carol.receive(readdressed.encode())


def test_bad_signature_refused_and_nothing_stored(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    sessions = alice._session(bob.peer_id)
    inner = InnerMessage.create(
        alice.identity,
        id=os.urandom(16),
        recipient=bob.peer_id,
        conversation=direct_conversation_id(alice.peer_id, bob.peer_id),
        sent_at_ms=alice.now_ms(),
        body=TextBody("genuine"),
    )
    forged = cbor.decode(inner.encode(), 1 << 20)
    forged["body"]["text"] = "forged"
    session_message = sessions.encrypt(alice.own, cbor.encode(forged), bob.bundle())
    env = seal(bob.peer_id, session_message, 2_000_000_000)
    before = bob.store.counts()
    with pytest.raises(SignatureError):
        bob.receive(env.encode())
    assert bob.store.counts() == before
    assert bob.store.get_session(alice.peer_id) is None


def test_replayed_message_id_in_new_envelope_refused(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    out = alice.send_text(bob.peer_id, "first")
    bob.receive(out.outbox.envelope)
    # Alice's node re-encrypts the very same signed message in a new envelope.
    inner = InnerMessage.create(
        alice.identity,
        id=out.outbox.message_id,
        recipient=bob.peer_id,
        conversation=direct_conversation_id(alice.peer_id, bob.peer_id),
        sent_at_ms=alice.now_ms(),
        body=TextBody("first"),
    )
    session_message = alice._session(bob.peer_id).encrypt(alice.own, inner.encode())
    env = seal(bob.peer_id, session_message, 2_000_000_000)
    with pytest.raises(ReplayError):
        bob.receive(env.encode())
    assert bob.store.counts()["messages"] == 1


def test_expired_envelope_refused(pair, clock) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    env = alice.send_text(bob.peer_id, "old news").outbox.envelope
    clock.ms += (ENVELOPE_TTL_SECONDS + MAX_CLOCK_SKEW_SECONDS + 1) * 1000
    with pytest.raises(EnvelopeExpired):
        bob.receive(env)


def test_garbage_refused_with_wire_errors(pair) -> None:  # type: ignore[no-untyped-def]
    _, bob = pair
    for junk in (b"", b"\x00", os.urandom(300), cbor.encode({"v": 1}), b"\xff" * (2 << 20)):
        with pytest.raises(WireError):
            bob.receive(junk)
    assert bob.store.counts()["messages"] == 0


def test_failed_commit_leaves_no_trace_and_session_still_works(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    first = alice.send_text(bob.peer_id, "one")
    second = alice.send_text(bob.peer_id, "two")
    real_add = bob.store.add_message

    def failing_add(message):  # type: ignore[no-untyped-def]
        raise StoreError("disk full")

    bob.store.add_message = failing_add
    with pytest.raises(StoreError):
        bob.receive(first.outbox.envelope)
    bob.store.add_message = real_add
    assert bob.store.get_session(alice.peer_id) is None
    assert not bob.store.has_seen(first.outbox.message_id)
    # The sender retries: both messages still open.
    assert bob.receive(second.outbox.envelope).message is not None
    assert bob.receive(first.outbox.envelope).message is not None


def test_restart_resumes_sessions(make_store, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a_store, b_store = make_store(), make_store()
    a_id, b_id = Identity(os.urandom(32)), Identity(os.urandom(32))
    alice, bob = Messenger(a_id, a_store, now_ms=clock), Messenger(b_id, b_store, now_ms=clock)
    alice.add_contact(b_id.peer_id, "bob", bob.bundle())
    bob.add_contact(a_id.peer_id, "alice", alice.bundle())
    bob.receive(alice.send_text(b_id.peer_id, "before restart").outbox.envelope)
    alice, bob = Messenger(a_id, a_store, now_ms=clock), Messenger(b_id, b_store, now_ms=clock)
    alice.receive(bob.send_text(a_id.peer_id, "after restart").outbox.envelope)
    bob.receive(alice.send_text(b_id.peer_id, "and again").outbox.envelope)
    assert bob.store.counts()["messages"] == 3


def test_input_checks(pair) -> None:  # type: ignore[no-untyped-def]
    alice, bob = pair
    with pytest.raises(SchemaError):
        alice.send_text(bob.peer_id, "   ")
    with pytest.raises(SchemaError):
        alice.send_text(bob.peer_id, "x" * (65 << 10))
    with pytest.raises(SessionError):
        alice.send_text(alice.peer_id, "me")
    stranger = Identity(os.urandom(32)).peer_id
    with pytest.raises(SessionError):
        alice.send_text(stranger, "who are you")


def test_many_readers_of_one_invite_bundle_all_get_through(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    """Several people start sessions from the same invite: every first message
    opens. (With a one-time prekey in the invite, the second one could not.)"""
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bundle = bob.bundle()
    assert bundle.one_time_prekeys == ()
    for bundle_used in (bundle, bundle, bundle):
        sender = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
        sender.add_contact(bob.peer_id, "bob", bundle_used)
        got = bob.receive(sender.send_text(bob.peer_id, "hello").outbox.envelope)
        assert got.outcome == "request" and got.inner.body == TextBody("hello")


# --- strangers' rate ----------------------------------------------------------


def _strangers(make_store, clock, gate: StrangerGate):  # type: ignore[no-untyped-def]
    """Alice knows Bob's bundle; Bob does not know her: she is a stranger to him."""
    alice = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock, strangers=gate)
    alice.add_contact(bob.peer_id, "bob", bob.bundle())
    return alice, bob


def test_a_stranger_over_its_rate_is_refused_and_gets_in_later(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    gate = StrangerGate(rate_per_peer=0.1, burst_per_peer=2, rate=100, burst=100)
    alice, bob = _strangers(make_store, clock, gate)
    envelopes = [alice.send_text(bob.peer_id, f"hello {n}").outbox.envelope for n in range(3)]
    assert [bob.receive(e).outcome for e in envelopes[:2]] == ["request", "request"]
    before = bob.store.counts()
    with pytest.raises(RateLimited):
        bob.receive(envelopes[2])
    assert bob.store.counts() == before  # nothing kept; the sender is told to retry
    clock.ms += 10_000  # one token back
    assert bob.receive(envelopes[2]).outcome == "request"  # the session was not disturbed
    assert bob.store.counts()["requests"] == 3


def test_all_strangers_share_one_budget_and_contacts_have_none(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    gate = StrangerGate(rate_per_peer=10, burst_per_peer=10, rate=0.01, burst=2)
    alice, bob = _strangers(make_store, clock, gate)
    carol = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    carol.add_contact(bob.peer_id, "bob", bob.bundle())
    bob.receive(alice.send_text(bob.peer_id, "one").outbox.envelope)
    bob.receive(carol.send_text(bob.peer_id, "two").outbox.envelope)
    with pytest.raises(RateLimited):  # a fresh identity does not bring a fresh budget
        bob.receive(carol.send_text(bob.peer_id, "three").outbox.envelope)
    bob.add_contact(carol.peer_id, "carol")
    for n in range(20):
        assert bob.receive(carol.send_text(bob.peer_id, f"n{n}").outbox.envelope).outcome == (
            "stored"
        )


def test_forged_claims_do_not_spend_a_strangers_budget(make_store, clock) -> None:  # type: ignore[no-untyped-def]
    gate = StrangerGate(rate_per_peer=0.001, burst_per_peer=1, rate=100, burst=100)
    alice, bob = _strangers(make_store, clock, gate)
    for n in range(5):  # anyone can write Alice's PeerID as the sender; it proves nothing
        # (A stamp, which anyone can mint for Alice writing to Bob, is inside the
        # ciphertext: it is only read once the message decrypts and its signature holds.)
        forged = SessionMessage(alice.peer_id, None, os.urandom(32), 0, n, os.urandom(64))
        envelope = seal(bob.peer_id, forged, clock.ms // 1000 + 60)
        with pytest.raises(DecryptError):
            bob.receive(envelope.encode())
    out = alice.send_text(bob.peer_id, "the real one")
    assert bob.receive(out.outbox.envelope).outcome == "request"


def _text_with_id(sender: Messenger, to: Messenger, message_id: bytes, text: str) -> bytes:
    """An envelope from ``sender`` whose signed message reuses ``message_id``."""
    inner = InnerMessage.create(
        sender.identity,
        id=message_id,
        recipient=to.peer_id,
        conversation=direct_conversation_id(sender.peer_id, to.peer_id),
        sent_at_ms=sender.now_ms(),
        body=TextBody(text),
    )
    bundle = None if sender._session(to.peer_id).established else to.bundle()
    session_message = sender._session(to.peer_id).encrypt(sender.own, inner.encode(), bundle)
    return seal(to.peer_id, session_message, 2_000_000_000).encode()


def test_another_senders_message_under_a_taken_id_is_not_a_replay(pair, make_store, clock) -> None:  # type: ignore[no-untyped-def]
    """Replays are judged on (sender, message id): Carol reusing the id of Alice's
    message, or of Bob's own, is refused, never acked as already stored."""
    alice, bob = pair
    carol = Messenger(Identity(os.urandom(32)), make_store(), now_ms=clock)
    bob.add_contact(carol.peer_id, "carol", carol.bundle())
    out = alice.send_text(bob.peer_id, "from alice")
    bob.receive(out.outbox.envelope)
    alices = out.outbox.message_id
    bobs_own = bob.send_text(alice.peer_id, "from bob").outbox.message_id
    before = bob.store.counts()
    for taken in (alices, bobs_own):
        with pytest.raises(MessageIdConflict):
            bob.receive(_text_with_id(carol, bob, taken, "squatting"))
    assert bob.store.counts() == before
    # A fresh id from Carol is fine, and her first message is then stored once.
    bob.receive(_text_with_id(carol, bob, os.urandom(16), "hello"))
    assert bob.store.counts()["messages"] == before["messages"] + 1


def test_a_replay_after_its_seen_id_was_forgotten(pair, clock) -> None:  # type: ignore[no-untyped-def]
    """The store refuses the taken id (no read before storing); the receiver
    names it a replay, keeps nothing of it, and the session goes on."""
    alice, bob = pair
    out = alice.send_text(bob.peer_id, "once")
    bob.receive(out.outbox.envelope)
    assert bob.store.purge_seen(clock.ms + 1) == 2  # the envelope's and the message's
    before = bob.store.counts()
    with pytest.raises(ReplayError, match="already stored"):
        bob.receive(_text_with_id(alice, bob, out.outbox.message_id, "twice"))
    assert bob.store.counts() == before
    assert out.message is not None
    [stored] = bob.store.messages(out.message.conversation_id, limit=5).messages
    assert stored.body == out.message.body
    nxt = alice.send_text(bob.peer_id, "and on")
    assert bob.receive(nxt.outbox.envelope).message is not None
