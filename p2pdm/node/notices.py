"""Disappearing timers and typing, beside the messenger: how a stored
message reads beyond its text (its timer, the words of a notice: "set
disappearing messages to 1 day"), when the sender's copy of a message with
a timer disappears, a received notice's setting, and how often a peer's
typing is shown."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

from p2pdm.core.conversation import Effects
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import TimerBody, decode_stored
from p2pdm.core.kinds.timer import timer_label
from p2pdm.core.model import StoredMessage
from p2pdm.limits import SENDER_EXPIRY_BACKSTOP_S, TYPING_INTERVAL_S
from p2pdm.store.base import Store

__all__ = ["TypingShown", "apply_timer", "message_notice", "message_timer", "sender_copy"]


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


def sender_copy(
    message: StoredMessage, now_ms: int, read_receipts: bool, expires_s: int
) -> tuple[StoredMessage, int]:
    """The sender's copy of a message with a timer, with its latest expiry, and
    the envelope's expiry (seconds) cut to match, so mailboxes keep it no
    longer than the message lives (docs/protocol.md §6.7). Its timer starts
    when the read receipt comes; without read receipts, now; and it never
    waits longer than SENDER_EXPIRY_BACKSTOP_S."""
    if not message.timer_s:
        return message, expires_s
    wait_ms = SENDER_EXPIRY_BACKSTOP_S * 1000 if read_receipts else 0
    expires_at_ms = now_ms + message.timer_s * 1000 + wait_ms
    return replace(message, expires_at_ms=expires_at_ms), min(expires_s, -(-expires_at_ms // 1000))


def apply_timer(store: Store, effects: Effects, peer: PeerId, now_ms: int) -> None:
    """Set the conversation's timer a ``timer`` notice carries (the newest wins)."""
    change = effects.timer
    if change is not None:
        store.update_conversation(
            change.conversation_id, peer, now_ms, timer=(change.timer_s, change.set_at_ms)
        )


class TypingShown:
    """When each peer's typing was last shown: at most once per TYPING_INTERVAL_S,
    remembering at most ``max_peers`` (the least recent forgotten)."""

    def __init__(self, max_peers: int) -> None:
        self._shown: OrderedDict[PeerId, int] = OrderedDict()
        self._max = max_peers

    def due(self, peer: PeerId, now_ms: int) -> bool:
        """True if ``peer``'s typing may be shown now (and note that it was)."""
        last = self._shown.pop(peer, None)
        if last is not None and now_ms - last < TYPING_INTERVAL_S * 1000:
            self._shown[peer] = last
            return False
        self._shown[peer] = now_ms
        while len(self._shown) > self._max:
            self._shown.popitem(last=False)
        return True
