"""Which event-log entries a change makes: the one place that decides.

How this works: every write that the event log reports (docs/api.md,
"Events") builds its entries here, as frozen
:class:`~p2pdm.core.model.LogEvent` records, and
hands them to the store's ``add_event`` in the same transaction as the
change. The conversation machine (:mod:`p2pdm.core.conversation`) returns
the entries of what a received message does; the store's own writes that
other parts drive (outbox statuses and notes, reading a conversation, a new
contact) use the same builders. Nothing here does I/O.

An entry about a stranger's message request has ``request`` set: the store
keeps those apart from the main log and prunes them on their own, so a
flood of requests cannot push contacts' events out.
"""

from __future__ import annotations

from p2pdm.core.identity import PeerId
from p2pdm.core.model import (
    Contact,
    Conversation,
    DeliveryStatus,
    Direction,
    EventType,
    LogEvent,
    StoredMessage,
)

__all__ = [
    "MUTED_DETAIL",
    "LogEvent",
    "contact_added",
    "expired_event",
    "live_location_event",
    "received_events",
    "settings_event",
    "status_event",
    "timer_event",
    "typing_event",
]

#: The ``detail`` of a ``message.received`` in a muted conversation: the API
#: shows it as ``"notify": false``.
MUTED_DETAIL = "muted"


def received_events(
    message: StoredMessage, first_request: bool, *, muted: bool = False
) -> tuple[LogEvent, ...]:
    """The entries storing ``message`` makes, in order.

    An incoming message is ``message.received`` (its detail MUTED_DETAIL in
    a ``muted`` conversation); a stranger's request when it has no other
    pending one (``first_request``) is also, first, ``contact.request``.
    Outgoing messages make none (their status changes do).
    """
    if message.direction is not Direction.IN:
        return ()
    types: tuple[EventType, ...] = (EventType.MESSAGE_RECEIVED,)
    if message.request and first_request:
        types = (EventType.CONTACT_REQUEST, EventType.MESSAGE_RECEIVED)
    return tuple(
        LogEvent(
            kind,
            message.stored_at_ms,
            message.peer,
            message.id,
            detail=MUTED_DETAIL if muted and kind is EventType.MESSAGE_RECEIVED else "",
            request=message.request,
            conversation_id=message.conversation_id,
        )
        for kind in types
    )


def timer_event(notice: StoredMessage, timer_s: int) -> LogEvent:
    """The ``conversation.timer`` entry of a timer notice (sent or received);
    its detail is the new timer in seconds."""
    return LogEvent(
        EventType.CONVERSATION_TIMER,
        notice.stored_at_ms,
        notice.peer,
        notice.id,
        detail=str(timer_s),
        conversation_id=notice.conversation_id,
    )


def settings_event(before: Conversation, after: Conversation, at_ms: int) -> LogEvent | None:
    """The ``conversation.changed`` entry of the user's change of a conversation's
    mute, archive or pin (``detail``: the settings that changed, comma-separated,
    e.g. ``"muted,pinned"``); None if none changed."""
    changed = [
        name
        for name, was, now in (
            ("muted", before.muted, after.muted),
            ("archived", before.archived, after.archived),
            ("pinned", before.pinned_at_ms is not None, after.pinned_at_ms is not None),
        )
        if was != now
    ]
    if not changed:
        return None
    return LogEvent(
        EventType.CONVERSATION_CHANGED,
        at_ms,
        after.peer,
        detail=",".join(changed),
        conversation_id=after.id,
    )


def expired_event(message: StoredMessage, at_ms: int) -> LogEvent:
    """The ``message.expired`` entry of a disappearing message erased at ``at_ms``."""
    return LogEvent(
        EventType.MESSAGE_EXPIRED,
        at_ms,
        message.peer,
        message.id,
        conversation_id=message.conversation_id,
    )


def status_event(
    message: StoredMessage,
    status: DeliveryStatus,
    at_ms: int,
    detail: str = "",
    *,
    peer: PeerId | None = None,
) -> LogEvent:
    """The ``message.status`` entry of ``message`` (as stored before the change)
    reaching ``status``, or of a note on its current status; ``peer``: the
    recipient it is about (the message's peer if None)."""
    return LogEvent(
        EventType.MESSAGE_STATUS,
        at_ms,
        message.peer if peer is None else peer,
        message.id,
        status,
        detail,
        conversation_id=message.conversation_id,
        request=message.request,
    )


def contact_added(contact: Contact) -> LogEvent:
    """The ``contact.added`` entry of a new contact (a rename makes none)."""
    return LogEvent(EventType.CONTACT_ADDED, contact.added_at_ms, contact.peer_id)


def typing_event(peer: PeerId, conversation_id: bytes, at_ms: int) -> LogEvent:
    """The ``typing`` entry of a contact's typing signal (it lapses after TYPING_LAPSE_S)."""
    return LogEvent(EventType.TYPING, at_ms, peer, conversation_id=conversation_id)


def live_location_event(
    peer: PeerId, conversation_id: bytes, at_ms: int, until_ms: int, *, stopped: bool = False
) -> LogEvent:
    """``location.live`` (or ``location.stopped``) of ``peer``'s live location in
    a conversation; the log keeps when it ends, never where anyone is."""
    kind = EventType.LOCATION_STOPPED if stopped else EventType.LOCATION_LIVE
    return LogEvent(kind, at_ms, peer, detail=str(until_ms), conversation_id=conversation_id)
