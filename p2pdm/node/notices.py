"""How a stored message reads beyond its text: its disappearing timer, and
the words of a notice ("set disappearing messages to 1 day")."""

from __future__ import annotations

from p2pdm.core.kinds import TimerBody, decode_stored
from p2pdm.core.kinds.timer import timer_label
from p2pdm.core.model import StoredMessage

__all__ = ["message_notice", "message_timer"]


def message_timer(message: StoredMessage) -> int:
    """A text's disappearing timer, or a timer notice's new setting (else 0)."""
    body = decode_stored(message.kind, message.body)
    if isinstance(body, TimerBody):
        return body.timer_s
    return message.timer_s


def message_notice(message: StoredMessage) -> str | None:
    """What a notice says, after who did it: "set disappearing messages to 1 day";
    None for a message that is not a notice."""
    body = decode_stored(message.kind, message.body)
    if not isinstance(body, TimerBody):
        return None
    if not body.timer_s:
        return "turned off disappearing messages"
    return f"set disappearing messages to {timer_label(body.timer_s)}"
