"""The mailbox frames, challenge and key rules (sans-I/O): round trips, refusals, no crashes."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core import cbor
from p2pdm.core import mailbox as mb
from p2pdm.core.identity import Identity, PeerId
from p2pdm.errors import FrameTooLarge, SchemaError, SignatureError, WireError
from p2pdm.limits import MAX_FRAME_BYTES
from tests.core.conftest import ALICE, BOB

MAILBOX = Identity(b"\x03" * 32).peer_id
OTHER_MAILBOX = Identity(b"\x04" * 32).peer_id

LIMITS = mb.MailboxLimits(
    retention_s=100,
    max_envelope_bytes=1000,
    per_recipient_count=3,
    per_recipient_bytes=2500,
    total_count=10,
    total_bytes=5000,
)

peers = st.binary(min_size=32, max_size=32).map(PeerId.from_public_key)
requests = st.one_of(
    st.binary(max_size=300).map(mb.Deposit),
    st.just(mb.ChallengeRequest()),
    st.tuples(peers, st.binary(min_size=64, max_size=64)).map(lambda a: mb.Auth(*a)),
    st.integers(0, 2**63 - 1).map(mb.Fetch),
    st.lists(st.integers(1, 2**63 - 1), min_size=1, max_size=mb.MAX_DELETE_ITEMS).map(
        lambda s: mb.Delete(tuple(s))
    ),
)
replies = st.one_of(
    st.binary(min_size=32, max_size=32).map(mb.ChallengeReply),
    st.builds(
        mb.Result,
        st.sampled_from(sorted(mb.CODES)),
        st.text(max_size=20),
        st.integers(0, 2**63 - 1),
        st.integers(0, 2**63 - 1),
    ),
    st.builds(
        mb.Envelopes,
        st.lists(
            st.builds(mb.FetchedEnvelope, st.integers(1, 2**63 - 1), st.binary(max_size=100)),
            max_size=mb.MAX_FETCH_ITEMS,
        ).map(tuple),
        st.booleans(),
    ),
)


@settings(max_examples=200, deadline=None)
@given(requests)
def test_requests_round_trip(request: mb.Request) -> None:
    assert mb.decode_request(request.encode()) == request


@settings(max_examples=200, deadline=None)
@given(replies)
def test_replies_round_trip(reply: mb.Reply) -> None:
    assert mb.decode_reply(reply.encode()) == reply


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoders(data: bytes) -> None:
    for decode in (mb.decode_request, mb.decode_reply):
        with contextlib.suppress(WireError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["t", "env", "peer", "sig", "after", "seqs", "nonce", "code", "x"]),
        st.one_of(
            st.sampled_from(["deposit", "auth", "fetch", "delete", "challenge", "result"]),
            st.integers(-5, 2**64 - 1),
            st.binary(max_size=70),
            st.lists(st.integers(-1, 3), max_size=3),
            st.none(),
            st.booleans(),
        ),
    )
)
def test_random_maps_decode_or_raise_wire_error(fields: dict[str, object]) -> None:
    data = cbor.encode(fields)
    for decode in (mb.decode_request, mb.decode_reply):
        with contextlib.suppress(WireError):
            decode(data)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"t": "fetch"}, "missing field 'after'"),
        ({"t": "fetch", "after": -1}, "'after'"),
        ({"t": "fetch", "after": 0, "extra": 1}, "unknown field"),
        ({"t": "delete", "seqs": []}, "positive integers"),
        ({"t": "delete", "seqs": [0]}, "positive integers"),
        ({"t": "delete", "seqs": [True]}, "positive integers"),
        ({"t": "delete", "seqs": list(range(1, mb.MAX_DELETE_ITEMS + 2))}, "at most"),
        ({"t": "auth", "peer": b"\x00" * 38, "sig": bytes(64)}, "PeerID"),
        ({"t": "auth", "peer": ALICE.peer_id.raw, "sig": bytes(63)}, "64 bytes"),
        ({"t": "nope"}, "unknown type"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(fields: dict[str, object], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        mb.decode_request(cbor.encode(fields))


def test_reply_with_too_many_items_or_bad_item_refused() -> None:
    item = {"n": 1, "env": b"x"}
    with pytest.raises(SchemaError, match="at most"):
        mb.decode_reply(
            cbor.encode(
                {"t": "envelopes", "items": [item] * (mb.MAX_FETCH_ITEMS + 1), "more": False}
            )
        )
    with pytest.raises(SchemaError, match="item 0"):
        mb.decode_reply(cbor.encode({"t": "envelopes", "items": [[1, b"x"]], "more": False}))
    with pytest.raises(SchemaError, match="unknown field"):
        mb.decode_reply(
            cbor.encode({"t": "envelopes", "items": [{**item, "from": b"x"}], "more": False})
        )


def test_oversized_frames_refused_unread() -> None:
    big = mb.Deposit(bytes(MAX_FRAME_BYTES + 1)).encode()
    with pytest.raises(FrameTooLarge):
        mb.decode_request(big + bytes(100))
    with pytest.raises(SchemaError, match="at most"):
        mb.decode_request(mb.Deposit(bytes(MAX_FRAME_BYTES + 1)).encode())


def test_challenge_answer_verifies_only_for_that_mailbox_nonce_and_signer() -> None:
    nonce = os.urandom(mb.NONCE_BYTES)
    sig = mb.auth_signature(ALICE, MAILBOX, nonce)
    mb.verify_auth(MAILBOX, nonce, ALICE.peer_id, sig)
    with pytest.raises(SignatureError):
        mb.verify_auth(OTHER_MAILBOX, nonce, ALICE.peer_id, sig)  # relayed challenge
    with pytest.raises(SignatureError):
        mb.verify_auth(MAILBOX, os.urandom(mb.NONCE_BYTES), ALICE.peer_id, sig)  # stale
    with pytest.raises(SignatureError):
        mb.verify_auth(MAILBOX, nonce, BOB.peer_id, sig)  # someone else's claim
    # The same bytes signed in another domain do not pass.
    other = ALICE.sign("msg/v1", cbor.encode({"mailbox": MAILBOX.raw, "nonce": nonce}))
    with pytest.raises(SignatureError):
        mb.verify_auth(MAILBOX, nonce, ALICE.peer_id, other)


def test_mailbox_key_is_per_peer_and_closest_orders_by_xor_distance() -> None:
    key = mb.mailbox_key(ALICE.peer_id)
    assert len(key) == 32 and key != mb.mailbox_key(BOB.peer_id)
    candidates = [Identity(bytes([n]) * 32).peer_id for n in range(10, 30)]
    chosen = mb.closest(key, candidates + candidates[:3], 3)
    assert len(chosen) == 3 and len(set(chosen)) == 3

    def distance(p: PeerId) -> int:
        return int.from_bytes(key, "big") ^ int.from_bytes(mb.peer_key(p), "big")

    assert [distance(p) for p in chosen] == sorted(distance(p) for p in chosen)
    assert max(distance(p) for p in chosen) <= min(
        distance(p) for p in candidates if p not in chosen
    )


@pytest.mark.parametrize(
    "size, recipient, total, code",
    [
        (100, (0, 0), (0, 0), mb.OK),
        (1001, (0, 0), (0, 0), mb.TOO_LARGE),
        (100, (3, 300), (3, 300), mb.OVER_QUOTA),
        (1000, (2, 1600), (2, 1600), mb.OVER_QUOTA),
        (100, (0, 0), (10, 1000), mb.FULL),
        (1000, (0, 0), (5, 4500), mb.FULL),
        (1000, (2, 1500), (5, 4000), mb.OK),
    ],
)
def test_check_deposit(
    size: int, recipient: tuple[int, int], total: tuple[int, int], code: str
) -> None:
    assert mb.check_deposit(LIMITS, size, recipient, total, stamped=True) == code


def test_a_depositor_holds_only_its_share_and_pays_once_the_quota_is_half_used() -> None:
    limits = mb.MailboxLimits(100, 1000, 40, 40_000, 1000, 1 << 20, depositor_share=8)
    assert limits.depositor_quota() == (5, 5000)
    # Its share used up: refused, whatever the recipient's quota says.
    assert mb.check_deposit(limits, 10, (5, 50), (5, 50), (5, 50)) == mb.OVER_SHARE
    assert mb.check_deposit(limits, 1000, (4, 4100), (4, 4100), (4, 4100)) == mb.OVER_SHARE
    assert mb.check_deposit(limits, 10, (4, 40), (4, 40), (4, 40)) == mb.OK
    # Half the recipient's count or bytes used: a stamp is needed, and enough.
    for usage in [(20, 200), (1, 20_000)]:
        assert mb.check_deposit(limits, 10, usage, usage) == mb.STAMP_REQUIRED
        assert mb.check_deposit(limits, 10, usage, usage, stamped=True) == mb.OK
    assert mb.check_deposit(limits, 10, (19, 19_999), (19, 19_999)) == mb.OK
    # Tiny quotas still leave every depositor one envelope.
    assert mb.MailboxLimits(100, 1000, 2, 2000, 10, 10_000).depositor_quota() == (1, 1000)


def test_deposit_stamps_bind_mailbox_recipient_envelope_and_day() -> None:
    day_ms = 86_400_000
    now = 20_000 * day_ms + 5
    envelope = b"sealed bytes"
    token = mb.mint_stamp(MAILBOX, BOB.peer_id, envelope, now, 8)
    assert len(token) == mb.STAMP_BYTES
    assert mb.verify_stamp(MAILBOX, BOB.peer_id, envelope, now, token, 8)
    # The next day (clock skew) still; two days on, another mailbox, recipient or envelope: no.
    assert mb.verify_stamp(MAILBOX, BOB.peer_id, envelope, now + day_ms, token, 8)
    assert not mb.verify_stamp(MAILBOX, BOB.peer_id, envelope, now + 2 * day_ms, token, 8)
    assert not mb.verify_stamp(OTHER_MAILBOX, BOB.peer_id, envelope, now, token, 8)
    assert not mb.verify_stamp(MAILBOX, ALICE.peer_id, envelope, now, token, 8)
    assert not mb.verify_stamp(MAILBOX, BOB.peer_id, envelope + b"!", now, token, 8)
    assert not mb.verify_stamp(MAILBOX, BOB.peer_id, envelope, now, token[:-1], 8)


def test_stamps_and_asked_bits_round_trip_on_the_wire() -> None:
    deposit = mb.Deposit(b"env", bytes(mb.STAMP_BYTES))
    assert mb.decode_request(deposit.encode()) == deposit
    assert mb.decode_request(mb.Deposit(b"env").encode()) == mb.Deposit(b"env")
    with pytest.raises(SchemaError):
        mb.decode_request(cbor.encode({"t": "deposit", "env": b"e", "stamp": b"short"}))
    asked = mb.Result(mb.STAMP_REQUIRED, "quota half used", bits=16)
    assert mb.decode_reply(asked.encode()) == asked
    # A result without a stamp request encodes as before: older clients decode it.
    assert b"bits" not in mb.Result(mb.OK).encode()
    with pytest.raises(SchemaError):
        mb.decode_reply(cbor.encode({**cbor.decode(asked.encode(), 1000), "bits": 99}))


# --- withdraw (/p2pdm/mailbox/1.1.0) ----------------------------------------------

withdraw_requests = st.one_of(
    st.builds(
        mb.Withdraw,
        st.lists(
            st.binary(min_size=mb.WITHDRAW_SECRET_BYTES, max_size=mb.WITHDRAW_SECRET_BYTES),
            min_size=1,
            max_size=mb.MAX_WITHDRAW_ITEMS,
        ).map(tuple),
    ),
    st.builds(
        mb.Deposit,
        st.binary(max_size=200),
        st.none() | st.binary(min_size=mb.STAMP_BYTES, max_size=mb.STAMP_BYTES),
        st.none() | st.binary(min_size=mb.WITHDRAW_HASH_BYTES, max_size=mb.WITHDRAW_HASH_BYTES),
    ),
)


@settings(max_examples=200, deadline=None)
@given(withdraw_requests)
def test_withdraw_requests_round_trip_on_1_1_only(request: mb.Request) -> None:
    assert mb.decode_request(request.encode(), withdraw=True) == request
    plain = isinstance(request, mb.Deposit) and request.withdraw is None
    if plain:  # what 1.0.0 knows decodes the same there
        assert mb.decode_request(request.encode()) == request
    else:
        with pytest.raises(WireError):
            mb.decode_request(request.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_1_1_decoder(data: bytes) -> None:
    with contextlib.suppress(WireError):
        mb.decode_request(data, withdraw=True)


def test_withdraw_frames_are_capped_and_checked() -> None:
    good = os.urandom(mb.WITHDRAW_SECRET_BYTES)
    for bad in (
        {"t": "withdraw", "secrets": []},
        {"t": "withdraw", "secrets": [good] * (mb.MAX_WITHDRAW_ITEMS + 1)},
        {"t": "withdraw", "secrets": [good[:-1]]},
        {"t": "withdraw", "secrets": ["text"]},
        {"t": "withdraw", "secrets": [good], "more": 1},
        {"t": "deposit", "env": b"x", "wd": b"short"},
    ):
        with pytest.raises(WireError):
            mb.decode_request(cbor.encode(bad), withdraw=True)
    # An unknown type is answered on 1.1.0 (its fields unread), refused on 1.0.0.
    later = cbor.encode({"t": "compact", "anything": [1, 2]})
    assert mb.decode_request(later, withdraw=True) == mb.UnknownRequest("compact")
    with pytest.raises(WireError):
        mb.decode_request(later)
    # The frame cap holds before any parsing.
    with pytest.raises(WireError):
        mb.decode_request(b"\x00" * (mb.MAX_REQUEST_FRAME_BYTES + 1), withdraw=True)
