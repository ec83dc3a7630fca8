"""Request stamps: bound to recipient, sender and day; never a deposit stamp."""

from __future__ import annotations

import os
import time

import pytest

from p2pdm.core import mailbox
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.request_stamp import (
    REQUEST_STAMP_BYTES,
    mint_request_stamp,
    request_stamp_resource,
    verify_request_stamp,
)
from p2pdm.core.stamp import work
from p2pdm.core.wire import SessionMessage
from p2pdm.errors import SchemaError
from p2pdm.limits import REQUEST_STAMP_BITS

DAY_MS = 86_400_000
NOW = 1_700_000_000_000
BITS = 6


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


def test_the_session_message_carries_a_stamp_of_the_right_size() -> None:
    message = SessionMessage(_peer(), None, bytes(32), 0, 1, b"ct", b"\x01" * REQUEST_STAMP_BYTES)
    assert SessionMessage.decode(message.encode()) == message
    unstamped = SessionMessage(message.sender, None, bytes(32), 0, 1, b"ct")
    assert SessionMessage.decode(unstamped.encode()).stamp is None
    bad = SessionMessage(message.sender, None, bytes(32), 0, 1, b"ct", b"\x01" * 5)
    with pytest.raises(SchemaError):
        SessionMessage.decode(bad.encode())


@pytest.mark.slow
def test_the_real_cost_is_paid_to_make_and_microseconds_to_check() -> None:
    bob, alice = _peer(), _peer()
    assert REQUEST_STAMP_BITS >= 16  # about a second of one core, not a test's cost
    stamp = mint_request_stamp(bob, alice, NOW, REQUEST_STAMP_BITS)
    day = mailbox.stamp_day(NOW)
    assert work(request_stamp_resource(bob, alice, day), stamp[4:]) >= REQUEST_STAMP_BITS
    started = time.perf_counter()
    for _ in range(100):
        assert verify_request_stamp(bob, alice, NOW, stamp, REQUEST_STAMP_BITS)
    assert (time.perf_counter() - started) / 100 < 0.001
