"""The message store in plain dicts, for tests: same behaviour as the SQLite store.

How this works: all state is one :class:`_State`; every method checks its
preconditions before it changes anything, so a call that raises leaves no
trace. :meth:`MemoryStore.transaction` snapshots the state with
``copy.deepcopy`` and restores it if the block raises. Settings are kept as
JSON text, so a value comes back exactly as it would from SQLite (tuples as
lists, a fresh object each time). The contract suite runs every test against
both stores and a state machine checks they always answer alike.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import (
    ApiToken,
    Contact,
    Conversation,
    DeliveryStatus,
    Event,
    EventType,
    MessagePage,
    OutboxItem,
    StatusChange,
    StoredMessage,
)
from p2pdm.errors import NotFound, StoreError
from p2pdm.limits import (
    MAX_API_TOKENS,
    MAX_IDEMPOTENCY_KEYS,
    MAX_STATUS_HISTORY,
    MAX_STORED_EVENTS,
    MAX_STORED_REQUEST_EVENTS,
)
from p2pdm.store.base import (
    UNREAD_STATUSES,
    RequestCaps,
    RequestUsage,
    contact_name_key,
    decode_setting,
    encode_setting,
    envelope_digest,
    idempotency_cutoff_ms,
    is_unread,
    notable,
    page_limit,
    received_events,
    requests_over_caps,
    status_moves,
)
from p2pdm.store.memory_log import EventLog

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Conversation:
    peer: PeerId
    last_message_at_ms: int
    last_seq: int
    unread: int
    request: bool

    def public(self, conversation_id: bytes) -> Conversation:
        return Conversation(
            conversation_id, self.peer, self.last_message_at_ms, self.unread, self.request
        )


@dataclass(slots=True)
class _State:
    settings: dict[str, str] = field(default_factory=dict)
    contacts: dict[PeerId, Contact] = field(default_factory=dict)
    #: Messages by seq, and the seq of each id.
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    seq_of: dict[bytes, int] = field(default_factory=dict)
    #: Seqs of each conversation's messages, ascending.
    conversation_seqs: dict[bytes, list[int]] = field(default_factory=dict)
    conversations: dict[bytes, _Conversation] = field(default_factory=dict)
    history: dict[bytes, list[StatusChange]] = field(default_factory=dict)
    seen: dict[bytes, int] = field(default_factory=dict)
    sessions: dict[PeerId, bytes] = field(default_factory=dict)
    prekeys: bytes | None = None
    outbox: dict[bytes, OutboxItem] = field(default_factory=dict)
    last_seq: int = 0
    #: Mailboxes holding our envelopes: envelope id -> mailbox -> until_ms.
    deposits: dict[bytes, dict[PeerId, int]] = field(default_factory=dict)
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


class MemoryStore:
    """A :class:`~p2pdm.store.base.Store` that lives and dies with the process."""

    def __init__(
        self,
        *,
        max_events: int = MAX_STORED_EVENTS,
        max_request_events: int = MAX_STORED_REQUEST_EVENTS,
        max_idempotency_keys: int = MAX_IDEMPOTENCY_KEYS,
        request_caps: RequestCaps = RequestCaps(),  # noqa: B008 (frozen)
    ) -> None:
        self._state = _State()
        self._closed = False
        self._in_transaction = False
        self._in_group = False
        self._event_caps = (max_events, max_request_events)
        self._request_caps = request_caps
        self._max_keys = max_idempotency_keys
        self._listener: Callable[[], None] | None = None

    def _live(self) -> _State:
        if self._closed:
            raise StoreError("message store (in memory) is closed")
        return self._state

    # --- lifecycle -------------------------------------------------------

    def close(self) -> None:
        """Close the store: later calls raise StoreError. Closing twice is harmless."""
        self._closed = True

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """The transactions inside are kept together, or none if the block raises."""
        if self._in_group or self._in_transaction:
            raise StoreError("a store group cannot be nested or opened in a transaction")
        snapshot = copy.deepcopy(self._live())
        self._in_group = True
        try:
            yield
        except BaseException:
            self._state = snapshot
            raise
        finally:
            self._in_group = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together, or none if the block raises.

        Raises StoreError when nested.
        """
        if self._in_transaction:
            raise StoreError("store transactions do not nest")
        snapshot = copy.deepcopy(self._live())
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._state = snapshot
            raise
        finally:
            self._in_transaction = False
        self._live()  # a store closed inside the block cannot commit

    # --- settings --------------------------------------------------------

    def get_setting(self, key: str, default: object = None) -> object:
        text = self._live().settings.get(key)
        return default if text is None else decode_setting(text)

    def set_setting(self, key: str, value: object) -> None:
        """Store a JSON-able value; raises StoreError for anything else."""
        state = self._live()
        state.settings[key] = encode_setting(key, value)

    def settings(self) -> dict[str, object]:
        state = self._live()
        return {key: decode_setting(state.settings[key]) for key in sorted(state.settings)}

    # --- contacts --------------------------------------------------------

    def put_contact(self, contact: Contact) -> None:
        """Insert or replace; a new contact makes a ``contact.added`` event."""
        state = self._live()
        new = contact.peer_id not in state.contacts
        state.contacts[contact.peer_id] = replace(contact, addrs=tuple(contact.addrs))
        if new:
            self.add_event(EventType.CONTACT_ADDED, contact.added_at_ms, contact.peer_id)

    def get_contact(self, peer: PeerId) -> Contact | None:
        return self._live().contacts.get(peer)

    def find_contact_by_name(self, name: str) -> Contact | None:
        """The contact of that name, ignoring case; the earliest added if several share it."""
        key = contact_name_key(name)
        matches = [c for c in self._live().contacts.values() if contact_name_key(c.name) == key]
        return min(matches, key=lambda c: (c.added_at_ms, c.peer_id.raw), default=None)

    def list_contacts(self) -> list[Contact]:
        """Every contact, by name."""
        contacts = self._live().contacts.values()
        return sorted(contacts, key=lambda c: (contact_name_key(c.name), c.peer_id.raw))

    def delete_contact(self, peer: PeerId) -> bool:
        return self._live().contacts.pop(peer, None) is not None

    # --- messages --------------------------------------------------------

    def add_message(self, message: StoredMessage) -> StoredMessage:
        """Insert; returns it with ``seq`` set. Raises StoreError if the id exists.

        Updates its conversation exactly as :meth:`SQLiteStore.add_message` does.
        """
        state = self._live()
        if message.id in state.seq_of:
            raise StoreError(f"message {message.id.hex()} is already stored")
        first_request = not any(
            m.request and m.peer == message.peer for m in state.messages.values()
        )
        state.last_seq += 1
        stored = replace(message, seq=state.last_seq)
        state.messages[stored.seq] = stored
        state.seq_of[stored.id] = stored.seq
        state.conversation_seqs.setdefault(stored.conversation_id, []).append(stored.seq)
        state.history[stored.id] = [StatusChange(stored.id, stored.status, stored.stored_at_ms)]
        conversation = state.conversations.get(stored.conversation_id)
        if conversation is None:
            state.conversations[stored.conversation_id] = _Conversation(
                stored.peer, stored.stored_at_ms, stored.seq, int(is_unread(stored)), stored.request
            )
        else:
            conversation.last_message_at_ms = max(
                conversation.last_message_at_ms, stored.stored_at_ms
            )
            conversation.last_seq = stored.seq
            conversation.unread += int(is_unread(stored))
            conversation.request = conversation.request and stored.request
        for kind in received_events(stored, first_request):
            self.add_event(
                kind, stored.stored_at_ms, stored.peer, stored.id, request=stored.request
            )
        if stored.request:
            self._trim_requests(state, stored.peer)
        return stored

    def _trim_requests(self, state: _State, peer: PeerId) -> None:
        """Drop pending requests over the caps, ``peer``'s first (as SQLite's trim_requests)."""
        caps = self._request_caps
        own = [(s, len(m.body)) for s, m in state.messages.items() if m.request and m.peer == peer]
        self._drop(state, requests_over_caps(own, caps.messages_per_peer, caps.bytes_per_peer))
        everyone = [(s, len(m.body)) for s, m in state.messages.items() if m.request]
        self._drop(state, requests_over_caps(everyone, caps.messages, caps.bytes))

    def _drop(self, state: _State, seqs: list[int]) -> None:
        for seq in seqs:
            message = state.messages.pop(seq)
            del state.seq_of[message.id]
            del state.history[message.id]
            count, size = state.requests_dropped
            state.requests_dropped = (count + 1, size + len(message.body))
            cid = message.conversation_id
            state.conversation_seqs[cid].remove(seq)
            if not state.conversation_seqs[cid]:
                del state.conversation_seqs[cid]
                del state.conversations[cid]
                continue
            conversation = state.conversations[cid]
            conversation.last_seq = state.conversation_seqs[cid][-1]
            conversation.unread -= int(is_unread(message))

    def request_usage(self) -> RequestUsage:
        """Pending request messages and bytes, and how many were dropped over the caps."""
        state = self._live()
        pending = [len(m.body) for m in state.messages.values() if m.request]
        return RequestUsage(len(pending), sum(pending), *state.requests_dropped)

    def get_message(self, message_id: bytes) -> StoredMessage | None:
        state = self._live()
        seq = state.seq_of.get(message_id)
        return None if seq is None else state.messages[seq]

    def set_status(
        self, message_id: bytes, status: DeliveryStatus, at_ms: int, detail: str = ""
    ) -> bool:
        """Record a status change; refuses to move back (see ``STATUS_RANK``).

        Returns True if the status changed. Raises NotFound for an unknown id.
        """
        state = self._live()
        seq = state.seq_of.get(message_id)
        if seq is None:
            raise NotFound(f"no message {message_id.hex()} in the store")
        old = state.messages[seq]
        if not status_moves(old.status, status):
            return False
        state.messages[seq] = replace(old, status=status)
        state.history[message_id].append(StatusChange(message_id, status, at_ms, detail))
        if is_unread(old) and status not in UNREAD_STATUSES:
            conversation = state.conversations[old.conversation_id]
            conversation.unread = max(0, conversation.unread - 1)
        self.add_event(
            EventType.MESSAGE_STATUS,
            at_ms,
            old.peer,
            message_id,
            status,
            detail,
            request=old.request,
        )
        return True

    def status_history(self, message_id: bytes) -> list[StatusChange]:
        """Every status the message had, oldest first, starting with the one it was stored with."""
        return list(self._live().history.get(message_id, ()))

    def note_status(self, message_id: bytes, at_ms: int, detail: str) -> bool:
        """Record a note on an outgoing message's current status; see ``Store.note_status``."""
        state = self._live()
        seq = state.seq_of.get(message_id)
        if seq is None:
            raise NotFound(f"no message {message_id.hex()} in the store")
        message = state.messages[seq]
        history = state.history[message_id]
        if not notable(message.direction, message.status, history[-1:], detail):
            return False
        note = StatusChange(message_id, message.status, at_ms, detail)
        if len(history) >= MAX_STATUS_HISTORY:
            history[-1] = note
            return True
        history.append(note)
        self.add_event(
            EventType.MESSAGE_STATUS, at_ms, message.peer, message_id, message.status, detail
        )
        return True

    def messages(
        self, conversation_id: bytes, limit: int, before: int | None = None
    ) -> MessagePage:
        """Newest first, at most ``limit`` (capped at MAX_PAGE_SIZE), with ``seq < before``.

        Raises StoreError if ``limit`` is below 1.
        """
        size = page_limit(limit)
        state = self._live()
        seqs = state.conversation_seqs.get(conversation_id, [])
        end = len(seqs) if before is None else bisect.bisect_left(seqs, before)
        start = max(0, end - size)
        page = tuple(state.messages[seq] for seq in reversed(seqs[start:end]))
        return MessagePage(page, page[-1].seq if start > 0 else None)

    def list_conversations(self) -> list[Conversation]:
        """Most recent first (by ``last_message_at_ms``, then by newest message)."""
        items = sorted(
            self._live().conversations.items(),
            key=lambda item: (item[1].last_message_at_ms, item[1].last_seq),
            reverse=True,
        )
        return [conversation.public(cid) for cid, conversation in items]

    def mark_conversation_read(self, conversation_id: bytes, at_ms: int) -> list[bytes]:
        """Mark incoming messages read; returns the ids that changed, oldest first."""
        state = self._live()
        changed: list[bytes] = []
        for seq in state.conversation_seqs.get(conversation_id, []):
            message = state.messages[seq]
            if is_unread(message):
                state.messages[seq] = replace(message, status=DeliveryStatus.READ)
                state.history[message.id].append(
                    StatusChange(message.id, DeliveryStatus.READ, at_ms)
                )
                self.add_event(
                    EventType.MESSAGE_STATUS,
                    at_ms,
                    message.peer,
                    message.id,
                    DeliveryStatus.READ,
                    request=message.request,
                )
                changed.append(message.id)
        conversation = state.conversations.get(conversation_id)
        if conversation is not None:
            conversation.unread = 0
        return changed

    def accept_request(self, peer: PeerId) -> int:
        """Turn a peer's message requests into normal messages; returns how many."""
        state = self._live()
        accepted = 0
        for seq, message in state.messages.items():
            if message.peer == peer and message.request:
                state.messages[seq] = replace(message, request=False)
                state.conversations[message.conversation_id].request = False
                accepted += 1
        for conversation in state.conversations.values():
            if conversation.peer == peer:
                conversation.request = False
        return accepted

    # --- replay protection -----------------------------------------------

    def has_seen(self, message_id: bytes) -> bool:
        return message_id in self._live().seen

    def mark_seen(self, message_id: bytes, at_ms: int) -> None:
        """Remember an accepted id; seeing it again extends how long it is remembered."""
        seen = self._live().seen
        seen[message_id] = max(at_ms, seen.get(message_id, at_ms))

    def purge_seen(self, before_ms: int) -> int:
        """Forget ids last seen before ``before_ms``; returns how many."""
        seen = self._live().seen
        old = [message_id for message_id, at in seen.items() if at < before_ms]
        for message_id in old:
            del seen[message_id]
        return len(old)

    # --- sessions and own prekeys ----------------------------------------

    def get_session(self, peer: PeerId) -> bytes | None:
        return self._live().sessions.get(peer)

    def put_session(self, peer: PeerId, state: bytes, at_ms: int) -> None:
        self._live().sessions[peer] = bytes(state)

    def delete_session(self, peer: PeerId) -> None:
        self._live().sessions.pop(peer, None)

    def get_prekeys(self) -> bytes | None:
        return self._live().prekeys

    def put_prekeys(self, state: bytes) -> None:
        self._live().prekeys = bytes(state)

    # --- outbox ----------------------------------------------------------

    def add_outbox(self, item: OutboxItem) -> None:
        """Queue an envelope; raises StoreError if its envelope id is already queued."""
        outbox = self._live().outbox
        if item.envelope_id in outbox:
            raise StoreError(f"envelope {item.envelope_id.hex()} is already in the outbox")
        outbox[item.envelope_id] = item

    def get_outbox(self, envelope_id: bytes) -> OutboxItem | None:
        return self._live().outbox.get(envelope_id)

    def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        """Items with ``next_attempt_at_ms <= now_ms``, earliest first, at most ``limit``.

        ``limit`` is capped at MAX_PAGE_SIZE; raises StoreError if it is below 1.
        """
        size = page_limit(limit)
        due = [i for i in self._live().outbox.values() if i.next_attempt_at_ms <= now_ms]
        due.sort(key=lambda i: (i.next_attempt_at_ms, i.created_at_ms, i.envelope_id))
        return due[:size]

    def outbox_for(
        self, recipient: PeerId, due_at_ms: int | None = None, limit: int | None = None
    ) -> list[OutboxItem]:
        """Queued envelopes for ``recipient``, oldest first: all of them, or those
        due at ``due_at_ms`` and not expired; at most ``limit``."""
        items = [
            i
            for i in self._live().outbox.values()
            if i.recipient == recipient
            and (due_at_ms is None or i.next_attempt_at_ms <= due_at_ms < i.expires_at_ms)
        ]
        items.sort(key=lambda i: (i.created_at_ms, i.envelope_id))
        return items if limit is None else items[:limit]

    def outbox_page(self, after: bytes, limit: int) -> list[OutboxItem]:
        size = page_limit(limit)
        items = sorted(
            (i for i in self._live().outbox.values() if i.envelope_id > after),
            key=lambda i: i.envelope_id,
        )
        return items[:size]

    def reschedule_outbox(
        self, envelope_id: bytes, next_attempt_at_ms: int, attempts: int, last_error: str = ""
    ) -> None:
        """Set when to try again; raises NotFound if the envelope is not queued."""
        outbox = self._live().outbox
        item = outbox.get(envelope_id)
        if item is None:
            raise NotFound(f"no envelope {envelope_id.hex()} in the outbox")
        outbox[envelope_id] = replace(
            item, next_attempt_at_ms=next_attempt_at_ms, attempts=attempts, last_error=last_error
        )

    def remove_outbox(self, envelope_id: bytes) -> bool:
        state = self._live()
        state.deposits.pop(envelope_id, None)
        return state.outbox.pop(envelope_id, None) is not None

    def outbox_count(self) -> int:
        return len(self._live().outbox)

    # --- deposits of our own envelopes -------------------------------------

    def add_deposit(self, envelope_id: bytes, mailbox: PeerId, until_ms: int) -> None:
        held = self._live().deposits.setdefault(envelope_id, {})
        held[mailbox] = max(until_ms, held.get(mailbox, until_ms))

    def deposits(self, envelope_id: bytes) -> list[tuple[PeerId, int]]:
        held = self._live().deposits.get(envelope_id, {})
        return sorted(held.items(), key=lambda item: item[0].raw)

    # --- mailbox: envelopes held for others -----------------------------------

    def mailbox_add(self, item: StoredEnvelope) -> tuple[StoredEnvelope, bool]:
        state = self._live()
        key = (item.recipient, envelope_digest(item.envelope))
        held = state.mailbox_digests.get(key)
        if held is not None:
            return state.mailbox[held], False
        state.mailbox_seq += 1
        stored = replace(item, seq=state.mailbox_seq)
        state.mailbox[stored.seq] = stored
        state.mailbox_digests[key] = stored.seq
        return stored, True

    def mailbox_fetch(
        self, recipient: PeerId, after_seq: int, now_ms: int, limit: int
    ) -> list[StoredEnvelope]:
        size = page_limit(limit)
        found = [
            e
            for e in self._live().mailbox.values()
            if e.recipient == recipient and e.seq > after_seq and e.expires_at_ms > now_ms
        ]
        return found[:size]

    def _mailbox_drop(self, state: _State, seqs: list[int]) -> int:
        for seq in seqs:
            item = state.mailbox.pop(seq)
            del state.mailbox_digests[(item.recipient, envelope_digest(item.envelope))]
        return len(seqs)

    def mailbox_delete(self, recipient: PeerId, seqs: Sequence[int]) -> int:
        state = self._live()
        held = state.mailbox
        mine = {seq for seq in seqs if seq in held and held[seq].recipient == recipient}
        return self._mailbox_drop(state, sorted(mine))

    def mailbox_usage(
        self, recipient: PeerId | None = None, depositor: bytes | None = None
    ) -> tuple[int, int]:
        held = [
            e.size
            for e in self._live().mailbox.values()
            if (recipient is None or e.recipient == recipient)
            and (recipient is None or depositor is None or e.depositor == depositor)
        ]
        return len(held), sum(held)

    def mailbox_purge(self, now_ms: int) -> int:
        state = self._live()
        old = [seq for seq, e in state.mailbox.items() if e.expires_at_ms <= now_ms]
        return self._mailbox_drop(state, old)

    # --- the event log -------------------------------------------------------

    def set_event_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` after every write that added an event (None: stop)."""
        self._listener = listener

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
    ) -> int:
        """Append an event; returns its id. Each part of the log keeps its newest."""
        log = self._live().events
        log.last_id += 1
        event = Event(log.last_id, type, at_ms, peer, message_id, status, detail)
        log.add(event, self._event_caps[1] if request else self._event_caps[0], request=request)
        if self._listener is not None:
            self._listener()
        return log.last_id

    def events(
        self,
        after: int,
        limit: int,
        types: Collection[EventType] | None = None,
        peers: Collection[PeerId] | None = None,
    ) -> list[Event]:
        """Events with ``id > after``, oldest first, at most ``limit`` (capped at
        MAX_PAGE_SIZE); only of ``types`` and about ``peers`` when given."""
        return self._live().events.after(after, page_limit(limit), types, peers)

    def event_bounds(self) -> tuple[int, int]:
        """``(oldest kept id, newest id ever)``; ``(0, 0)`` before the first event."""
        log = self._live().events
        return log.oldest(), log.last_id

    def events_pruned(self) -> tuple[int, int]:
        """Highest event id pruned from the main log, and from the request events."""
        pruned = self._live().events.pruned
        return pruned[0], pruned[1]

    # --- idempotency keys --------------------------------------------------

    def remember_send(self, scope: str, key: str, message_id: bytes, at_ms: int) -> None:
        """Record which message ``key`` made; raises StoreError if the key is taken."""
        sends = self._live().sends
        cutoff = idempotency_cutoff_ms(at_ms)
        for old in [k for k, (_, made) in sends.items() if made < cutoff]:
            del sends[old]
        if (scope, key) in sends:
            raise StoreError(f"idempotency key {key!r} is already used")
        sends[scope, key] = (message_id, at_ms)
        while len(sends) > self._max_keys:
            del sends[next(iter(sends))]

    def sent_with(self, scope: str, key: str) -> bytes | None:
        """The id of the message ``key`` made, if it is still remembered."""
        found = self._live().sends.get((scope, key))
        return None if found is None else found[0]

    # --- named API tokens ----------------------------------------------------

    def put_token(self, token: ApiToken) -> None:
        """Add a token; raises StoreError for a taken name or hash, or past MAX_API_TOKENS."""
        tokens = self._live().tokens
        if len(tokens) >= MAX_API_TOKENS:
            raise StoreError(f"there are already {MAX_API_TOKENS} API tokens; revoke one")
        if token.name in tokens or any(t.secret_hash == token.secret_hash for t in tokens.values()):
            raise StoreError(f"an API token named {token.name!r} exists")
        tokens[token.name] = token

    def list_tokens(self) -> list[ApiToken]:
        """Every named token, by name."""
        tokens = self._live().tokens
        return [tokens[name] for name in sorted(tokens)]

    def delete_token(self, name: str) -> bool:
        return self._live().tokens.pop(name, None) is not None

    # --- counts ----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """``contacts``, ``messages``, ``unread`` (not counting requests), ``requests``
        (request messages), ``outbox``, ``requests_dropped``."""
        state = self._live()
        messages = state.messages.values()
        return {
            "contacts": len(state.contacts),
            "messages": len(messages),
            "unread": sum(1 for m in messages if is_unread(m) and not m.request),
            "requests": sum(1 for m in messages if m.request),
            "outbox": len(state.outbox),
            "requests_dropped": state.requests_dropped[0],
        }
