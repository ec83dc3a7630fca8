"""The message kinds this version knows, and dispatch on a kind's name.

How this works: each kind is one module here holding its frozen body, its
strict decoder, its encoder and its flags as one ``SPEC``
(:class:`~p2pdm.core.kinds.base.KindSpec`). :data:`KINDS` is the only list
of them; the wire decoder, the conversation machine and the messenger look
kinds up through it and never name one. A kind not in :data:`KINDS` decodes
as :class:`UnknownBody` (bounded by ``MAX_UNKNOWN_BODY_BYTES``), so a newer
peer's kinds need no format change.

To add a kind: a module beside ``text.py`` with its body, decoder, encoder
and ``SPEC``, one line in :data:`KINDS`, its tests, and — only when it does
more than being stored and shown — its effect in ``core/conversation.py``.
"""

from __future__ import annotations

from typing import Any, Final

from p2pdm.core import cbor
from p2pdm.core.cbor import Fields
from p2pdm.core.kinds import (
    blobchunk,
    edit,
    group,
    live_location,
    location,
    media,
    reaction,
    receipt,
    text,
    timer,
    typing,
    unsend,
)
from p2pdm.core.kinds.base import MAX_KIND_BYTES, Body, KindSpec, UnknownBody
from p2pdm.core.kinds.blobchunk import BlobChunkBody
from p2pdm.core.kinds.edit import EditBody
from p2pdm.core.kinds.group import GroupChangeBody, GroupMsgBody
from p2pdm.core.kinds.live_location import LiveLocationBody
from p2pdm.core.kinds.location import LocationBody
from p2pdm.core.kinds.media import MediaBody, MediaItem
from p2pdm.core.kinds.reaction import ReactionBody
from p2pdm.core.kinds.receipt import ReceiptBody
from p2pdm.core.kinds.text import TextBody
from p2pdm.core.kinds.timer import TimerBody
from p2pdm.core.kinds.typing import TypingBody
from p2pdm.core.kinds.unsend import UnsendBody
from p2pdm.errors import SchemaError, WireError
from p2pdm.limits import MAX_UNKNOWN_BODY_BYTES

__all__ = [
    "KINDS",
    "MAX_KIND_BYTES",
    "BlobChunkBody",
    "Body",
    "EditBody",
    "GroupChangeBody",
    "GroupMsgBody",
    "KindSpec",
    "LiveLocationBody",
    "LocationBody",
    "MediaBody",
    "MediaItem",
    "ReactionBody",
    "ReceiptBody",
    "TextBody",
    "TimerBody",
    "TypingBody",
    "UnknownBody",
    "UnsendBody",
    "decode_body",
    "decode_stored",
    "encode_body",
    "spec_for",
]

#: Every kind this version knows, by name.
KINDS: Final[dict[str, KindSpec[Any]]] = {
    text.SPEC.name: text.SPEC,
    receipt.SPEC.name: receipt.SPEC,
    reaction.SPEC.name: reaction.SPEC,
    edit.SPEC.name: edit.SPEC,
    unsend.SPEC.name: unsend.SPEC,
    timer.SPEC.name: timer.SPEC,
    typing.SPEC.name: typing.SPEC,
    media.SPEC.name: media.SPEC,
    location.SPEC.name: location.SPEC,
    blobchunk.SPEC.name: blobchunk.SPEC,
    group.CHANGE_SPEC.name: group.CHANGE_SPEC,
    group.MSG_SPEC.name: group.MSG_SPEC,
    live_location.SPEC.name: live_location.SPEC,
}


def spec_for(kind: str) -> KindSpec[Any] | None:
    """The spec of ``kind``; None for a kind this version does not know."""
    return KINDS.get(kind)


def decode_body(kind: str, fields: Fields) -> Any:
    """Check a body map against the schema of ``kind``; raises SchemaError.

    A kind this version does not know becomes an :class:`UnknownBody`, if
    its canonical encoding is at most MAX_UNKNOWN_BODY_BYTES.
    """
    spec = spec_for(kind)
    if spec is not None:
        return spec.decode(fields)
    raw = fields.raw()
    if len(cbor.encode(raw)) > MAX_UNKNOWN_BODY_BYTES:
        raise SchemaError(f"{fields.what}: body of unknown kind {kind!r} is too large")
    return UnknownBody(kind, raw)


def encode_body(body: Body) -> dict[str, Any]:
    """The CBOR map of a body (without its kind)."""
    if isinstance(body, UnknownBody):
        return dict(body.fields)
    spec = spec_for(body.kind)
    if spec is None or not isinstance(body, spec.body_type):
        raise SchemaError(f"no registered kind {body.kind!r} for a {type(body).__name__}")
    return spec.encode(body)


def decode_stored(kind: str, data: bytes) -> Any | None:
    """A stored body decoded by its kind's decoder; None for an unknown kind
    or a body that does not decode (this never raises)."""
    spec = spec_for(kind)
    if spec is None:
        return None
    try:
        return spec.decode_bytes(data)
    except WireError:  # a damaged store row is shown as nothing
        return None
