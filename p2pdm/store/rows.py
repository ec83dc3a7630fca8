"""The rows the store copies on its hot paths, made without ``dataclasses.replace``.

``dataclasses.replace`` walks every field's definition on every call and
passes them all by keyword: about ten times the Python of calling the
constructor. A message stored, received and acked copied its rows seven
times that way (docs/benchmarks.md, seventh pass), so the copies the store
makes per message are written out here, each the same row ``replace`` gives
(``tests/store/test_rows.py`` checks them against it, and fails when a
field is added to these records: add it here too).
"""

from __future__ import annotations

from p2pdm.core.model import Conversation, DeliveryStatus, Recipient, StoredMessage

__all__ = ["conversation_with", "message_with"]


def message_with(
    message: StoredMessage,
    status: DeliveryStatus,
    recipients: tuple[Recipient, ...],
    seq: int,
) -> StoredMessage:
    """``replace(message, status=status, recipients=recipients, seq=seq)``."""
    m = message
    return StoredMessage(
        id=m.id,
        conversation_id=m.conversation_id,
        peer=m.peer,
        direction=m.direction,
        kind=m.kind,
        body=m.body,
        sent_at_ms=m.sent_at_ms,
        stored_at_ms=m.stored_at_ms,
        status=status,
        request=m.request,
        seq=seq,
        recipients=recipients,
        edited_at_ms=m.edited_at_ms,
        unsent=m.unsent,
        timer_s=m.timer_s,
        expires_at_ms=m.expires_at_ms,
    )


def conversation_with(
    conversation: Conversation, last_message_at_ms: int, unread: int, request: bool
) -> Conversation:
    """``replace(conversation, last_message_at_ms=…, unread=…, request=…)``."""
    c = conversation
    return Conversation(
        id=c.id,
        peer=c.peer,
        last_message_at_ms=last_message_at_ms,
        unread=unread,
        request=request,
        timer_s=c.timer_s,
        muted=c.muted,
        archived=c.archived,
        pinned_at_ms=c.pinned_at_ms,
    )
