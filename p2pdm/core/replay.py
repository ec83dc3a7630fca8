"""Replay protection: the keys a receiver remembers, and re-keying old outbox entries.

How this works (normative text: docs/protocol.md §11). A receiver keeps one
set of opaque keys (the store's seen-id table) with two kinds of entry, told
apart by a one-byte tag and by length, so that no value of one kind can ever
equal a value of the other or a key from before this scheme (bare 16-byte ids):

* ``"e" || envelope id`` — a pre-filter. An envelope id is the hash of the
  envelope's content (:func:`p2pdm.core.wire.envelope_id`) and is checked
  before this lookup, so a hit means these very bytes were accepted already:
  nobody can make another envelope take an id they have seen.
* ``"m" || sender PeerID || message id`` — the authoritative check, made
  after the envelope is opened and the inner message's signature verified:
  the same sender's message with the same id was accepted already. One
  sender's ids never shadow another's.

:func:`rekeyed` gives an outbox entry made before envelope ids were bound to
content a valid id (the sealed bytes are unchanged).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from p2pdm.core.identity import PeerId
from p2pdm.core.model import OutboxItem
from p2pdm.core.wire import Envelope

__all__ = [
    "ENVELOPE_IDS_BOUND",
    "ENVELOPE_IDS_SETTING",
    "rekeyed",
    "seen_envelope_key",
    "seen_message_key",
]

#: Setting recording that this store's outbox holds only content-bound envelope ids.
ENVELOPE_IDS_SETTING: Final = "envelope_ids"
#: Its value once the outbox was re-keyed (docs/protocol.md §9).
ENVELOPE_IDS_BOUND: Final = "content-v1"
_ENVELOPE_TAG: Final = b"e"
_MESSAGE_TAG: Final = b"m"


def seen_envelope_key(envelope_id: bytes) -> bytes:
    """The seen-table key of an accepted envelope (check its id first)."""
    return _ENVELOPE_TAG + envelope_id


def seen_message_key(sender: PeerId, message_id: bytes) -> bytes:
    """The seen-table key of an accepted message: its authenticated sender and id."""
    return _MESSAGE_TAG + sender.raw + message_id


def rekeyed(item: OutboxItem) -> OutboxItem | None:
    """``item`` with a content-bound envelope id, or None if it has one already.

    Raises a WireError subclass if the queued envelope does not decode.
    """
    envelope = Envelope.decode(item.envelope)
    fresh = Envelope.create(envelope.recipient, envelope.expires_at_s, envelope.sealed)
    if fresh.id == envelope.id:
        return None
    return replace(item, envelope_id=fresh.id, envelope=fresh.encode())
