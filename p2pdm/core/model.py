"""What the node keeps: contacts, conversations, messages and their delivery state.

Plain frozen records shared by the store, the node and the API. Times are
integer milliseconds since the Unix epoch (``*_ms``); the caller supplies
them, nothing here reads a clock.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from p2pdm.core.identity import PeerId

__all__ = [
    "GROUP_NOTICE_KIND",
    "ApiToken",
    "Contact",
    "Conversation",
    "DeliveryStatus",
    "Direction",
    "Event",
    "EventType",
    "LogEvent",
    "MessagePage",
    "OutboxItem",
    "Recipient",
    "StatusChange",
    "StoredMessage",
    "TokenScope",
    "Withdrawal",
    "direct_conversation_id",
    "overall_status",
]

CONVERSATION_ID_BYTES = 16
MESSAGE_ID_BYTES = 16


class DeliveryStatus(StrEnum):
    """Where an outgoing message is. Incoming messages are ``delivered`` or ``read``."""

    QUEUED = "queued"  # in the outbox, not yet on the wire
    SENT = "sent"  # written to the recipient's stream, no ack yet
    DEPOSITED = "deposited"  # held by one or more mailboxes for the recipient
    DELIVERED = "delivered"  # the recipient acknowledged it is stored
    READ = "read"  # the recipient sent a read receipt
    FAILED = "failed"  # will not be retried; see the status detail
    EXPIRED = "expired"  # outlived its envelope expiry undelivered


#: Order of progress: a status never moves back to an earlier one.
#: The stored kind of a group change's notice ("Alice added Bob"): written
#: locally when a change is applied, never sent (not a wire kind), and no
#: action (reaction, edit, unsend) applies to it.
GROUP_NOTICE_KIND = "group_notice"

STATUS_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DEPOSITED: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.READ: 4,
    DeliveryStatus.FAILED: 5,
    DeliveryStatus.EXPIRED: 5,
}


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


#: One-to-one conversation ids remembered (a hash each; a message sent or
#: received needs its conversation's several times): about one per peer in use.
CONVERSATION_ID_CACHE_SIZE: Final = 4096


def direct_conversation_id(a: PeerId, b: PeerId) -> bytes:
    """The id of the one-to-one conversation of two peers, the same on both sides."""
    return _direct_conversation_id(a.raw, b.raw)


@functools.lru_cache(maxsize=CONVERSATION_ID_CACHE_SIZE)
def _direct_conversation_id(a: bytes, b: bytes) -> bytes:
    low, high = (a, b) if a <= b else (b, a)
    return hashlib.blake2b(
        low + high, digest_size=CONVERSATION_ID_BYTES, person=b"p2pdm-conv-1to1"
    ).digest()


@dataclass(frozen=True, slots=True)
class Contact:
    peer_id: PeerId
    name: str
    added_at_ms: int
    #: The contact's prekey bundle as received (encoded ``PrekeyBundle``), if any.
    bundle: bytes | None = None
    #: Last known listen addresses (multiaddr strings), newest first.
    addrs: tuple[str, ...] = ()
    last_seen_ms: int | None = None
    verified: bool = False
    blocked: bool = False
    #: True if ``name`` is the one the contact gave itself (in its invite), not
    #: one the user chose: it is shown with the contact's fingerprint.
    name_from_invite: bool = False


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where an outgoing message is for one of its recipients."""

    peer: PeerId
    status: DeliveryStatus
    #: When it reached this status.
    at_ms: int
    detail: str = ""


def overall_status(recipients: tuple[Recipient, ...]) -> DeliveryStatus:
    """A message's status from its recipients': the least advanced (see STATUS_RANK)."""
    return min((r.status for r in recipients), key=STATUS_RANK.__getitem__)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: bytes
    conversation_id: bytes
    #: The other party: recipient of an outgoing message, sender of an incoming one.
    peer: PeerId
    direction: Direction
    kind: str
    #: The message body as canonical CBOR (see ``p2pdm.core.wire``).
    body: bytes
    #: The sender's timestamp.
    sent_at_ms: int
    #: When this node stored it.
    stored_at_ms: int
    status: DeliveryStatus
    #: True for an incoming message from someone who is not a contact (a message request).
    request: bool = False
    #: Local insertion order; assigned by the store, used as the paging cursor.
    seq: int = 0
    #: Each recipient of an outgoing message and its status (one today; one per
    #: member in a group); ``status`` is the least advanced of theirs. The store
    #: fills it: an outgoing message stored without any gets ``peer`` alone.
    #: Empty for incoming messages.
    recipients: tuple[Recipient, ...] = ()
    #: The author's signed time of the edit that gave the current text (None:
    #: never edited); a later edit wins (docs/protocol.md §6.6).
    edited_at_ms: int | None = None
    #: True once the author unsent it: the body is erased, the row stays as
    #: "unsent a message" (docs/protocol.md §6.6).
    unsent: bool = False
    #: Disappearing-message timer it carries, in seconds (0: it stays).
    timer_s: int = 0
    #: When it disappears (erased from the store); None while its timer has
    #: not started (not read yet) or when it has none.
    expires_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    message_id: bytes
    status: DeliveryStatus
    at_ms: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation, keyed by ``id``: for a one-to-one conversation
    :func:`direct_conversation_id` of both peers, and ``peer`` the other one."""

    id: bytes
    peer: PeerId
    last_message_at_ms: int
    unread: int
    #: True while every message in it is a message request.
    request: bool = False
    #: Disappearing-message timer for messages sent from now on (0: off).
    timer_s: int = 0
    #: No notification for its new messages (they are still stored).
    muted: bool = False
    #: Moved out of the main list by the user (still receives messages).
    archived: bool = False
    #: When the user pinned it to the top of the list (None: not pinned).
    pinned_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class MessagePage:
    """Messages newest first; pass ``next_before`` as ``before`` for the next page."""

    messages: tuple[StoredMessage, ...]
    next_before: int | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """An envelope waiting for an acknowledgement from its recipient."""

    envelope_id: bytes
    message_id: bytes
    recipient: PeerId
    envelope: bytes
    created_at_ms: int
    expires_at_ms: int
    next_attempt_at_ms: int
    attempts: int = 0
    #: Free-form delivery notes (last error), for the API.
    last_error: str = field(default="")


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A deposit of ours to take back from a mailbox (its message was unsent)."""

    envelope_id: bytes
    mailbox: PeerId
    #: When the mailbox lets it go anyway: past it, nothing is left to take back.
    until_ms: int
    attempts: int = 0


