"""What an accepted message does to its conversation: a pure machine.

How this works (h11-style): the caller — the messenger — has already
decrypted, verified and replay-checked an inner message. It gives
:func:`on_message` that message and the little local state the decision
needs (:class:`LocalState`: is the sender a contact, blocked, does it have a
pending request, which of the messages it targets are stored) and the path
it came by (:data:`Via`). The machine answers with a frozen :class:`Effects`:
what to store, whether it is shown (and as an unsupported message), which
delivery statuses move, which of this node's messages it confirms, which
receipts are due, which event-log entries the change makes, and an outcome
for the node's observers. The caller applies the effects in its one store
transaction. Nothing here does I/O, reads a clock or touches the store.

The decision is the table :data:`TRANSITIONS` below: the sender's standing
and how the message's kind is handled (from its flags in
:mod:`p2pdm.core.kinds`) give the outcome. A kind with an effect on the
messages it targets has its effect in :data:`STATUS_EFFECTS`.

Receipts: a message stored from a mailbox is due a ``delivered`` receipt
(the fetcher sends one per sender and round); one that came directly is
not, the dm ack already told the sender. Reading a conversation
(:func:`on_read`) is due a ``read`` receipt.

Who writes the event log: ``Effects.events`` holds the entries
(:class:`~p2pdm.core.eventlog.LogEvent`) of what a received message does —
``message.received``, ``contact.request`` before a stranger's first pending
request, the ``message.status`` of each status a receipt moves — and the
messenger appends them with ``Store.add_event`` in the transaction that
applies the rest (the store's ``add_message`` writes none; its
``set_status`` is told not to). Changes other parts drive — the outbox's
statuses and notes, reading a conversation, a new contact — are logged by
the store method that makes them, as only it knows in that write whether
the change happened (a status never moves back, a repeated note is not
one). Both build their entries with :mod:`p2pdm.core.eventlog`, the one
place that decides which event a change produces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Literal

from p2pdm.core.actions import ACTION_KINDS, Action, Decision, action_of, decide
from p2pdm.core.eventlog import (
    LogEvent,
    received_events,
    status_event,
    timer_event,
    typing_event,
)
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import (
    KindSpec,
    LocationBody,
    MediaBody,
    ReceiptBody,
    TextBody,
    TimerBody,
    TypingBody,
    UnknownBody,
    spec_for,
)
from p2pdm.core.model import (
    STATUS_RANK,
    DeliveryStatus,
    Direction,
    StoredMessage,
    direct_conversation_id,
)
from p2pdm.core.wire import InnerMessage

__all__ = [
    "STATUS_EFFECTS",
    "TRANSITIONS",
    "Effects",
    "Handling",
    "LocalState",
    "Outcome",
    "ReceiptDue",
    "ReceiptStatus",
    "Standing",
    "StatusMove",
    "TimerChange",
    "Via",
    "handling",
    "is_stored",
    "message_timer",
    "on_message",
    "on_read",
    "on_send",
    "targets_of",
]

Outcome = Literal["stored", "request", "receipt", "action", "blocked", "other"]
#: How an envelope reached this node: on a dm stream from its sender, or
#: fetched from one of this node's mailboxes.
Via = Literal["direct", "mailbox"]
#: What a receipt says of the messages it names.
ReceiptStatus = Literal["delivered", "read"]


class Standing(Enum):
    """Who the sender is to this node."""

    CONTACT = "contact"
    STRANGER = "stranger"  # not a contact: what it sends is a message request
    BLOCKED = "blocked"  # a contact the user blocked: accepted, never kept


class Handling(Enum):
    """What the message's kind asks of the conversation."""

    SHOW = "show"  # a known kind that is stored and shown
    STATUS = "status"  # moves the delivery status of messages it targets
    ACTION = "action"  # reacts to, edits or unsends the message it targets (core/actions.py)
    UNSUPPORTED = "unsupported"  # a kind this version does not know: kept, shown as such
    PASS = "pass"  # nothing to keep (or a kind strangers may not send)


#: (standing, handling) → outcome. "stored" and "request" store the message
#: (a request is a stranger's, kept apart until the user accepts it).
TRANSITIONS: Final[Mapping[tuple[Standing, Handling], Outcome]] = {
    (Standing.CONTACT, Handling.SHOW): "stored",
    (Standing.CONTACT, Handling.UNSUPPORTED): "stored",
    (Standing.CONTACT, Handling.STATUS): "receipt",
    (Standing.CONTACT, Handling.PASS): "other",
    (Standing.CONTACT, Handling.ACTION): "action",
    (Standing.STRANGER, Handling.SHOW): "request",
    (Standing.STRANGER, Handling.UNSUPPORTED): "request",
    (Standing.STRANGER, Handling.STATUS): "receipt",
    (Standing.STRANGER, Handling.PASS): "other",
    (Standing.STRANGER, Handling.ACTION): "action",
    (Standing.BLOCKED, Handling.SHOW): "blocked",
    (Standing.BLOCKED, Handling.UNSUPPORTED): "blocked",
    (Standing.BLOCKED, Handling.STATUS): "blocked",
    (Standing.BLOCKED, Handling.PASS): "blocked",
    (Standing.BLOCKED, Handling.ACTION): "blocked",
}


