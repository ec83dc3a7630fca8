"""End-to-end sessions: X3DH + Double Ratchet through p2pdm's wrappers."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from p2pdm.core import cbor
from p2pdm.core.identity import Identity
from p2pdm.core.session import MAX_SESSIONS_PER_PEER, OwnPrekeys, PeerSessions
from p2pdm.core.wire import PrekeyBundle, SessionMessage
from p2pdm.errors import (
    DecryptError,
    PrekeyError,
    ReplayError,
    SessionError,
    SignatureError,
    WireError,
)
from p2pdm.limits import MAX_SKIP_PER_MESSAGE, SIGNED_PREKEY_ROTATION_SECONDS


def pair() -> tuple[Identity, OwnPrekeys, Identity, OwnPrekeys]:
    a, b = Identity(os.urandom(32)), Identity(os.urandom(32))
    return a, OwnPrekeys.create(a, 0), b, OwnPrekeys.create(b, 0)


def test_first_message_needs_only_the_bundle() -> None:
    a, oa, b, ob = pair()
    to_b = PeerSessions(b.peer_id)
    msg = to_b.encrypt(oa, b"hello", ob.bundle())
    assert msg.x3dh is not None
    # Bob was "offline": he only ever published his bundle.
    from_a = PeerSessions(a.peer_id)
    assert from_a.decrypt(ob, SessionMessage.decode(msg.encode())) == b"hello"


def test_header_repeated_until_answered_then_dropped() -> None:
    a, oa, b, ob = pair()
    to_b, from_a = PeerSessions(b.peer_id), PeerSessions(a.peer_id)
    first = to_b.encrypt(oa, b"1", ob.bundle())
    second = to_b.encrypt(oa, b"2")
    assert second.x3dh == first.x3dh
    # The second arrives first: Bob can still open it.
    assert from_a.decrypt(ob, second) == b"2"
    assert from_a.decrypt(ob, first) == b"1"
    reply = from_a.encrypt(ob, b"hi")
    assert reply.x3dh is None
    assert to_b.decrypt(oa, reply) == b"hi"
    assert to_b.encrypt(oa, b"3").x3dh is None


def test_no_session_and_no_bundle() -> None:
    _a, oa, b, _ = pair()
    with pytest.raises(SessionError):
        PeerSessions(b.peer_id).encrypt(oa, b"x")


def test_bundle_with_bad_signature_refused() -> None:
    _a, oa, b, ob = pair()
    good = ob.bundle()
    forged = PrekeyBundle(
        good.peer, os.urandom(32), good.signed_prekey_sig, good.one_time_prekeys, 0
    )
    with pytest.raises(SignatureError):
        PeerSessions(b.peer_id).encrypt(oa, b"x", forged)


def test_replay_refused_and_state_unchanged() -> None:
    a, oa, b, ob = pair()
    to_b, from_a = PeerSessions(b.peer_id), PeerSessions(a.peer_id)
    m = to_b.encrypt(oa, b"once", ob.bundle())
    from_a.decrypt(ob, m)
    before = from_a.to_bytes()
    with pytest.raises(ReplayError):
        from_a.decrypt(ob, m)
    assert from_a.to_bytes() == before


def test_tampered_ciphertext_refused_without_state_change() -> None:
    a, oa, b, ob = pair()
    to_b, from_a = PeerSessions(b.peer_id), PeerSessions(a.peer_id)
    from_a.decrypt(ob, to_b.encrypt(oa, b"x", ob.bundle()))
    m = to_b.encrypt(oa, b"y")
    bad = SessionMessage(
        m.sender, m.x3dh, m.ratchet_key, m.previous_chain_length, m.index, m.ciphertext[:-1] + b"!"
    )
    before = from_a.to_bytes()
    with pytest.raises(DecryptError):
        from_a.decrypt(ob, bad)
    assert from_a.to_bytes() == before
    assert from_a.decrypt(ob, m) == b"y"


def test_one_time_prekey_used_once() -> None:
    a, oa, b, ob = pair()
    bundle = ob.bundle(one_time=1)
    opk = bundle.one_time_prekeys[0]
    m = PeerSessions(b.peer_id).encrypt(oa, b"x", bundle)
    assert m.x3dh is not None and m.x3dh.one_time_prekey == opk
    PeerSessions(a.peer_id).decrypt(ob, m)
    assert opk not in ob.bundle(one_time=100).one_time_prekeys
    # A second initiation naming the same one-time prekey cannot open.
    c = Identity(os.urandom(32))
    oc = OwnPrekeys.create(c, 0)
    m2 = PeerSessions(b.peer_id).encrypt(oc, b"y", bundle)
    with pytest.raises(PrekeyError):
        PeerSessions(c.peer_id).decrypt(ob, m2)


def test_failed_first_message_does_not_burn_the_prekey() -> None:
    a, oa, b, ob = pair()
    bundle = ob.bundle(one_time=1)
    m = PeerSessions(b.peer_id).encrypt(oa, b"x", bundle)
    bad = SessionMessage(
        m.sender, m.x3dh, m.ratchet_key, m.previous_chain_length, m.index, b"\x00" * 48
    )
    with pytest.raises(DecryptError):
        PeerSessions(a.peer_id).decrypt(ob, bad)
    assert bundle.one_time_prekeys[0] in ob.bundle(one_time=100).one_time_prekeys


def test_signed_prekey_rotation_keeps_previous_for_a_period() -> None:
    a, oa, b, ob = pair()
    old_bundle = ob.bundle(one_time=0)
    assert not ob.maybe_rotate(SIGNED_PREKEY_ROTATION_SECONDS - 1)
    assert ob.maybe_rotate(SIGNED_PREKEY_ROTATION_SECONDS)
    assert ob.bundle().signed_prekey != old_bundle.signed_prekey
    m = PeerSessions(b.peer_id).encrypt(oa, b"late", old_bundle)
    assert PeerSessions(a.peer_id).decrypt(ob, m) == b"late"
    # After a second rotation the oldest prekey is gone.
    assert ob.maybe_rotate(2 * SIGNED_PREKEY_ROTATION_SECONDS)
    m = PeerSessions(b.peer_id).encrypt(oa, b"too late", old_bundle)
    with pytest.raises(PrekeyError):
        PeerSessions(a.peer_id).decrypt(ob, m)


def test_simultaneous_start_converges() -> None:
    a, oa, b, ob = pair()
    ab, ba = PeerSessions(b.peer_id), PeerSessions(a.peer_id)
    m_a = ab.encrypt(oa, b"from a", ob.bundle())
    m_b = ba.encrypt(ob, b"from b", oa.bundle())
    assert ba.decrypt(ob, m_a) == b"from a"
    assert ab.decrypt(oa, m_b) == b"from b"
    for i in range(5):
        assert ba.decrypt(ob, ab.encrypt(oa, b"a%d" % i)) == b"a%d" % i
        assert ab.decrypt(oa, ba.encrypt(ob, b"b%d" % i)) == b"b%d" % i
    assert len(ab.sessions) <= MAX_SESSIONS_PER_PEER


def test_gap_beyond_skip_limit_refused() -> None:
    a, oa, b, ob = pair()
    ab, ba = PeerSessions(b.peer_id), PeerSessions(a.peer_id)
    ba.decrypt(ob, ab.encrypt(oa, b"0", ob.bundle()))
    for _ in range(MAX_SKIP_PER_MESSAGE + 1):
        ab.encrypt(oa, b"lost")
    with pytest.raises(DecryptError):
        ba.decrypt(ob, ab.encrypt(oa, b"far"))


def test_state_round_trip_and_damage() -> None:
    a, _oa, b, ob = pair()
    again = OwnPrekeys.from_bytes(b, ob.to_bytes())
    assert again.bundle() == ob.bundle()
    with pytest.raises(SessionError):
        OwnPrekeys.from_bytes(a, ob.to_bytes())
    with pytest.raises((SessionError, WireError)):
        PeerSessions.from_bytes(a.peer_id, b"\xa1\x61v\x01")  # {"v": 1}, no sessions
    with pytest.raises((SessionError, WireError)):
        PeerSessions.from_bytes(a.peer_id, b"garbage")


class TwoParties(RuleBasedStateMachine):
    """Alice and Bob exchange messages over a network that drops, reorders,
    duplicates, and restarts either side from its persisted state. Both sides
    must agree on every message delivered, and none is accepted twice."""

    @initialize()
    def setup(self) -> None:
        self.rng = random.Random(0)
        self.ids = {"a": Identity(os.urandom(32)), "b": Identity(os.urandom(32))}
        self.own = {k: OwnPrekeys.create(v, 0) for k, v in self.ids.items()}
        self.sessions = {
            "a": PeerSessions(self.ids["b"].peer_id),
            "b": PeerSessions(self.ids["a"].peer_id),
        }
        self.in_flight: dict[str, list[tuple[bytes, bytes]]] = {"a": [], "b": []}
        self.delivered: dict[str, list[bytes]] = {"a": [], "b": []}
        self.sent: dict[str, set[bytes]] = {"a": set(), "b": set()}
        self.counter = 0

    @staticmethod
    def other(side: str) -> str:
        return "b" if side == "a" else "a"

    @rule(side=st.sampled_from("ab"))
    def send(self, side: str) -> None:
        peer = self.other(side)
        sessions = self.sessions[side]
        bundle = None if sessions.established else self.own[peer].bundle()
        self.counter += 1
        text = b"%s-%d" % (side.encode(), self.counter)
        msg = sessions.encrypt(self.own[side], text, bundle)
        self.sent[side].add(text)
        # In flight towards ``peer``.
        self.in_flight[peer].append((text, msg.encode()))

    @precondition(lambda self: any(self.in_flight.values()))
    @rule(side=st.sampled_from("ab"), pick=st.integers(0, 1000), keep=st.booleans())
    def deliver(self, side: str, pick: int, keep: bool) -> None:
        queue = self.in_flight[side]
        if not queue:
            return
        text, data = queue[pick % len(queue)]
        if not keep:
            queue.remove((text, data))
        try:
            got = self.sessions[side].decrypt(self.own[side], SessionMessage.decode(data))
        except (ReplayError, DecryptError):
            # A duplicate from the current chain is reported as a replay; one
            # from a chain the ratchet has moved past can no longer be told
            # apart from garbage. Either way it must be one already delivered
            # (the messenger refuses it earlier, by envelope id).
            assert text in self.delivered[side], "an undelivered message failed to decrypt"
            return
        assert got == text
        assert got not in self.delivered[side], "accepted twice"
        self.delivered[side].append(got)

    @precondition(lambda self: any(self.in_flight.values()))
    @rule(side=st.sampled_from("ab"), pick=st.integers(0, 1000))
    def drop(self, side: str, pick: int) -> None:
        queue = self.in_flight[side]
        if queue:
            queue.pop(pick % len(queue))

    @rule(side=st.sampled_from("ab"))
    def restart(self, side: str) -> None:
        ident = self.ids[side]
        self.own[side] = OwnPrekeys.from_bytes(ident, self.own[side].to_bytes())
        s = self.sessions[side]
        self.sessions[side] = PeerSessions.from_bytes(s.peer, s.to_bytes())

    @invariant()
    def saved_state_is_the_whole_state(self) -> None:
        # Sessions remember their encoding until used: what is saved must
        # still be the encoding of every session as it is now.
        for sessions in self.sessions.values():
            fresh = {"v": 2, "sessions": [s.to_map() for s in sessions.sessions]}
            assert sessions.to_bytes() == cbor.encode(fresh)

    @invariant()
    def only_sent_messages_delivered(self) -> None:
        for side in "ab":
            assert set(self.delivered[side]) <= self.sent[self.other(side)]
            assert len(set(self.delivered[side])) == len(self.delivered[side])


TwoParties.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
test_two_parties = TwoParties.TestCase