class EventType(StrEnum):
    """What an event in the node's event log reports. Later versions add types."""

    MESSAGE_RECEIVED = "message.received"  # an incoming message was stored
    MESSAGE_STATUS = "message.status"  # a message's delivery status moved forward
    CONTACT_REQUEST = "contact.request"  # a stranger's first message request
    CONTACT_ADDED = "contact.added"  # a new contact (not a rename)
    PEER_ONLINE = "peer.online"  # a connection to the peer came up
    PEER_OFFLINE = "peer.offline"  # the last connection to the peer went down
    MEDIA_PROGRESS = "media.progress"  # more of a file arrived (detail: "<blob> <have>/<of>")
    MEDIA_READY = "media.ready"  # a file arrived whole and checked (detail: "<blob>")
    MEDIA_FAILED = "media.failed"  # a file could not be fetched (detail: "<blob>: why")
    MESSAGE_REACTION = "message.reaction"  # someone reacted to a message (or took it back)
    MESSAGE_EDITED = "message.edited"  # the author changed a message's text
    MESSAGE_UNSENT = "message.unsent"  # the author removed a message for everyone
    MESSAGE_EXPIRED = "message.expired"  # a disappearing message's timer ran out: erased
    CONVERSATION_TIMER = "conversation.timer"  # a disappearing-messages timer was set
    # The user muted, archived or pinned a conversation, or undid it (detail: which)
    CONVERSATION_CHANGED = "conversation.changed"
    TYPING = "typing"  # a contact is typing (lapses after TYPING_LAPSE_S)
    CONTACT_BLOCKED = "contact.blocked"  # the user blocked a peer
    CONTACT_UNBLOCKED = "contact.unblocked"  # the user unblocked a peer
    LOCATION_LIVE = "location.live"  # a live location started or moved (detail: until, ms)
    LOCATION_STOPPED = "location.stopped"  # a live location was stopped or ran out
    GROUP_CREATED = "group.created"  # we made a group or were added to one (detail: the change)
    GROUP_CHANGED = "group.changed"  # a change to a group's members, admins, name… (detail)
    GROUP_REMOVED = "group.removed"  # we were removed from a group


@dataclass(frozen=True, slots=True)
class LogEvent:
    """An entry for the event log before the store gives it its id (built by
    :mod:`p2pdm.core.eventlog`)."""

    type: EventType
    at_ms: int
    #: The other party the event is about (None for node-wide events).
    peer: PeerId | None = None
    #: The message it is about (``message.*`` events).
    message_id: bytes | None = None
    #: The new status (``message.status``).
    status: DeliveryStatus | None = None
    detail: str = ""
    #: The conversation of the message it is about (``message.*`` events).
    conversation_id: bytes | None = None
    #: About a stranger's message request: kept in the request events' part
    #: of the log, pruned apart from the main part.
    request: bool = False


@dataclass(frozen=True, slots=True)
class Event(LogEvent):
    """One entry of the event log; ``id`` increases and is never reused."""

    id: int = field(kw_only=True)


class TokenScope(StrEnum):
    """What an API token may do; each scope includes the ones before it."""

    READ = "read"  # read contacts, conversations, messages, events
    SEND = "send"  # also send messages and mark them read (which sends receipts)
    ADMIN = "admin"  # also change contacts, settings and tokens


#: Order of power: a token may do what its scope or any lower one allows.
SCOPE_RANK = {TokenScope.READ: 0, TokenScope.SEND: 1, TokenScope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A named API token as stored: only the SHA-256 of the secret is kept."""

    name: str
    secret_hash: bytes
    scope: TokenScope
    #: The contacts it is limited to; empty means every contact.
    contacts: tuple[PeerId, ...] = ()
    created_at_ms: int = 0
