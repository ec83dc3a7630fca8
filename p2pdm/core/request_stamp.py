"""The request stamp: the proof of work a stranger's message carries.

How this works: a peer who is not the recipient's contact pays for writing
to it. Its envelope's session message carries a *request stamp*
(``SessionMessage.stamp``, docs/protocol.md §18.2): the UTC day it was made
for (4 bytes, big-endian) and an 8-byte nonce, a hashcash stamp of
:mod:`p2pdm.core.stamp` over the resource

    b"p2pdm/request-stamp/v1\\x00" ‖ len ‖ recipient ‖ len ‖ sender ‖ day

so it is good for one sender writing to one recipient around one day, and
never for a mailbox deposit (whose resource starts with another domain).
Minting costs 2**bits hashes on average (REQUEST_STAMP_BITS: about a second
of one core); checking costs one hash. The recipient accepts the days
within STAMP_DAYS_SKEW of its own (clocks differ, midnight passes).

No I/O, no clock: the caller gives the time.
"""

from __future__ import annotations

from typing import Final

from p2pdm.core import stamp
from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import STAMP_DAYS_SKEW, stamp_day
from p2pdm.core.wire import REQUEST_STAMP_BYTES

__all__ = [
    "REQUEST_STAMP_BYTES",
    "REQUEST_STAMP_DOMAIN",
    "mint_request_stamp",
    "request_stamp_resource",
    "verify_request_stamp",
]

#: The resource's prefix: a deposit stamp can never pass as a request stamp.
REQUEST_STAMP_DOMAIN: Final = b"p2pdm/request-stamp/v1\x00"


def request_stamp_resource(recipient: PeerId, sender: PeerId, day: int) -> bytes:
    """What a request stamp pays for: ``sender`` writing to ``recipient`` on ``day``."""
    return b"".join(
        (
            REQUEST_STAMP_DOMAIN,
            len(recipient.raw).to_bytes(1, "big"),
            recipient.raw,
            len(sender.raw).to_bytes(1, "big"),
            sender.raw,
            day.to_bytes(4, "big"),
        )
    )


def mint_request_stamp(recipient: PeerId, sender: PeerId, now_ms: int, bits: int) -> bytes:
    """A ``REQUEST_STAMP_BYTES`` stamp for today (CPU-bound: run it off the event loop).

    Raises ValueError for ``bits`` outside 0..stamp.MAX_DIFFICULTY.
    """
    day = stamp_day(now_ms)
    nonce = stamp.mint(request_stamp_resource(recipient, sender, day), bits)
    assert nonce is not None  # unbounded tries always end
    return day.to_bytes(4, "big") + nonce


def verify_request_stamp(
    recipient: PeerId, sender: PeerId, now_ms: int, token: bytes | None, bits: int
) -> bool:
    """True if ``token`` is a stamp of at least ``bits`` for this sender and
    recipient, made for a day within STAMP_DAYS_SKEW of ``now_ms``'s."""
    if token is None or len(token) != REQUEST_STAMP_BYTES:
        return False
    day = int.from_bytes(token[:4], "big")
    if abs(day - stamp_day(now_ms)) > STAMP_DAYS_SKEW:
        return False
    return stamp.verify(request_stamp_resource(recipient, sender, day), token[4:], bits)
