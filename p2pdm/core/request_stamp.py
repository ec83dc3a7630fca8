"""The request stamp: the proof of work a stranger's message carries.

How this works: a peer who is not the recipient's contact pays for writing
to it. Its message's body carries a *request stamp* in the extension field
``request_stamp`` of its ``ext`` map (docs/protocol.md §6.4, §18.2), which
nodes that do not check stamps ignore: the UTC day it was made for (4
bytes, big-endian) and an 8-byte nonce, a hashcash stamp of
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

import dataclasses
import functools
import unicodedata
from typing import Final, TypeVar

from p2pdm.core import stamp
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds.base import EXT_FIELD, UnknownBody
from p2pdm.core.mailbox import STAMP_DAYS_SKEW, stamp_day
from p2pdm.core.wire import REQUEST_STAMP_BYTES
from p2pdm.limits import MAX_NAME_BYTES

__all__ = [
    "REQUEST_NAME_EXT",
    "REQUEST_STAMP_BYTES",
    "REQUEST_STAMP_DOMAIN",
    "REQUEST_STAMP_EXT",
    "mint_request_stamp",
    "request_name_of",
    "request_stamp_of",
    "request_stamp_resource",
    "verify_request_stamp",
    "with_request_stamp",
    "without_request_stamp",
]

#: The resource's prefix: a deposit stamp can never pass as a request stamp.
REQUEST_STAMP_DOMAIN: Final = b"p2pdm/request-stamp/v1\x00"
#: The extension field (docs/protocol.md §6.4) a body carries its stamp in.
REQUEST_STAMP_EXT: Final = "request_stamp"
#: The extension field beside it with the name the sender goes by (unverified).
REQUEST_NAME_EXT: Final = "request_name"

_B = TypeVar("_B")


#: Body classes whose answer to "has it an ext field?" is remembered: one
#: per kind of message (a few dozen at most), fixed by the code.
BODY_TYPES_REMEMBERED: Final = 64


@functools.lru_cache(maxsize=BODY_TYPES_REMEMBERED)
def _has_ext(body_type: type) -> bool:
    """True if bodies of ``body_type`` are dataclasses with an ``ext`` field."""
    return dataclasses.is_dataclass(body_type) and EXT_FIELD in {
        f.name for f in dataclasses.fields(body_type)
    }


def with_request_stamp(body: _B, token: bytes, name: str = "") -> _B:
    """``body`` with ``token`` (and ``name``, the sender's, if any) in its
    ``ext`` map (every kind may carry one, docs/protocol.md §6.4); a body
    type without ``ext`` is returned as it is."""
    added: dict[str, object] = {REQUEST_STAMP_EXT: token}
    if name:
        added[REQUEST_NAME_EXT] = name
    if isinstance(body, UnknownBody):  # a kind of a newer version, in tests
        found = body.fields.get(EXT_FIELD)
        if found is not None and not isinstance(found, dict):
            return body  # not the ext of §6.4: left as it is
        ext = {**(found or {}), **added}
        return UnknownBody(body.kind, {**body.fields, EXT_FIELD: ext})  # type: ignore[return-value]
    body_type: type = type(body)
    if not _has_ext(body_type):
        return body
    ext = {**(getattr(body, EXT_FIELD, None) or {}), **added}
    return dataclasses.replace(body, ext=ext)  # type: ignore[type-var]


def request_name_of(body: object) -> str | None:
    """The name a request's sender says it goes by (``request_name`` in its
    ``ext``), if it is a plausible name: 1..MAX_NAME_BYTES of UTF-8 without
    control or format characters (no bidi overrides); else None."""
    ext = body.fields.get(EXT_FIELD) if isinstance(body, UnknownBody) else None
    if ext is None:
        ext = getattr(body, EXT_FIELD, None)
    name = ext.get(REQUEST_NAME_EXT) if isinstance(ext, dict) else None
    if not isinstance(name, str):
        return None
    name = name.strip()
    if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return None
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in name):
        return None
    return name


def without_request_stamp(body: _B, *, keep_name: bool = False) -> _B:
    """``body`` without its request stamp (and its sender's name unless
    ``keep_name``): what is stored and shown of a message once its stamp was
    checked (an ``ext`` left empty is omitted, §6.4)."""
    dropped = {REQUEST_STAMP_EXT} if keep_name else {REQUEST_STAMP_EXT, REQUEST_NAME_EXT}
    if isinstance(body, UnknownBody):
        found = body.fields.get(EXT_FIELD)
        if not isinstance(found, dict) or not dropped & found.keys():
            return body
        rest = {k: v for k, v in found.items() if k not in dropped}
        fields = {k: v for k, v in body.fields.items() if k != EXT_FIELD}
        return UnknownBody(body.kind, {**fields, EXT_FIELD: rest} if rest else fields)  # type: ignore[return-value]
    ext = getattr(body, EXT_FIELD, None)
    if not isinstance(ext, dict) or not dropped & ext.keys():
        return body
    rest = {k: v for k, v in ext.items() if k not in dropped}
    return dataclasses.replace(body, ext=rest or None)  # type: ignore[type-var]


def request_stamp_of(body: object) -> bytes | None:
    """The request stamp ``body`` carries in its ``ext`` map, or None (none, or
    not a byte string of REQUEST_STAMP_BYTES)."""
    if isinstance(body, UnknownBody):
        ext = body.fields.get(EXT_FIELD)
    else:
        ext = getattr(body, EXT_FIELD, None)
    token = ext.get(REQUEST_STAMP_EXT) if isinstance(ext, dict) else None
    return token if isinstance(token, bytes) and len(token) == REQUEST_STAMP_BYTES else None


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
