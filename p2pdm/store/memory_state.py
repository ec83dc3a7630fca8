"""What every part of the in-memory store shares: its state and the event hook.

How this works: :class:`~p2pdm.store.memory.MemoryStore` is assembled from one
mixin per aggregate (contacts, messages, outbox, mailbox, the API tables), each
a subclass of :class:`Dicts`; all state is one :class:`MemoryState`, so a
transaction snapshots and restores it whole. The snapshot
(:meth:`MemoryState.snapshot`) copies the containers and shares what they
hold where that cannot change: every stored value is a frozen dataclass (of
bytes, strings, numbers, tuples), bytes or a tuple, except the conversations'
:class:`ConversationState`, copied one by one, and the lists and dicts held
by some tables, copied a level down (:data:`SNAPSHOT_COPIES` says which).
It answers as ``copy.deepcopy`` would at a fraction of the cost: a mailbox
node's store is copied before each of its transactions.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from p2pdm.core.actions import HeldAction
from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import (
    ApiToken,
    Contact,
    Conversation,
    DeliveryStatus,
    Event,
    EventType,
    LogEvent,
    OutboxItem,
    StatusChange,
    StoredMessage,
)
from p2pdm.core.profile import Profile
from p2pdm.errors import StoreError
from p2pdm.store.base import (
    RequestCaps,
)
from p2pdm.store.blobs import BlobRecord
from p2pdm.store.key_waits import KeyWait
from p2pdm.store.memory_log import EventLog

if TYPE_CHECKING:
    from p2pdm.store.groups import GroupRow

__all__ = ["SNAPSHOT_COPIES", "ConversationState", "Dicts", "MemoryState", "withdraw_deposits"]


@dataclass(slots=True)
class ConversationState:
    peer: PeerId
    last_message_at_ms: int
    last_seq: int
    unread: int
    request: bool
    timer_s: int = 0
    #: The sender's clock of the timer setting (the newest wins).
    timer_set_at_ms: int = 0
    muted: bool = False
    archived: bool = False
    pinned_at_ms: int | None = None

    def public(self, conversation_id: bytes) -> Conversation:
        return Conversation(
            conversation_id,
            self.peer,
            self.last_message_at_ms,
            self.unread,
            self.request,
            self.timer_s,
            self.muted,
            self.archived,
            self.pinned_at_ms,
        )


#: A message index's heap is rebuilt when its stale entries (from messages
#: rewritten or removed) make it this many times the messages it indexes, so
#: it stays within a constant factor of the store however often they change.
EXPIRY_HEAP_SLACK: Final = 2


class MessagesByExpiry(dict[int, StoredMessage]):
    """Messages by seq, with a min-heap of ``(expires_at_ms, seq)`` so the
    soonest expiry is known without a scan. Entries go stale when a message
    is rewritten or removed; :meth:`next_expiry_ms` drops them as it meets
    them. Every write goes through ``[seq] =``, ``pop`` or ``del``."""

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[int, int]] = []

    def __setitem__(self, seq: int, message: StoredMessage) -> None:
        super().__setitem__(seq, message)
        if message.expires_at_ms is not None:
            heapq.heappush(self._heap, (message.expires_at_ms, seq))
            if len(self._heap) > EXPIRY_HEAP_SLACK * len(self) + 1:
                self._heap = [
                    (m.expires_at_ms, s) for s, m in self.items() if m.expires_at_ms is not None
                ]
                heapq.heapify(self._heap)

    def next_expiry_ms(self) -> int | None:
        """The soonest ``expires_at_ms`` of any message, or None."""
        heap = self._heap
        while heap:
            at_ms, seq = heap[0]
            message = self.get(seq)
            if message is not None and message.expires_at_ms == at_ms:
                return at_ms
            heapq.heappop(heap)
        return None

    def snapshot(self) -> MessagesByExpiry:
        """A copy sharing the (frozen) messages."""
        twin = MessagesByExpiry()
        dict.update(twin, self)
        twin._heap = list(self._heap)
        return twin

    def __deepcopy__(self, memo: dict[int, object]) -> MessagesByExpiry:
        twin = MessagesByExpiry()
        for seq, message in self.items():
            dict.__setitem__(twin, seq, copy.deepcopy(message, memo))
        twin._heap = list(self._heap)  # tuples of ints: nothing deeper to copy
        return twin


@dataclass(slots=True)
class MemoryState:
    settings: dict[str, str] = field(default_factory=dict)
    contacts: dict[PeerId, Contact] = field(default_factory=dict)
    #: Messages by seq, and the seq of each id.
    messages: MessagesByExpiry = field(default_factory=MessagesByExpiry)
    seq_of: dict[bytes, int] = field(default_factory=dict)
    #: Seqs of each conversation's messages, ascending.
    conversation_seqs: dict[bytes, list[int]] = field(default_factory=dict)
    conversations: dict[bytes, ConversationState] = field(default_factory=dict)
    history: dict[bytes, list[StatusChange]] = field(default_factory=dict)
    seen: dict[bytes, int] = field(default_factory=dict)
    sessions: dict[PeerId, bytes] = field(default_factory=dict)
    prekeys: bytes | None = None
    outbox: dict[bytes, OutboxItem] = field(default_factory=dict)
    last_seq: int = 0
    #: Mailboxes holding our envelopes: envelope id -> mailbox -> until_ms.
    deposits: dict[bytes, dict[PeerId, int]] = field(default_factory=dict)
    #: Deposits to take back: (envelope id, mailbox) -> (until_ms, attempts, next_at_ms).
    withdrawals: dict[tuple[bytes, PeerId], tuple[int, int, int]] = field(default_factory=dict)
    #: Our running live location shares: conversation id -> (contact or None, until_ms).
    live_shares: dict[bytes, tuple[PeerId | None, int]] = field(default_factory=dict)
    #: Envelopes held for others, by seq (insertion order is seq order).
    mailbox: dict[int, StoredEnvelope] = field(default_factory=dict)
    mailbox_digests: dict[tuple[PeerId, bytes], int] = field(default_factory=dict)
    mailbox_seq: int = 0
    events: EventLog = field(default_factory=EventLog)
    #: Pending request messages dropped over the caps, ever: (messages, bytes).
    requests_dropped: tuple[int, int] = (0, 0)
    #: Idempotency keys: (scope, key) -> (message id, created at), oldest first.
    sends: dict[tuple[str, str], tuple[bytes, int]] = field(default_factory=dict)
    tokens: dict[str, ApiToken] = field(default_factory=dict)
    #: Blocked peers, and when each was blocked.
    blocked: dict[PeerId, int] = field(default_factory=dict)
    #: Reactions: message id -> peer -> (emoji, at_ms); '' is taken back.
    reactions: dict[bytes, dict[PeerId, tuple[str, int]]] = field(default_factory=dict)
    #: Actions waiting for their target, in arrival order.
    held: list[HeldAction] = field(default_factory=list)
    actions_refused: int = 0
    held_dropped: int = 0
    profile: Profile | None = None
    #: Handle claims seen: (handle, claimant) -> (first seen, last seen).
    handle_claims: dict[tuple[str, PeerId], tuple[int, int]] = field(default_factory=dict)
    #: Blob rows by id, and references (blob id, message id, peer) in order.
    blobs: dict[bytes, BlobRecord] = field(default_factory=dict)
    blob_refs: list[tuple[bytes, bytes, PeerId]] = field(default_factory=list)
    #: Blobs some message carried once (released at once when none does).
    blobs_attached: set[bytes] = field(default_factory=set)
    #: Queued envelopes that follow a message (its file's chunks): envelope -> message.
    followers: dict[bytes, bytes] = field(default_factory=dict)
    #: Groups by id; their entries (hash -> encoded, in arrival order); the
    #: heads each member was last known to have.
    groups: dict[bytes, GroupRow] = field(default_factory=dict)
    group_entries: dict[bytes, dict[bytes, bytes]] = field(default_factory=dict)
    #: Held group entries: group id -> hash -> (held at ms, encoded).
    group_held: dict[bytes, dict[bytes, tuple[int, bytes]]] = field(default_factory=dict)
    group_heads: dict[tuple[bytes, PeerId], tuple[bytes, ...]] = field(default_factory=dict)
    #: Messages waiting for their recipient's prekeys, by message id.
    key_waits: dict[bytes, KeyWait] = field(default_factory=dict)

    def snapshot(self) -> MemoryState:
        """A copy that nothing done to this state afterwards changes (as
        ``copy.deepcopy``), sharing the frozen values."""
        twin = MemoryState.__new__(MemoryState)
        for name, copier in SNAPSHOT_COPIES.items():
            setattr(twin, name, copier(getattr(self, name)))
        return twin


def _same(value: object) -> object:
    """An immutable value (or None): shared."""
    return value


def _lists_by_key(table: dict[object, list[object]]) -> dict[object, list[object]]:
    return {key: list(value) for key, value in table.items()}


def _dicts_by_key(table: dict[object, dict[object, object]]) -> dict[object, dict[object, object]]:
    return {key: dict(value) for key, value in table.items()}


def _conversations(
    table: dict[bytes, ConversationState],
) -> dict[bytes, ConversationState]:
    return {key: copy.copy(state) for key, state in table.items()}


def _events(log: EventLog) -> EventLog:
    return EventLog(list(log.main), list(log.requests), log.last_id, list(log.pruned))


#: How :meth:`MemoryState.snapshot` copies each field: ``dict``/``list``/``set``
#: for a container of immutable values, a level down for containers of lists
#: or dicts, ``_same`` for an immutable value. A new field needs its entry
#: (``tests/store/test_snapshot.py`` checks they match the fields, and every
#: memory store test checks each snapshot against ``copy.deepcopy``).
SNAPSHOT_COPIES: Final[dict[str, Callable[[Any], object]]] = {
    "settings": dict,
    "contacts": dict,
    "messages": MessagesByExpiry.snapshot,
    "seq_of": dict,
    "conversation_seqs": _lists_by_key,
    "conversations": _conversations,
    "history": _lists_by_key,
    "seen": dict,
    "sessions": dict,
    "prekeys": _same,
    "outbox": dict,
    "last_seq": _same,
    "deposits": _dicts_by_key,
    "withdrawals": dict,
    "live_shares": dict,
    "mailbox": dict,
    "mailbox_digests": dict,
    "mailbox_seq": _same,
    "events": _events,
    "requests_dropped": _same,
    "sends": dict,
    "tokens": dict,
    "blocked": dict,
    "reactions": _dicts_by_key,
    "held": list,
    "actions_refused": _same,
    "held_dropped": _same,
    "profile": _same,
    "handle_claims": dict,
    "blobs": dict,
    "blob_refs": list,
    "blobs_attached": set,
    "followers": dict,
    "groups": dict,
    "group_entries": _dicts_by_key,
    "group_held": _dicts_by_key,
    "group_heads": dict,
    "key_waits": dict,
}


class Dicts:
    """The store's state and bounds, as the mixins see them."""

    _state: MemoryState
    _closed: bool
    _event_caps: tuple[int, int]
    _request_caps: RequestCaps
    _max_keys: int
    _listener: Callable[[], None] | None

    def _live(self) -> MemoryState:
        if self._closed:
            raise StoreError("message store (in memory) is closed")
        return self._state

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
        """Append an event; returns its id. Each part of the log keeps its newest."""
        return self._log(
            LogEvent(type, at_ms, peer, message_id, status, detail, conversation_id, request)
        )

    def _log(self, entry: LogEvent) -> int:
        """Append ``entry`` (built by :mod:`p2pdm.core.eventlog`); returns its id."""
        log = self._live().events
        log.last_id += 1
        cap = self._event_caps[1] if entry.request else self._event_caps[0]
        event = Event(
            entry.type,
            entry.at_ms,
            entry.peer,
            entry.message_id,
            entry.status,
            entry.detail,
            entry.conversation_id,
            entry.request,
            id=log.last_id,
        )
        log.add(event, cap, request=entry.request)
        if self._listener is not None:
            self._listener()
        return log.last_id


def withdraw_deposits(state: MemoryState, envelope_id: bytes) -> None:
    """Forget the envelope's deposits, keeping each as a withdrawal to make."""
    for mailbox, until in state.deposits.pop(envelope_id, {}).items():
        state.withdrawals.setdefault((envelope_id, mailbox), (until, 0, 0))
