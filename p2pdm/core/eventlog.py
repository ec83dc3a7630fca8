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

from p2pdm.core.model import (
    Contact,
    DeliveryStatus,
    Direction,
    EventType,
    LogEvent,
    StoredMessage,
)

__all__ = ["LogEvent", "contact_added", "received_events", "status_event"]


def received_events(message: StoredMessage, first_request: bool) -> tuple[LogEvent, ...]:
    """The entries storing ``message`` makes, in order.

    An incoming message is ``message.received``; a stranger's request when
    it has no other pending one (``first_request``) is also, first,
    ``contact.request``. Outgoing messages make none (their status changes do).
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
            request=message.request,
            conversation_id=message.conversation_id,
        )
        for kind in types
    )


def status_event(
    message: StoredMessage, status: DeliveryStatus, at_ms: int, detail: str = ""
) -> LogEvent:
    """The ``message.status`` entry of ``message`` (as stored before the change)
    reaching ``status``, or of a note on its current status."""
    return LogEvent(
        EventType.MESSAGE_STATUS,
        at_ms,
        message.peer,
        message.id,
        status,
        detail,
        conversation_id=message.conversation_id,
        request=message.request,
    )


def contact_added(contact: Contact) -> LogEvent:
    """The ``contact.added`` entry of a new contact (a rename makes none)."""
    return LogEvent(EventType.CONTACT_ADDED, contact.added_at_ms, contact.peer_id)