def _receipt_status(body: Any) -> DeliveryStatus | None:
    if not isinstance(body, ReceiptBody):
        return None
    return DeliveryStatus.READ if body.status == "read" else DeliveryStatus.DELIVERED


#: Kinds that move the delivery status of the messages they target, and the
#: status a body moves them to.
STATUS_EFFECTS: Final[Mapping[str, Callable[[Any], DeliveryStatus | None]]] = {
    "receipt": _receipt_status,
}


@dataclass(frozen=True, slots=True)
class LocalState:
    """What the machine needs to know about the conversation and the sender."""

    #: This node.
    me: PeerId
    contact: bool = False
    blocked: bool = False
    #: The sender has a pending message request already (so a new one is
    #: not its first, and makes no ``contact.request``).
    has_requests: bool = False
    #: The stored messages the incoming message targets, by id (those found).
    targets: Mapping[bytes, StoredMessage] = field(default_factory=dict)
    #: The user's read-receipt setting.
    read_receipts: bool = True
    #: The conversation is muted: its new messages notify nobody.
    muted: bool = False
    #: The conversation it is filed in when not the one-to-one one of this
    #: node and the sender: a group's (docs/protocol.md §19.4).
    conversation_id: bytes | None = None

    def conversation_of(self, sender: PeerId) -> bytes:
        """The conversation a message from ``sender`` is filed in."""
        return self.conversation_id or direct_conversation_id(self.me, sender)

    @property
    def standing(self) -> Standing:
        if self.blocked:
            return Standing.BLOCKED
        return Standing.CONTACT if self.contact else Standing.STRANGER


@dataclass(frozen=True, slots=True)
class StatusMove:
    """Move one of this node's messages forward to ``status``."""

    message_id: bytes
    status: DeliveryStatus
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReceiptDue:
    """A receipt this node should send."""

    to: PeerId
    status: ReceiptStatus
    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class TimerChange:
    """Set the conversation's disappearing-messages timer, if ``set_at_ms``
    (the sender's clock) is newer than the setting it has."""

    conversation_id: bytes
    timer_s: int
    set_at_ms: int


@dataclass(frozen=True, slots=True)
class Effects:
    """What accepting a message (or reading a conversation) changes."""

    outcome: Outcome
    #: The message to store, if any.
    store: StoredMessage | None = None
    #: True if the stored message appears in the conversation.
    show: bool = False
    #: True if it is shown as an "unsupported message" (an unknown kind).
    unsupported: bool = False
    status_moves: tuple[StatusMove, ...] = ()
    #: Ids of messages this node sent to the sender that it says arrived:
    #: the outbox stops resending them (a blocked contact's receipt too:
    #: they did arrive).
    confirms: tuple[bytes, ...] = ()
    #: Receipts due: ``delivered`` for a message stored from a mailbox (a
    #: direct delivery is confirmed by its ack), ``read`` from :func:`on_read`.
    receipts: tuple[ReceiptDue, ...] = ()
    #: The event-log entries these changes make, for the caller to append
    #: in the same transaction (a status entry only if its move is made).
    events: tuple[LogEvent, ...] = ()
    #: A ``timer`` message's new setting for the conversation.
    timer: TimerChange | None = None
    #: A reaction, edit or unsend and what to do with it (core/actions.py):
    #: the caller applies, holds or refuses (and counts) it.
    action: Action | None = None
    decision: Decision | None = None


def message_timer(body: object) -> int:
    """The disappearing timer a message body carries (0 for none): a text, a
    file or a place; a ``timer`` notice's setting is not a timer of its own."""
    return body.timer_s if isinstance(body, (TextBody, MediaBody, LocationBody)) else 0


def is_stored(kind: str) -> bool:
    """True if messages of ``kind`` are kept under their id (unknown kinds are)."""
    spec = spec_for(kind)
    return spec is None or spec.stored


def targets_of(inner: InnerMessage) -> tuple[bytes, ...]:
    """The ids of the earlier messages ``inner`` targets, for the caller to look up."""
    spec = spec_for(inner.kind)
    if spec is None or not spec.targets or isinstance(inner.body, UnknownBody):
        return ()
    return tuple(dict.fromkeys(spec.target_ids(inner.body)))


def handling(spec: KindSpec[Any] | None, standing: Standing) -> Handling:
    """How a message of a kind with ``spec`` (None: unknown) is handled."""
    if spec is None:
        return Handling.UNSUPPORTED
    if standing is Standing.STRANGER and not spec.from_strangers:
        return Handling.PASS
    if spec.targets and spec.name in STATUS_EFFECTS:
        return Handling.STATUS
    if spec.targets and spec.name in ACTION_KINDS:
        return Handling.ACTION
    if spec.stored:
        return Handling.SHOW
    return Handling.PASS


