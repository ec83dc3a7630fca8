"""What a received reaction, edit or unsend does to this node's store.

How this works: :mod:`p2pdm.core.actions` decides whether an action may
apply; :func:`settle` carries the decision out inside the messenger's
receive transaction: applied (with its ``message.reaction``,
``message.edited`` or ``message.unsent`` event), held for a target that has
not arrived (no longer than its envelope lives: for an action on a
disappearing message, no longer than the message), or refused and counted
(``actions_refused``).
:func:`release_held` applies what was held for a message as it is stored.
The user's own actions (:mod:`p2pdm.node.actions`) use :func:`apply` too.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Final

from p2pdm.core import cbor
from p2pdm.core.actions import Action, Decision, HeldAction, Verdict, decide
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import EditBody, ReactionBody, TextBody, decode_stored, encode_body
from p2pdm.core.model import EventType, LogEvent, StoredMessage
from p2pdm.limits import MAX_CLOCK_SKEW_SECONDS
from p2pdm.store.base import Store, log_event

__all__ = ["apply", "held_until", "release_held", "settle"]

log = logging.getLogger("p2pdm.node.actions")

_EVENTS: Final = {
    "react": EventType.MESSAGE_REACTION,
    "edit": EventType.MESSAGE_EDITED,
    "unsend": EventType.MESSAGE_UNSENT,
}


def apply(store: Store, action: Action, target: StoredMessage) -> bool:
    """Apply an allowed action to its target; True if it changed anything."""
    body = action.body
    if isinstance(body, ReactionBody):
        return store.set_reaction(target.id, action.sender, body.emoji, action.sent_at_ms)
    if isinstance(body, EditBody):
        old = decode_stored(target.kind, target.body)
        # The new text keeps what else the author sent: the reply, the timer.
        text = replace(old, text=body.text) if isinstance(old, TextBody) else TextBody(body.text)
        new = cbor.encode(encode_body(text))
        return store.edit_message_body(target.id, new, action.sent_at_ms)
    return store.unsend_message(target.id)


def settle(
    store: Store,
    action: Action,
    decision: Decision,
    target: StoredMessage | None,
    now_ms: int,
    *,
    held_until_ms: int | None = None,
) -> None:
    """Apply, hold (until ``held_until_ms`` at the latest) or refuse (and count) a
    received action, in the caller's transaction."""
    if decision.verdict is Verdict.HOLD:
        store.hold_action(HeldAction(action, now_ms, held_until_ms))
    elif decision.verdict is Verdict.REFUSE:
        store.count_refused_action()
        log.debug("refused a %s from %s: %s", action.kind, action.sender.short(), decision.reason)
    elif decision.verdict is Verdict.APPLY and target is not None and apply(store, action, target):
        detail = action.body.emoji if isinstance(action.body, ReactionBody) else ""
        event = LogEvent(
            _EVENTS[action.kind],
            now_ms,
            action.sender,
            target.id,
            detail=detail,
            conversation_id=target.conversation_id,
            request=target.request,
        )
        log_event(store, event)


def held_until(envelope_expires_s: int) -> int:
    """How long an action may wait for its target (ms): as long as its envelope
    may still arrive. Its sender cut that to its target's erasure when the
    target disappears and its timer runs (docs/protocol.md §6.7), so such an
    action never outlives its message; else it is HELD_ACTION_TTL_MS."""
    return (envelope_expires_s + MAX_CLOCK_SKEW_SECONDS) * 1000


def release_held(store: Store, message: StoredMessage, me: PeerId, now_ms: int) -> bool:
    """Apply (or refuse) the actions held for ``message``, just stored, oldest first;
    True if there were any (then ``message`` may have changed in the store)."""
    held_actions = store.take_held(message.id, now_ms)
    for held in held_actions:
        target = store.get_message(message.id)
        settle(store, held.action, decide(held.action, target, me, now_ms), target, now_ms)
    return bool(held_actions)
