"""Disappearing timers and typing, beside the messenger: how a stored
message reads beyond its text (its timer, the words of a notice: "set
disappearing messages to 1 day"), when the sender's copy of a message with
a timer disappears, a received notice's setting, and how often a peer's
typing is shown."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from p2pdm.core import cbor
from p2pdm.core.conversation import Effects
from p2pdm.core.groups import ChangeEntry
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import TimerBody, decode_stored
from p2pdm.core.kinds.timer import timer_label
from p2pdm.core.model import GROUP_NOTICE_KIND, DeliveryStatus, Direction, StoredMessage
from p2pdm.errors import WireError
from p2pdm.limits import MAX_GROUP_NAME_BYTES, SENDER_EXPIRY_BACKSTOP_S, TYPING_INTERVAL_S
from p2pdm.store.base import Store

__all__ = [
    "GROUP_NOTICE_KIND",
    "TypingShown",
    "apply_timer",
    "change_words",
    "group_notice",
    "message_notice",
    "message_timer",
    "notice_id",
    "sender_copy",
]

#: A notice's words at most: a group name and a few names fit.
MAX_NOTICE_BYTES: Final = 4 * MAX_GROUP_NAME_BYTES + 512
#: Members named in one notice; the rest are counted ("and 3 others").
MAX_NAMED_PEERS: Final = 5


def message_timer(message: StoredMessage) -> int:
    """A text's disappearing timer, or a timer notice's new setting (else 0)."""
    body = decode_stored(message.kind, message.body)
    if isinstance(body, TimerBody):
        return body.timer_s
    return message.timer_s


def message_notice(message: StoredMessage) -> str | None:
    """What a notice says, after who did it: "set disappearing messages to 1 day";
    None for a message that is not a notice."""
    if message.kind == GROUP_NOTICE_KIND:
        return _stored_words(message.body)
    body = decode_stored(message.kind, message.body)
    if not isinstance(body, TimerBody):
        return None
    if not body.timer_s:
        return "turned off disappearing messages"
    return f"set disappearing messages to {timer_label(body.timer_s)}"


def _stored_words(data: bytes) -> str:
    """The words of a stored group notice ("" for a damaged row; never raises)."""
    try:
        found = cbor.decode(data, MAX_NOTICE_BYTES + 64)
    except WireError:
        return ""
    words = found.get("words") if isinstance(found, dict) else None
    return words if isinstance(words, str) else ""


def _names(peers: tuple[PeerId, ...], me: PeerId, name_of: Callable[[PeerId], str]) -> str:
    """Members as a notice names them: "Bob", "Bob and you", "Bob, Carol and 3 others"."""
    named = [("you" if p == me else name_of(p)) for p in peers[:MAX_NAMED_PEERS]]
    rest = len(peers) - len(named)
    if rest:
        named.append(f"{rest} other{'s' if rest > 1 else ''}")
    if len(named) <= 1:
        return "".join(named)
    return ", ".join(named[:-1]) + " and " + named[-1]


def change_words(entry: ChangeEntry, me: PeerId, name_of: Callable[[PeerId], str]) -> str:
    """What a group change says, after who made it: "added Bob and you",
    "renamed the group to 'Trip'", "left" (``name_of`` names other members)."""
    op, who = entry.op, _names(entry.peers, me, name_of)
    if op == "create":
        return f"created the group {entry.args.get('name', '')!r}"
    if op == "rename":
        return f"renamed the group to {entry.args.get('name', '')!r}"
    if op == "photo":
        removed = entry.args.get("photo") is None
        return "removed the group photo" if removed else "changed the group photo"
    if op == "timer":
        timer_s = entry.args.get("timer_s", 0)
        if not timer_s:
            return "turned off disappearing messages"
        return f"set disappearing messages to {timer_label(timer_s)}"
    verbs = {
        "add": f"added {who}",
        "remove": f"removed {who}",
        "leave": "left",
        "promote": f"made {who} {'an admin' if len(entry.peers) == 1 else 'admins'}",
        "demote": f"removed {who} as {'admin' if len(entry.peers) == 1 else 'admins'}",
    }
    return verbs.get(op, f"changed the group ({op})")


def group_notice(
    entry: ChangeEntry,
    me: PeerId,
    name_of: Callable[[PeerId], str],
    peer: PeerId,
    now_ms: int,
    request: bool,
) -> StoredMessage:
    """The notice of an applied group change, for the group's conversation:
    its id is the entry's hash (cut to a message id), so one entry makes one
    notice however often or in whatever order it is applied. Stored read (it
    counts nowhere as unread); ``peer`` names the conversation's other party
    for a notice of our own change."""
    words = change_words(entry, me, name_of).encode("utf-8", "replace")[:MAX_NOTICE_BYTES]
    mine = entry.author == me
    return StoredMessage(
        id=notice_id(entry),
        conversation_id=entry.group,
        peer=peer if mine else entry.author,
        direction=Direction.OUT if mine else Direction.IN,
        kind=GROUP_NOTICE_KIND,
        body=cbor.encode({"words": words.decode("utf-8", "ignore")}),
        sent_at_ms=entry.ts_ms,
        stored_at_ms=now_ms,
        status=DeliveryStatus.READ,
        request=request and not mine,
    )


def notice_id(entry: ChangeEntry) -> bytes:
    """The message id of a change's notice: the first 16 bytes of its hash."""
    return entry.hash[:16]


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
