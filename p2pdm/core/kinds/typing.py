"""The ``typing`` kind: the sender is typing in the conversation (docs/protocol.md §6.8).

Ephemeral: sent only over a dm stream to a peer already connected, never
queued, stored or deposited; the receiver keeps nothing of it but the
replay and session state every message updates, and shows that the peer
is typing for TYPING_LAPSE_S.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.limits import MAX_EXT_BYTES

__all__ = ["SPEC", "TypingBody"]

#: A stored typing body (never stored; the cap of a decoder all the same).
_MAX_BODY_BYTES: Final = MAX_EXT_BYTES + 64


@dataclass(frozen=True, slots=True)
class TypingBody:
    #: Extension fields of a newer version, kept and otherwise ignored.
    ext: dict[str, Any] | None = None
    kind: Literal["typing"] = field(default="typing", init=False)


def decode(fields: Fields) -> TypingBody:
    """Raises SchemaError for any field but a good ext."""
    ext = decode_ext(fields)
    fields.done()
    return TypingBody(ext)


def encode(body: TypingBody) -> dict[str, Any]:
    return encode_ext({}, body.ext)


SPEC: Final = KindSpec(
    name="typing",
    body_type=TypingBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=False,
    # A message request gets no typing: only contacts' is shown.
    from_strangers=False,
    stored=False,
)
