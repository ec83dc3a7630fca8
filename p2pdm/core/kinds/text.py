"""The ``text`` kind: a message a person writes (docs/protocol.md §6.1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.kinds.timer import decode_message_timer, encode_message_timer
from p2pdm.core.model import MESSAGE_ID_BYTES
from p2pdm.limits import MAX_EXT_BYTES, MAX_TEXT_BYTES

__all__ = ["SPEC", "TextBody"]

#: A stored text body: the text, a reply id, an ext map and CBOR headers.
_MAX_BODY_BYTES: Final = MAX_TEXT_BYTES + MAX_EXT_BYTES + 128


@dataclass(frozen=True, slots=True)
class TextBody:
    text: str
    reply_to: bytes | None = None
    #: Extension fields of a newer version, kept and otherwise ignored.
    ext: dict[str, Any] | None = None
    #: Disappearing-message timer in seconds (0: the message stays), counted
    #: from when the recipient reads it (docs/protocol.md §6.7).
    timer_s: int = 0
    kind: Literal["text"] = field(default="text", init=False)


def decode(fields: Fields) -> TextBody:
    """Raises SchemaError for a text over MAX_TEXT_BYTES, a bad reply id, timer or ext."""
    text = fields.text("text", MAX_TEXT_BYTES)
    reply_to = fields.opt_blob("reply_to", size=MESSAGE_ID_BYTES)
    timer_s = decode_message_timer(fields)
    ext = decode_ext(fields)
    fields.done()
    return TextBody(text, reply_to, ext, timer_s)


def encode(body: TextBody) -> dict[str, Any]:
    out: dict[str, Any] = {"text": body.text}
    if body.reply_to is not None:
        out["reply_to"] = body.reply_to
    return encode_ext(encode_message_timer(out, body.timer_s), body.ext)


SPEC: Final = KindSpec(
    name="text",
    body_type=TextBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=True,
    targets=False,
    from_strangers=True,
    stored=True,
)
