"""Request stamps: bound to recipient, sender and day; never a deposit stamp."""

from __future__ import annotations

import os
from typing import Any

import pytest

from p2pdm.core import cbor, mailbox
from p2pdm.core import stamp as stamp_module
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import (
    BlobChunkBody,
    ReactionBody,
    ReceiptBody,
    TextBody,
    TimerBody,
    UnknownBody,
    decode_body,
    encode_body,
)
from p2pdm.core.request_stamp import (
    REQUEST_STAMP_BYTES,
    REQUEST_STAMP_EXT,
    mint_request_stamp,
    request_stamp_of,
    request_stamp_resource,
    verify_request_stamp,
    with_request_stamp,
    without_request_stamp,
)
from p2pdm.core.stamp import work
from p2pdm.core.wire import SessionMessage
from p2pdm.errors import SchemaError
from p2pdm.limits import REQUEST_STAMP_BITS

DAY_MS = 86_400_000
NOW = 1_700_000_000_000
#: Enough work that a stamp for another resource passes by chance once in 2**14 checks.
BITS = 14


def _peer() -> PeerId:
    return Identity(os.urandom(32)).peer_id


def test_a_stamp_is_good_for_its_recipient_sender_and_days_around_it() -> None:
    bob, alice, carol = _peer(), _peer(), _peer()
    stamp = mint_request_stamp(bob, alice, NOW, BITS)
    assert len(stamp) == REQUEST_STAMP_BYTES
    for at in (NOW - DAY_MS, NOW, NOW + DAY_MS):  # yesterday's, today's, tomorrow's clock
        assert verify_request_stamp(bob, alice, at, stamp, BITS)
    assert not verify_request_stamp(bob, alice, NOW + 2 * DAY_MS, stamp, BITS)
    assert not verify_request_stamp(carol, alice, NOW, stamp, BITS)  # another recipient's
    assert not verify_request_stamp(bob, carol, NOW, stamp, BITS)  # another sender's
    assert not verify_request_stamp(bob, alice, NOW, None, BITS)
    assert not verify_request_stamp(bob, alice, NOW, stamp[:-1], BITS)


def test_a_deposit_stamp_is_never_a_request_stamp() -> None:
    bob, alice = _peer(), _peer()
    day = mailbox.stamp_day(NOW)
    assert request_stamp_resource(bob, alice, day) != mailbox.stamp_resource(alice, bob, b"", day)
    assert request_stamp_resource(bob, alice, day).startswith(b"p2pdm/request-stamp/v1\x00")


def test_a_body_carries_its_stamp_in_ext_beside_other_extension_fields() -> None:
    token = b"\x01" * REQUEST_STAMP_BYTES
    for body in (
        TextBody("hi"),
        TextBody("hi", ext={"x-other": 1}),
        ReactionBody(bytes(16), "👍"),
        ReceiptBody("read", (bytes(16),)),
        TimerBody(300),
        BlobChunkBody(bytes(32), 0, b"chunk"),
    ):
        stamped = with_request_stamp(body, token)
        again = decode_body(
            body.kind, cbor.decode_map(cbor.encode(encode_body(stamped)), 1 << 20, "b")
        )
        assert request_stamp_of(again) == token
        assert {k: v for k, v in (again.ext or {}).items() if k != REQUEST_STAMP_EXT} == (
            body.ext or {}
        )
        assert request_stamp_of(body) is None
        assert without_request_stamp(again) == body  # what is stored and shown
    newer = UnknownBody("sticker", {"id": 3})
    assert without_request_stamp(with_request_stamp(newer, token)) == newer
    assert request_stamp_of(with_request_stamp(newer, token)) == token
    short = TextBody("hi", ext={REQUEST_STAMP_EXT: token[:-1]})
    assert request_stamp_of(short) is None  # wrong size: no stamp, not an error
    assert request_stamp_of(TextBody("hi", ext={REQUEST_STAMP_EXT: "text"})) is None


def test_the_session_message_has_no_stamp_field() -> None:
    message = SessionMessage(_peer(), None, bytes(32), 0, 1, b"ct")
    raw = cbor.decode_map(message.encode(), 4096, "session message").raw()
    assert set(raw) == {"v", "from", "dh", "pn", "n", "ct"}
    with_stamp = cbor.encode({**raw, "stamp": b"\x01" * REQUEST_STAMP_BYTES})
    with pytest.raises(SchemaError):  # strict, as every version-1 decoder is
        SessionMessage.decode(with_stamp)


@pytest.mark.slow
def test_the_real_cost_is_paid_to_make_and_one_hash_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bob, alice = _peer(), _peer()
    assert REQUEST_STAMP_BITS >= 16  # 2**16+ hashes: the real cost, not a test's
    stamp = mint_request_stamp(bob, alice, NOW, REQUEST_STAMP_BITS)
    day = mailbox.stamp_day(NOW)
    assert work(request_stamp_resource(bob, alice, day), stamp[4:]) >= REQUEST_STAMP_BITS
    # Checking costs one hash, whatever the difficulty (counted, not timed).
    hashes: list[bytes] = []
    real = stamp_module._hasher

    def counted(data: bytes) -> Any:
        hashes.append(data)
        return real(data)

    monkeypatch.setattr(stamp_module, "_hasher", counted)
    for _ in range(100):
        assert verify_request_stamp(bob, alice, NOW, stamp, REQUEST_STAMP_BITS)
    assert len(hashes) == 100
