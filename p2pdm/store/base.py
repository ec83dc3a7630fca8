"""The store contract: what the node asks of its message store.

Two implementations pass one contract test suite (``tests/store/test_contract.py``):
:class:`~p2pdm.store.sqlite.SQLiteStore` (the real one, a file in the node
home) and :class:`~p2pdm.store.memory.MemoryStore` (for tests).

Every write outside ``with store.transaction():`` commits by itself. Inside
one, all writes commit together or not at all (an exception rolls back), so
a received message and the session state after decrypting it land together.
Transactions do not nest.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from p2pdm.core.actions import HeldAction
from p2pdm.core.eventlog import LogEvent, status_event
from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import (
    STATUS_RANK,
    ApiToken,
    Contact,
    Conversation,
    DeliveryStatus,
    Direction,
    Event,
    EventType,
    MessagePage,
    OutboxItem,
    Recipient,
    StatusChange,
    StoredMessage,
    Withdrawal,
    overall_status,
)
from p2pdm.core.profile import Profile
from p2pdm.errors import NotFound, StoreError
from p2pdm.limits import (
    IDEMPOTENCY_RETENTION_SECONDS,
    MAX_PAGE_SIZE,
    MAX_REQUEST_BYTES,
    MAX_REQUEST_BYTES_PER_PEER,
    MAX_REQUEST_MESSAGES,
    MAX_REQUEST_MESSAGES_PER_PEER,
)
from p2pdm.store.blobs import BlobIndex
from p2pdm.store.groups import GroupStore
from p2pdm.store.key_waits import KeyWaitStore
from p2pdm.store.pending import PendingCommit, nothing

__all__ = [
    "BlockedPeer",
    "Reactions",
    "RequestCaps",
    "RequestSummary",
    "RequestUsage",
    "Store",
    "log_event",
]

_T = TypeVar("_T")

#: A message's reactions: emoji → the peers who chose it.
Reactions = dict[str, list[PeerId]]


@dataclass(frozen=True, slots=True)
class RequestCaps:
    """How much pending message requests a store keeps (see ``limits.py``).

    Bytes are those of the message bodies. Smaller values let tests reach
    the caps quickly.
    """

    messages_per_peer: int = MAX_REQUEST_MESSAGES_PER_PEER
    bytes_per_peer: int = MAX_REQUEST_BYTES_PER_PEER
    messages: int = MAX_REQUEST_MESSAGES
    bytes: int = MAX_REQUEST_BYTES


@dataclass(frozen=True, slots=True)
class RequestUsage:
    """Pending request messages and their body bytes; and how many were dropped, ever."""

    messages: int
    bytes: int
    dropped: int
    dropped_bytes: int


@dataclass(frozen=True, slots=True)
class BlockedPeer:
    """A peer the user blocked, and when."""

    peer_id: PeerId
    blocked_at_ms: int


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """One stranger's pending message requests: how many, the first, the latest time."""

    peer_id: PeerId
    count: int
    first: StoredMessage
    last_at_ms: int


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message whose text matched a search."""

    message_id: bytes
    conversation_id: bytes
    peer: PeerId
    direction: str
    sent_at_ms: int
    #: Text around the match, matches in ``[`` ``]``, cuts marked ``…``.
    snippet: str


class Store(BlobIndex, GroupStore, KeyWaitStore, Protocol):
    # --- lifecycle ---
    def close(self) -> None: ...
    def transaction(self, *, undivided: bool = False) -> AbstractContextManager[None]:
        """All writes inside commit together, or none if the block raises.
        ``undivided``: store calls inside take no savepoint of their own, and
        one that fails spoils the whole transaction (hot paths that never
        carry on after a failure), except a NotFound raised before the call
        wrote anything, which the block may catch."""
        ...

    def group(self) -> AbstractContextManager[None]:
        """One commit for the transactions inside (each still all-or-nothing alone)."""
        ...

    def commit_later(
        self, on_failure: Callable[[], None] = nothing
    ) -> AbstractContextManager[PendingCommit]:
        """The first transaction or group committed in the block leaves its
        COMMIT due in the PendingCommit given (:mod:`p2pdm.store.pending`:
        finish it in a worker thread); any store call commits it first. If
        that commit fails, ``on_failure`` runs before any other store call.
        A store that commits at once gives one already done."""
        ...

    def settle(self) -> None:
        """Commit here and now what a commit_later block left due (nothing if none)."""
        ...

    # --- settings (JSON-able values) ---
    def get_setting(self, key: str, default: object = None) -> object: ...
    def set_setting(self, key: str, value: object) -> None: ...
    def settings(self) -> dict[str, object]: ...

    # --- contacts ---
    def put_contact(self, contact: Contact) -> None: ...  # insert or replace
    def get_contact(self, peer: PeerId) -> Contact | None: ...
    def find_contact_by_name(self, name: str) -> Contact | None: ...  # case-insensitive
    def list_contacts(self) -> list[Contact]: ...
    def delete_contact(self, peer: PeerId) -> bool: ...

    # --- messages ---
    def add_message(self, message: StoredMessage) -> StoredMessage:
        """Insert; returns it with ``seq`` set. Raises StoreError if the id exists.

        Storing a message request first drops, oldest first, the pending
        requests over the store's :class:`RequestCaps` (the sender's own,
        then everyone's), in the same write: the store never holds more.
        Writes no event: the caller logs the entries
        :func:`p2pdm.core.eventlog.received_events` makes, in its transaction.
        """
        ...

    def get_message(self, message_id: bytes) -> StoredMessage | None: ...
    def update_conversation(
        self,
        conversation_id: bytes,
        peer: PeerId,
        at_ms: int,
        *,
        timer: tuple[int, int] | None = None,
        muted: bool | None = None,
        archived: bool | None = None,
        pinned: bool | None = None,
    ) -> Conversation:
        """Change a conversation's settings (creating it, empty, if needed); a
        ``timer`` ``(timer_s, set_at_ms)`` only if newer than the one it has;
        ``pinned`` pins it at ``at_ms`` (keeping the place of one pinned
        already) or unpins it."""
        ...

    def expire_messages(self, now_ms: int, limit: int) -> list[StoredMessage]:
        """Erase up to ``limit`` messages whose expiry is past (as
        :meth:`erase_message_body` does, then outbox entry, record), logging
        ``message.expired``; returns them as they were."""
        ...

    def next_expiry_ms(self) -> int | None:
        """The soonest expiry of any stored message (due or not), or None if
        none has a running timer; answered from an index, without a scan."""
        ...

    def forget_erased(self) -> None:
        """Make erased text leave the store's files (index merge, log truncation)."""
        ...

    def search(self, terms: list[str], peer: PeerId | None, limit: int) -> list[SearchHit]:
        """Messages whose text has every term (the last also as a prefix), newest first."""
        ...

    def set_status(
        self,
        message_id: bytes,
        status: DeliveryStatus,
        at_ms: int,
        detail: str = "",
        *,
        recipient: PeerId | None = None,
        event: bool = True,
    ) -> bool:
        """Record a status change; refuses to move back (see ``STATUS_RANK``).

        For an outgoing message the change is that of ``recipient`` (every
        recipient if None), and the message's own status becomes the least
        advanced of its recipients' (with its history entry and, unless
        ``event`` is False, its event when it moves: a caller that passes
        False logs the change itself). Returns True if a status changed.
        Raises NotFound for an unknown id or a peer that is not one of its
        recipients.
        """
        ...

    def set_statuses(
        self,
        message_id: bytes,
        statuses: Sequence[DeliveryStatus],
        at_ms: int,
        *,
        recipient: PeerId | None = None,
    ) -> bool:
        """``set_status`` for each of ``statuses`` in turn, at ``at_ms`` with no
        detail, with the same answers, history and events (an ack's "sent"
        mark and its "delivered": the SQLite store writes each row once).
        True if a status changed; raises NotFound as set_status does."""
        ...

    def status_history(self, message_id: bytes) -> list[StatusChange]: ...
    def note_status(
        self, message_id: bytes, at_ms: int, detail: str, *, recipient: PeerId | None = None
    ) -> bool:
        """Record a note on an outgoing message's current status (a refusal, an error).

        It is a history entry with the same status, and a status event; a
        note equal to the latest detail, or on a message already delivered
        (or final), is not recorded. Past MAX_STATUS_HISTORY entries the
        newest note replaces the last, without an event. Returns True if
        recorded. Raises NotFound for an unknown id.

        With ``recipient`` (a group member's envelope), the note is also that
        recipient's own detail while it waits, so each member says why.
        """
        ...

    def messages(
        self, conversation_id: bytes, limit: int, before: int | None = None
    ) -> MessagePage:
        """Newest first, at most ``limit`` (capped at MAX_PAGE_SIZE), with ``seq < before``."""
        ...

    def list_conversations(self) -> list[Conversation]: ...  # most recent first
    def get_conversation(self, conversation_id: bytes) -> Conversation | None: ...
    def mark_conversation_read(self, conversation_id: bytes, at_ms: int) -> list[bytes]:
        """Mark incoming messages read; returns the ids that changed, oldest first."""
        ...

    def accept_request(self, peer: PeerId) -> int:
        """Turn a peer's message requests into normal messages; returns how many."""
        ...

    def request_usage(self) -> RequestUsage: ...
    def has_requests(self, peer: PeerId) -> bool:
        """True while ``peer`` has a pending message request (its next is not its first)."""
        ...

    def list_requests(self) -> list[RequestSummary]:
        """One entry per stranger with pending requests, most recent first."""
        ...

    def delete_requests(self, peer: PeerId) -> int:
        """Delete ``peer``'s pending request messages (declined); returns how many."""
        ...

    def conversation_answered(self, conversation_id: bytes) -> bool:
        """True if the conversation holds a message from its peer or one of ours it read."""
        ...

    def conversation_written(self, conversation_id: bytes) -> bool:
        """True if the conversation holds a message this node sent (so its peer
        is answering, not asking: docs/protocol.md §18.2)."""
        ...

    # --- blocked peers ---
    def block_peer(self, peer: PeerId, at_ms: int) -> bool:
        """Block ``peer``, logging ``contact.blocked``; False if it was already.
        Raises StoreError past MAX_BLOCKED_PEERS."""
        ...

    def unblock_peer(self, peer: PeerId, at_ms: int) -> bool:
        """Unblock ``peer``, logging ``contact.unblocked``; False if it was not blocked."""
        ...

    def is_blocked(self, peer: PeerId) -> bool: ...
    def list_blocked(self) -> list[BlockedPeer]: ...

    # --- replay protection ---
    def has_seen(self, message_id: bytes) -> bool: ...
    def mark_seen(self, message_id: bytes, at_ms: int) -> None: ...
    def purge_seen(self, before_ms: int) -> int: ...

    # --- sessions and own prekeys (opaque serialised state) ---
    def get_session(self, peer: PeerId) -> bytes | None: ...
    def put_session(self, peer: PeerId, state: bytes, at_ms: int) -> None: ...
    def delete_session(self, peer: PeerId) -> None: ...
    def get_prekeys(self) -> bytes | None: ...
    def put_prekeys(self, state: bytes) -> None: ...

    # --- outbox ---
    def add_outbox(self, item: OutboxItem) -> None: ...
    def get_outbox(self, envelope_id: bytes) -> OutboxItem | None: ...
    def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        """Items with ``next_attempt_at_ms <= now_ms``, earliest first; at equal
        times in the order they were queued (never by envelope id: that hashes
        ciphertext, so its order would change from run to run)."""
        ...

    def outbox_for(
        self, recipient: PeerId, due_at_ms: int | None = None, limit: int | None = None
    ) -> list[OutboxItem]: ...
    def outbox_page(self, after: bytes, limit: int) -> list[OutboxItem]:
        """Items with ``envelope_id > after`` in id order, at most ``limit`` (capped at
        MAX_PAGE_SIZE): a walk through the whole outbox."""
        ...

    def reschedule_outbox(
        self, envelope_id: bytes, next_attempt_at_ms: int, attempts: int, last_error: str = ""
    ) -> None: ...
    def remove_outbox(self, envelope_id: bytes) -> bool: ...
    def outbox_count(self) -> int: ...

    # --- deposits: which mailboxes hold our outgoing envelopes ---
    def add_deposit(self, envelope_id: bytes, mailbox: PeerId, until_ms: int) -> None:
        """Record that ``mailbox`` holds the envelope until ``until_ms`` (a later time wins)."""
        ...

    def deposits(self, envelope_id: bytes) -> list[tuple[PeerId, int]]:
        """Mailboxes holding the envelope and until when, by mailbox PeerID.

        ``remove_outbox`` forgets them with the envelope.
        """
        ...

    # --- withdrawals: deposits to take back after an unsend (§14.3 ``withdraw``) ---
    def withdrawals_due(self, now_ms: int, limit: int) -> list[Withdrawal]:
        """Withdrawals due by ``now_ms`` (at most ``limit``, by mailbox); drops
        those whose mailbox lets the envelope go by then anyway.
        ``remove_outbox_of`` and ``remove_followers_of`` turn the deposits of
        the envelopes they drop into withdrawals."""
        ...

    def withdrawal_done(self, envelope_id: bytes, mailbox: PeerId) -> None: ...
    def withdrawal_retry(
        self, envelope_id: bytes, mailbox: PeerId, attempts: int, next_at_ms: int
    ) -> None: ...
    def withdrawals_count(self) -> int: ...

    # --- our running live location shares: which, with whom, until when ---
    def put_live_share(self, conversation_id: bytes, peer: PeerId | None, until_ms: int) -> None:
        """Remember a share (``peer``: the contact; None for a group's), never a position."""
        ...

    def remove_live_share(self, conversation_id: bytes) -> bool: ...
    def live_shares(self) -> list[tuple[bytes, PeerId | None, int]]: ...

    # --- mailbox: envelopes this node holds for others ---
    def mailbox_add(self, item: StoredEnvelope) -> tuple[StoredEnvelope, bool]:
        """Hold an envelope; returns it with ``seq`` set and True.

        The same bytes for the same recipient again change nothing: the held
        one and False are returned.
        """
        ...

    def mailbox_fetch(
        self, recipient: PeerId, after_seq: int, now_ms: int, limit: int
    ) -> list[StoredEnvelope]:
        """Unexpired envelopes for ``recipient`` with ``seq > after_seq``, oldest first."""
        ...

    def mailbox_delete(self, recipient: PeerId, seqs: Sequence[int]) -> int:
        """Remove ``recipient``'s envelopes with these seqs (others' are untouched); how many."""
        ...

    def mailbox_usage(
        self, recipient: PeerId | None = None, depositor: bytes | None = None
    ) -> tuple[int, int]:
        """(envelopes, bytes) held for ``recipient`` (everyone if None), and of those
        the ones ``depositor`` (a tag, see ``StoredEnvelope.depositor``) left if given."""
        ...

    def mailbox_purge(self, now_ms: int) -> int:
        """Drop envelopes with ``expires_at_ms <= now_ms``; returns how many."""
        ...

    def mailbox_withdraw(self, hashes: Sequence[bytes]) -> int:
        """Drop the envelopes held under these withdraw hashes (empty ones match
        nothing), whoever they are for; returns how many."""
        ...

    def mailbox_recipients(self) -> int:
        """How many distinct recipients the mailbox holds envelopes for."""
        ...

    # --- the event log (see docs/api.md, "Events") ---
    # set_status, note_status, mark_conversation_read and put_contact write
    # their events themselves, in the same transaction as the change;
    # add_message writes none (see p2pdm.core.conversation on who logs what).
    def add_event(
        self,
        type: EventType,
        at_ms: int,
        peer: PeerId | None = None,
        message_id: bytes | None = None,
        status: DeliveryStatus | None = None,
        detail: str = "",
        *,
        request: bool = False,
        conversation_id: bytes | None = None,
    ) -> int:
        """Append an event; returns its id.

        ``request`` events (about a stranger's message requests) are kept
        apart: the newest ``max_request_events`` of them, and the newest
        ``max_events`` of all others, each pruned on its own.
        """
        ...

    def events(
        self,
        after: int,
        limit: int,
        types: Collection[EventType] | None = None,
        peers: Collection[PeerId] | None = None,
    ) -> list[Event]:
        """Events with ``id > after``, oldest first, at most ``limit`` (capped at
        MAX_PAGE_SIZE); only of ``types`` and about ``peers`` when given."""
        ...

    def event_bounds(self) -> tuple[int, int]:
        """``(oldest kept id, newest id ever)``; ``(0, 0)`` before the first event."""
        ...

    def events_pruned(self) -> tuple[int, int]:
        """The highest event id pruned so far from the main log, and from the
        request events; 0 while none was. An event after a cursor was lost
        to retention if and only if that id is above the cursor."""
        ...

    def set_event_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` after every write that added an event (None: stop)."""
        ...

    # --- idempotency keys of sends ---
    def remember_send(self, scope: str, key: str, message_id: bytes, at_ms: int) -> None:
        """Record which message ``key`` made; raises StoreError if the key is taken.

        Forgets keys older than IDEMPOTENCY_RETENTION_SECONDS and, past
        ``max_idempotency_keys``, the oldest.
        """
        ...

    def sent_with(self, scope: str, key: str) -> bytes | None:
        """The id of the message ``key`` made, if it is still remembered."""
        ...

    # --- named API tokens ---
    def put_token(self, token: ApiToken) -> None:
        """Add a token; raises StoreError for a taken name or hash, or past MAX_API_TOKENS."""
        ...

    def list_tokens(self) -> list[ApiToken]: ...  # by name
    def delete_token(self, name: str) -> bool: ...

    # --- message actions (store/sqlite_actions.py) ---
    def set_reaction(self, message_id: bytes, peer: PeerId, emoji: str, at_ms: int) -> bool:
        """``peer``'s reaction ('' takes it back) if newer (time, then emoji); True if changed."""
        ...

    def reactions(self, message_ids: Sequence[bytes]) -> dict[bytes, Reactions]: ...
    def edit_message_body(self, message_id: bytes, body: bytes, edited_at_ms: int) -> bool:
        """Replace the body of a message not unsent, if the edit is newer; True if it did."""
        ...

    def erase_message_body(self, message_id: bytes) -> bool:
        """Remove the message's text from everywhere the store keeps it (body,
        its words in the search index, reactions, held actions) and release its
        files (their references: the node deletes blobs no message carries);
        the row stays. True if it exists."""
        ...

    def unsend_message(self, message_id: bytes) -> bool:
        """Erase the body and mark the message unsent; True if it was not already."""
        ...

    def delete_message(self, message_id: bytes) -> bool: ...  # here only
    def delete_conversation(self, conversation_id: bytes) -> int: ...  # messages deleted
    def hold_action(self, held: HeldAction) -> None:
        """Keep an action for its target; drops expired and the oldest over the caps."""
        ...

    def take_held(self, target: bytes, now_ms: int) -> list[HeldAction]:
        """Remove and return the live actions held for ``target``, oldest first."""
        ...

    def drop_expired_held(self, now_ms: int) -> int:
        """Drop (and count) the held actions that may wait no longer; how many."""
        ...

    def held_count(self) -> int: ...
    def count_refused_action(self) -> None: ...
    def remove_outbox_of(self, message_id: bytes) -> int:
        """Drop the queued envelopes of a message; returns how many."""
        ...

    # --- the published profile and the handle claims seen ---
    def get_profile(self) -> Profile | None: ...
    def put_profile(self, profile: Profile | None, at_ms: int) -> None:
        """Replace the profile; None (or an empty profile) removes it."""
        ...

    def note_handle_claims(
        self, handle: str, peers: Sequence[PeerId], now_ms: int, cap: int
    ) -> dict[PeerId, int]:
        """Record that ``peers`` claim ``handle`` now; returns when each was first seen.

        Keeps at most ``cap`` claims, forgetting the least recently seen first.
        """
        ...

    def handle_claimants(self, handle: str, limit: int) -> list[PeerId]:
        """Claimants of ``handle`` seen before, the longest seen first."""
        ...

    # --- counts for the API ---
    def counts(self) -> dict[str, int]:
        """``contacts``, ``messages``, ``unread``, ``requests``, ``outbox``,
        ``requests_dropped`` (request messages dropped over the caps, ever),
        ``actions_refused`` (reactions, edits, unsends refused on receipt, ever),
        ``held_actions_dropped`` (actions whose target never came, ever)."""
        ...


def log_event(store: Store, event: LogEvent) -> int:
    """Append an entry built by :mod:`p2pdm.core.eventlog` to ``store``'s event
    log (inside the caller's transaction, if any); returns its id."""
    return store.add_event(
        event.type,
        event.at_ms,
        event.peer,
        event.message_id,
        event.status,
        event.detail,
        request=event.request,
        conversation_id=event.conversation_id,
    )


def envelope_digest(envelope: bytes) -> bytes:
    """What makes two deposits the same: SHA-256 of the envelope bytes."""
    return hashlib.sha256(envelope).digest()


def iter_chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    """Split for SQL ``IN (…)`` lists, which SQLite caps at 32766 parameters."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


# --- rules both stores share ---------------------------------------------
# One definition each, so the SQLite and in-memory stores cannot drift apart.


def contact_name_key(name: str) -> str:
    """The form contact names are compared in: NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def encode_setting(key: str, value: object) -> str:
    """JSON text of a setting value; raises StoreError if it is not plain JSON."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"setting {key!r} is not JSON-serialisable: {exc}") from None


def decode_setting(text: str) -> object:
    """The value of a setting stored by :func:`encode_setting`."""
    return json.loads(text)


def page_limit(limit: int) -> int:
    """``limit`` capped at MAX_PAGE_SIZE; raises StoreError if it is not positive."""
    if limit < 1:
        raise StoreError(f"a page holds at least one item, not {limit}")
    return min(limit, MAX_PAGE_SIZE)


def status_moves(old: DeliveryStatus, new: DeliveryStatus) -> bool:
    """True if a message may go from ``old`` to ``new``: strictly forward in STATUS_RANK.

    Statuses of equal rank (``failed``, ``expired``) are both final, so
    neither replaces the other.
    """
    return STATUS_RANK[new] > STATUS_RANK[old]


#: Statuses of an incoming message that has not been read yet: everything
#: ranked before ``read``. Counted in ``Conversation.unread``; a final status
#: (failed, expired) is not unread.
#: Statuses of an outgoing message that a note (see ``Store.note_status``)
#: may be added to: those before ``delivered``.
NOTED_STATUSES = frozenset(
    status for status, rank in STATUS_RANK.items() if rank < STATUS_RANK[DeliveryStatus.DELIVERED]
)


def notable(
    direction: Direction, status: DeliveryStatus, latest: Sequence[StatusChange], detail: str
) -> bool:
    """True if ``detail`` is worth a note on a message in this state (see ``Store.note_status``)."""
    if direction != Direction.OUT or status not in NOTED_STATUSES or not detail:
        return False
    return not latest or latest[-1].detail != detail


UNREAD_STATUSES = frozenset(
    status for status, rank in STATUS_RANK.items() if rank < STATUS_RANK[DeliveryStatus.READ]
)


def first_recipients(message: StoredMessage) -> tuple[Recipient, ...]:
    """The recipients an outgoing message is stored with: its own, else ``peer``
    alone; by PeerID bytes, the order the stores give them back in."""
    if message.direction != Direction.OUT:
        return ()
    given = message.recipients or (Recipient(message.peer, message.status, message.stored_at_ms),)
    return tuple(sorted(given, key=lambda r: r.peer.raw))


def advance_recipients(
    recipients: tuple[Recipient, ...],
    status: DeliveryStatus,
    at_ms: int,
    detail: str,
    recipient: PeerId | None,
) -> tuple[tuple[Recipient, ...], list[Recipient]]:
    """``recipients`` after ``recipient`` (every one if None) reached ``status``,
    and the ones that moved. Raises NotFound if ``recipient`` is not among them."""
    if recipient is not None and all(r.peer != recipient for r in recipients):
        raise NotFound(f"{recipient.short()} is not a recipient of this message")
    moved = [
        Recipient(r.peer, status, at_ms, detail)
        for r in recipients
        if (recipient is None or r.peer == recipient) and status_moves(r.status, status)
    ]
    by_peer = {r.peer: r for r in moved}
    return tuple(by_peer.get(r.peer, r) for r in recipients), moved


def status_change_event(
    old: StoredMessage, new: DeliveryStatus, moved: list[Recipient], at_ms: int, detail: str
) -> LogEvent | None:
    """The ``message.status`` entry of ``old`` reaching ``new`` after ``moved``
    recipients' statuses moved, or None. A message to one peer makes one when
    its status moves; a message to several (a group's) also when any one
    recipient's does, so its figures per member show at once: ``status`` stays
    the message's own (its least advanced recipient's), ``peer`` names the
    recipient that moved (docs/api.md, Events)."""
    return status_change_entry(old, old.status, new, moved, at_ms, detail)


def status_change_entry(
    message: StoredMessage,
    old: DeliveryStatus,
    new: DeliveryStatus,
    moved: list[Recipient],
    at_ms: int,
    detail: str,
) -> LogEvent | None:
    """:func:`status_change_event` of ``message`` while its status is ``old``
    (of several moves in a row: the message as stored before them, which has
    as many recipients)."""
    several = len(message.recipients) > 1
    own_moved = status_moves(old, new)
    if not own_moved and not (several and moved):
        return None
    peer = moved[0].peer if several and len(moved) == 1 else None
    return status_event(message, new if own_moved else old, at_ms, detail, peer=peer)


def message_status(message: StoredMessage, recipients: tuple[Recipient, ...]) -> DeliveryStatus:
    """What a message's own status is now: its recipients' least advanced, if it has any."""
    return overall_status(recipients) if recipients else message.status


def is_unread(message: StoredMessage) -> bool:
    """True for an incoming message that counts towards its conversation's unread."""
    return message.direction == Direction.IN and message.status in UNREAD_STATUSES


def requests_over_caps(
    pending: Sequence[tuple[int, int]], cap_messages: int, cap_bytes: int
) -> list[int]:
    """Which of the ``(seq, bytes)`` pending requests, oldest first, to drop
    (oldest first) so the rest fit in ``cap_messages`` and ``cap_bytes``."""
    count, total = len(pending), sum(size for _, size in pending)
    drop = []
    for seq, size in pending:
        if count <= cap_messages and total <= cap_bytes:
            break
        drop.append(seq)
        count -= 1
        total -= size
    return drop


def idempotency_cutoff_ms(now_ms: int) -> int:
    """Keys made before this time are forgotten."""
    return now_ms - IDEMPOTENCY_RETENTION_SECONDS * 1000
