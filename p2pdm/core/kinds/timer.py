"""The ``timer`` kind: a disappearing-messages setting changed (docs/protocol.md §6.7).

A signed control message shown in the conversation as a notice ("Alice set
disappearing messages to 1 day"). The conversation's timer becomes the
newest such setting (by the sender's timestamp) on both sides; it applies to
messages sent after it, each of which carries its own timer (``timer_s`` of
a text), so a late or reordered notice never changes an earlier message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.errors import SchemaError
from p2pdm.limits import DISAPPEARING_TIMERS_S, MAX_EXT_BYTES

__all__ = ["SPEC", "TimerBody", "check_timer", "timer_label"]

#: A stored timer body: one small integer, an ext map and CBOR headers.
_MAX_BODY_BYTES: Final = MAX_EXT_BYTES + 64

#: How a timer reads in a notice.
_LABELS: Final = {0: "off", 300: "5 minutes", 3_600: "1 hour", 86_400: "1 day", 604_800: "7 days"}


def check_timer(timer_s: int, what: str = "timer_s") -> int:
    """``timer_s`` if it is one of DISAPPEARING_TIMERS_S; else raises SchemaError."""
    if type(timer_s) is not int or timer_s not in DISAPPEARING_TIMERS_S:
        allowed = ", ".join(str(t) for t in DISAPPEARING_TIMERS_S)
        raise SchemaError(f"{what} must be one of {allowed} seconds (0 is off)")
    return timer_s


def decode_message_timer(fields: Fields) -> int:
    """The optional ``timer_s`` of a text, media or location body (0 when absent):
    the conversation's disappearing timer when it was sent (docs/protocol.md §6.7)."""
    if not fields.has("timer_s"):
        return 0
    return check_timer(
        fields.integer("timer_s", 1, max(DISAPPEARING_TIMERS_S)), f"{fields.what}.timer_s"
    )


def encode_message_timer(out: dict[str, Any], timer_s: int) -> dict[str, Any]:
    """``out`` with ``timer_s`` added when a timer is on (absent when off, so a
    message without a timer keeps its bytes)."""
    if timer_s:
        out["timer_s"] = timer_s
    return out


def timer_label(timer_s: int) -> str:
    """``"1 day"``, ``"off"``: a timer as a notice says it."""
    return _LABELS.get(timer_s, f"{timer_s} seconds")


@dataclass(frozen=True, slots=True)
class TimerBody:
    #: The new timer of the conversation, in seconds; 0 turns it off.
    timer_s: int
    #: Extension fields of a newer version, kept and otherwise ignored.
    ext: dict[str, Any] | None = None
    kind: Literal["timer"] = field(default="timer", init=False)


def decode(fields: Fields) -> TimerBody:
    """Raises SchemaError for a timer not in DISAPPEARING_TIMERS_S or a bad ext."""
    timer_s = fields.integer("timer_s", 0, max(DISAPPEARING_TIMERS_S))
    check_timer(timer_s, f"{fields.what}.timer_s")
    ext = decode_ext(fields)
    fields.done()
    return TimerBody(timer_s, ext)


def encode(body: TimerBody) -> dict[str, Any]:
    return encode_ext({"timer_s": body.timer_s}, body.ext)


SPEC: Final = KindSpec(
    name="timer",
    body_type=TimerBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=True,
    targets=False,
    # A stranger has no conversation settings to change: its timer is not kept.
    from_strangers=False,
    stored=True,
)
