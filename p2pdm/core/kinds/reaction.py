"""The ``react`` kind: one emoji on an earlier message (docs/protocol.md §6.3).

Its wire name is ``react``: ``reaction`` was long used as the example of a
kind this version does not know (tests/core/vectors), so it stays unknown.

One reaction per person per message: a newer one replaces the older, an
empty ``emoji`` removes it. Accepted only from a participant of the target's
conversation (docs/protocol.md §6.6); never shown as a message of its own.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.model import MESSAGE_ID_BYTES
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_EXT_BYTES, MAX_REACTION_BYTES

__all__ = ["SPEC", "ReactionBody", "check_emoji"]

_MAX_BODY_BYTES: Final = MESSAGE_ID_BYTES + MAX_REACTION_BYTES + MAX_EXT_BYTES + 64


def check_emoji(emoji: str, what: str = "reaction") -> str:
    """``emoji`` if it is empty (removes) or at most MAX_REACTION_BYTES of text
    with no spaces or control characters; raises SchemaError."""
    if len(emoji.encode("utf-8", "surrogatepass")) > MAX_REACTION_BYTES:
        raise SchemaError(f"{what}: an emoji is at most {MAX_REACTION_BYTES} bytes")
    for char in emoji:
        if unicodedata.category(char)[0] in ("C", "Z") and char not in "\u200d\ufe0f":
            raise SchemaError(f"{what}: an emoji has no spaces or control characters")
    return emoji


@dataclass(frozen=True, slots=True)
class ReactionBody:
    target: bytes
    #: The emoji; empty removes the sender's reaction.
    emoji: str
    ext: dict[str, Any] | None = None
    kind: Literal["react"] = field(default="react", init=False)


def decode(fields: Fields) -> ReactionBody:
    """Raises SchemaError for a bad target id or emoji."""
    target = fields.blob("target", size=MESSAGE_ID_BYTES)
    emoji = check_emoji(fields.text("emoji", MAX_REACTION_BYTES), fields.what)
    ext = decode_ext(fields)
    fields.done()
    return ReactionBody(target, emoji, ext)


def encode(body: ReactionBody) -> dict[str, Any]:
    return encode_ext({"target": body.target, "emoji": body.emoji}, body.ext)


def target_ids(body: ReactionBody) -> tuple[bytes, ...]:
    return (body.target,)


SPEC: Final = KindSpec(
    name="react",
    body_type=ReactionBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=True,
    from_strangers=True,
    stored=False,
    target_ids=target_ids,
)