def on_message(
    inner: InnerMessage, state: LocalState, now_ms: int, *, via: Via = "direct"
) -> Effects:
    """The effects of an accepted incoming message that came by ``via``;
    never raises on a decoded message."""
    spec = spec_for(inner.kind)
    if isinstance(inner.body, UnknownBody):
        spec = None  # decoded before its kind was registered: keep it opaque
    how = handling(spec, state.standing)
    outcome = TRANSITIONS[(state.standing, how)]
    confirms = targets_of(inner) if how is Handling.STATUS else ()
    if outcome in ("stored", "request"):
        stored = StoredMessage(
            id=inner.id,
            conversation_id=state.conversation_of(inner.sender),
            peer=inner.sender,
            direction=Direction.IN,
            kind=inner.kind,
            body=inner.body_bytes(),
            sent_at_ms=inner.sent_at_ms,
            stored_at_ms=now_ms,
            status=DeliveryStatus.DELIVERED,
            request=outcome == "request",
            timer_s=message_timer(inner.body),
        )
        receipts: tuple[ReceiptDue, ...] = ()
        if via == "mailbox":  # the sender has no ack for it: tell it
            receipts = (ReceiptDue(inner.sender, "delivered", (inner.id,)),)
        timer = None
        events = received_events(stored, first_request=not state.has_requests, muted=state.muted)
        if isinstance(inner.body, TimerBody):  # a notice: the setting's own event
            timer = TimerChange(stored.conversation_id, inner.body.timer_s, inner.sent_at_ms)
            events = (timer_event(stored, inner.body.timer_s),)
        return Effects(
            outcome,
            store=stored,
            show=True,
            unsupported=how is Handling.UNSUPPORTED,
            receipts=receipts,
            events=events,
            timer=timer,
        )
    if outcome == "action":
        action = action_of(inner, state.me, state.conversation_id)
        assert action is not None  # Handling.ACTION is only given to action kinds
        target = state.targets.get(action.target)
        return Effects(outcome, action=action, decision=decide(action, target, state.me, now_ms))
    if outcome == "receipt":
        moves = _status_moves(inner, state)
        events = tuple(
            status_event(state.targets[m.message_id], m.status, now_ms, m.detail) for m in moves
        )
        return Effects(outcome, status_moves=moves, confirms=confirms, events=events)
    if (
        isinstance(inner.body, TypingBody)
        and state.standing is Standing.CONTACT
        and state.read_receipts  # off both ways, as read receipts are
    ):
        conversation_id = state.conversation_of(inner.sender)
        return Effects(outcome, events=(typing_event(inner.sender, conversation_id, now_ms),))
    return Effects(outcome, confirms=confirms)


def _status_moves(inner: InnerMessage, state: LocalState) -> tuple[StatusMove, ...]:
    status = STATUS_EFFECTS[inner.kind](inner.body)
    if status is None:
        return ()
    moves = []
    for message_id in targets_of(inner):
        mine = state.targets.get(message_id)
        # A peer may only confirm messages that were sent to it (a group's:
        # to one of its recipients), and a status never moves back (the store
        # checks again, as the authority).
        if mine is None or (
            mine.peer != inner.sender and all(r.peer != inner.sender for r in mine.recipients)
        ):
            continue
        if mine.direction is not Direction.OUT:
            continue
        if STATUS_RANK[mine.status] >= STATUS_RANK[status]:
            continue
        moves.append(StatusMove(message_id, status, f"receipt from {inner.sender.short()}"))
    return tuple(moves)


def on_send(inner: InnerMessage, now_ms: int) -> Effects:
    """The effects of a message this node sends: a stored kind is kept as queued."""
    if not is_stored(inner.kind):
        return Effects("other")
    stored = StoredMessage(
        id=inner.id,
        conversation_id=inner.conversation,
        peer=inner.recipient,
        direction=Direction.OUT,
        kind=inner.kind,
        body=inner.body_bytes(),
        sent_at_ms=inner.sent_at_ms,
        stored_at_ms=now_ms,
        status=DeliveryStatus.QUEUED,
        timer_s=message_timer(inner.body),
    )
    timer = None
    events: tuple[LogEvent, ...] = ()
    if isinstance(inner.body, TimerBody):
        timer = TimerChange(stored.conversation_id, inner.body.timer_s, inner.sent_at_ms)
        events = (timer_event(stored, inner.body.timer_s),)
    return Effects("stored", store=stored, show=True, events=events, timer=timer)


def on_read(peer: PeerId, read_ids: tuple[bytes, ...], state: LocalState) -> Effects:
    """The effects of the user reading ``read_ids`` from ``peer``: a read
    receipt when the peer is a contact, not blocked, and read receipts are
    on (message requests get none: the sender learns nothing until accepted)."""
    if not read_ids or not state.contact or state.blocked or not state.read_receipts:
        return Effects("other")
    return Effects("other", receipts=(ReceiptDue(peer, "read", read_ids),))
