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
from p2pdm.core.kinds.targeted import targeting_spec
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_REACTION_BYTES

__all__ = ["SPEC", "ReactionBody", "check_emoji", "check_own_emoji"]


def check_emoji(emoji: str, what: str = "reaction") -> str:
    """``emoji`` if it is empty (removes) or at most MAX_REACTION_BYTES of text
    with no spaces or control characters; raises SchemaError."""
    if len(emoji.encode("utf-8", "surrogatepass")) > MAX_REACTION_BYTES:
        raise SchemaError(f"{what}: an emoji is at most {MAX_REACTION_BYTES} bytes")
    for char in emoji:
        if unicodedata.category(char)[0] in ("C", "Z") and char not in "\u200d\ufe0f":
            raise SchemaError(f"{what}: an emoji has no spaces or control characters")
    return emoji


#: Ends a keycap emoji (1️⃣, #️⃣, *️⃣): the one place an emoji holds ASCII.
_KEYCAP = "\u20e3"


def check_own_emoji(emoji: str) -> str:
    """:func:`check_emoji`, and what this node's user sends looks like an emoji:
    no letter of any script, and ASCII only in a keycap (docs/protocol.md §6.6:
    a receiver takes any reaction :func:`check_emoji` passes); raises SchemaError."""
    check_emoji(emoji)
    letters = any(unicodedata.category(char).startswith("L") for char in emoji)
    ascii_text = _KEYCAP not in emoji and any(char.isascii() for char in emoji)
    if letters or ascii_text:
        raise SchemaError(f"a reaction is an emoji, not {emoji!r}")
    return emoji


@dataclass(frozen=True, slots=True)
class ReactionBody:
    target: bytes
    #: The emoji; empty removes the sender's reaction.
    emoji: str
    ext: dict[str, Any] | None = None
    kind: Literal["react"] = field(default="react", init=False)


def _emoji(read: Fields) -> str:
    return check_emoji(read.text("emoji", MAX_REACTION_BYTES), read.what)


SPEC: Final = targeting_spec(
    "react", ReactionBody, (("emoji", _emoji),), max_fields_bytes=MAX_REACTION_BYTES
)
