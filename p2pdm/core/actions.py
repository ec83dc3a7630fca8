"""Who may react to, edit or unsend which message: the pure checks.

How this works: an accepted ``reaction``, ``edit`` or ``unsend`` message
(or one this node's user makes) becomes an :class:`Action`. :func:`decide`
looks at the action and the message it targets as stored here (None when
it has not arrived) and answers with a :class:`Decision`: apply it, hold it
until the target arrives (mailboxes reorder), or refuse it with a reason.
The rules (docs/protocol.md §6.6):

- the target must be in the action's conversation; only its participants
  (this node and the other party) act on it;
- only the target's author edits or unsends it; an edit only a ``text``,
  at most EDIT_WINDOW_MS after the target was sent (both times signed by
  the author), never dated in the future past the allowed skew;
- nothing acts on an unsent message (a second unsend changes nothing).

Which of two reactions or edits is the newer (the later signed time wins,
whatever order they arrive in) is the store's to decide, in the write that
applies one. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import EditBody, ReactionBody, UnsendBody, spec_for
from p2pdm.core.model import GROUP_NOTICE_KIND, Direction, StoredMessage, direct_conversation_id
from p2pdm.core.wire import InnerMessage
from p2pdm.limits import EDIT_WINDOW_MS, HELD_ACTION_TTL_MS, MAX_CLOCK_SKEW_SECONDS

__all__ = [
    "ACTION_KINDS",
    "Action",
    "ActionBody",
    "Decision",
    "HeldAction",
    "Verdict",
    "action_of",
    "decide",
    "held_expired",
]

ActionBody = ReactionBody | EditBody | UnsendBody
#: The kinds that act on an earlier message.
ACTION_KINDS: Final = frozenset({"react", "edit", "unsend"})


@dataclass(frozen=True, slots=True)
class Action:
    """A reaction, edit or unsend, from ``sender`` in ``conversation_id``."""

    id: bytes
    sender: PeerId
    conversation_id: bytes
    sent_at_ms: int
    body: ActionBody

    @property
    def target(self) -> bytes:
        return self.body.target

    @property
    def kind(self) -> str:
        return self.body.kind


def action_of(inner: InnerMessage, me: PeerId, group: bytes | None = None) -> Action | None:
    """The action an accepted incoming message is (None for other kinds); its
    conversation is the one of this node and the sender, whatever it claims,
    or ``group`` for one a group message carried (its membership checked)."""
    if not isinstance(inner.body, ReactionBody | EditBody | UnsendBody):
        return None
    conversation = group or direct_conversation_id(me, inner.sender)
    return Action(inner.id, inner.sender, conversation, inner.sent_at_ms, inner.body)


@dataclass(frozen=True, slots=True)
class HeldAction:
    """An action kept until its target arrives (or HELD_ACTION_TTL_MS passes, or
    ``expires_at_ms``: in a conversation with disappearing messages, its timer)."""

    action: Action
    held_at_ms: int
    expires_at_ms: int | None = None


def held_expired(held: HeldAction, now_ms: int) -> bool:
    """True once a held action can no longer meet its target (or may no longer wait)."""
    if held.expires_at_ms is not None and now_ms > held.expires_at_ms:
        return True
    return now_ms - held.held_at_ms > HELD_ACTION_TTL_MS


class Verdict(Enum):
    APPLY = "apply"
    HOLD = "hold"  # the target has not arrived: keep the action for it
    REFUSE = "refuse"  # counted, never stored
    NOTHING = "nothing"  # allowed, but changes nothing (a second unsend)


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str = ""


def _refuse(reason: str) -> Decision:
    return Decision(Verdict.REFUSE, reason)


def decide(action: Action, target: StoredMessage | None, me: PeerId, now_ms: int) -> Decision:
    """What to do with ``action`` given its ``target`` as stored (None: not here)."""
    if target is None:
        return Decision(Verdict.HOLD)
    if target.conversation_id != action.conversation_id:
        return _refuse("its target is in another conversation")
    if target.kind == GROUP_NOTICE_KIND:
        return _refuse("its target is a group's notice, not a message")
    # In a group, every member is: the group checked the sender's membership.
    one_to_one = action.conversation_id == direct_conversation_id(me, action.sender)
    if one_to_one and action.sender not in (me, target.peer):
        return _refuse("the sender is not in the target's conversation")
    author = me if target.direction is Direction.OUT else target.peer
    body = action.body
    if target.unsent:
        if isinstance(body, UnsendBody) and action.sender == author:
            return Decision(Verdict.NOTHING)
        return _refuse("its target was unsent")
    if isinstance(body, ReactionBody):
        spec = spec_for(target.kind)
        if spec is not None and not spec.shown:
            return _refuse("its target is not shown")
        return Decision(Verdict.APPLY)
    if action.sender != author:
        return _refuse(f"only the author may {action.kind} a message")
    if isinstance(body, EditBody):
        if target.kind != "text":
            return _refuse("only a text can be edited")
        if not 0 <= action.sent_at_ms - target.sent_at_ms <= EDIT_WINDOW_MS:
            return _refuse(
                f"edits are allowed for {EDIT_WINDOW_MS // 60_000} minutes after sending"
            )
        if action.sent_at_ms > now_ms + MAX_CLOCK_SKEW_SECONDS * 1000:
            return _refuse("the edit is dated in the future")
    return Decision(Verdict.APPLY)
