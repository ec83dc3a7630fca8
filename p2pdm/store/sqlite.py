"""The message store in one SQLite file in the node home: the queries.

How this works: :class:`~p2pdm.store.database.Database` opens the file (WAL,
mode 0600, migrations, durability level) and makes every call below atomic,
with its errors as :class:`~p2pdm.errors.StoreError`; this module maps the
contract of :class:`~p2pdm.store.base.Store` onto the tables of ``schema.py``.
The ``seq`` column (``INTEGER PRIMARY KEY AUTOINCREMENT``) is the paging
cursor, and ``(conversation_id, seq)`` is indexed so a page is one index
range scan.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import (
    Contact,
    Conversation,
    DeliveryStatus,
    Direction,
    EventType,
    MessagePage,
    OutboxItem,
    StatusChange,
    StoredMessage,
)
from p2pdm.errors import NotFound, StoreError
from p2pdm.limits import (
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
    is_unread,
    iter_chunks,
    notable,
    page_limit,
    received_events,
    status_moves,
)
from p2pdm.store.database import Database
from p2pdm.store.schema import UNREAD_CONDITION
from p2pdm.store.sqlite_api import APITables, counter, insert_event
from p2pdm.store.sqlite_requests import request_usage, trim_requests

__all__ = ["SQLiteStore"]

#: The largest seq SQLite can hold (a signed 64-bit integer): the cursor of a
#: first page, and the ceiling for a ``before`` given from outside.
_NO_CURSOR: Final = (1 << 63) - 1

_CONTACT_COLUMNS: Final = (
    "peer_id, name, added_at_ms, bundle, addrs, last_seen_ms, verified, blocked, name_from_invite"
)
_MESSAGE_COLUMNS: Final = (
    "seq, id, conversation_id, peer, direction, kind, body, sent_at_ms, stored_at_ms, "
    "status, request"
)
_OUTBOX_COLUMNS: Final = (
    "envelope_id, message_id, recipient, envelope, created_at_ms, expires_at_ms, "
    "next_attempt_at_ms, attempts, last_error"
)


_MAILBOX_COLUMNS: Final = (
    "seq, recipient, envelope_id, envelope, deposited_at_ms, expires_at_ms, depositor"
)
#: Seqs per ``IN (…)`` list, well under SQLite's parameter cap.
_IN_CHUNK: Final = 500


def _stored_envelope(row: Any) -> StoredEnvelope:
    seq, recipient, eid, envelope, deposited, expires, depositor = row
    return StoredEnvelope(PeerId(recipient), eid, envelope, deposited, expires, seq, depositor)


def _contact(row: Any) -> Contact:
    peer, name, added, bundle, addrs, last_seen, verified, blocked, from_invite = row
    return Contact(
        peer_id=PeerId(peer),
        name=name,
        added_at_ms=added,
        bundle=bundle,
        addrs=tuple(json.loads(addrs)),
        last_seen_ms=last_seen,
        verified=bool(verified),
        blocked=bool(blocked),
        name_from_invite=bool(from_invite),
    )


def _message(row: Any) -> StoredMessage:
    seq, mid, conv, peer, direction, kind, body, sent, stored, status, request = row
    return StoredMessage(
        id=mid,
        conversation_id=conv,
        peer=PeerId(peer),
        direction=Direction(direction),
        kind=kind,
        body=body,
        sent_at_ms=sent,
        stored_at_ms=stored,
        status=DeliveryStatus(status),
        request=bool(request),
        seq=seq,
    )


def _outbox_item(row: Any) -> OutboxItem:
    eid, mid, recipient, envelope, created, expires, next_at, attempts, error = row
    return OutboxItem(
        envelope_id=eid,
        message_id=mid,
        recipient=PeerId(recipient),
        envelope=envelope,
        created_at_ms=created,
        expires_at_ms=expires,
        next_attempt_at_ms=next_at,
        attempts=attempts,
        last_error=error,
    )


class SQLiteStore(APITables):
    """The :class:`~p2pdm.store.base.Store` of a node: one SQLite file.

    Raises StoreError if the file cannot be opened, is not a p2pdm store, or
    was written by a newer p2pdm. ``":memory:"`` gives a throwaway store.
    ``synchronous`` is ``"FULL"`` (survives power loss; the node's choice) or
    ``"NORMAL"`` (survives a process crash only; for benchmarks and tests).
    ``max_events``, ``max_request_events``, ``max_idempotency_keys`` and
    ``request_caps`` bound the event log (its main part and the request
    events), the idempotency keys and the pending message requests (smaller
    values let tests reach the bounds quickly).
    ``key`` (32 bytes) makes it an encrypted store (SQLCipher).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        key: bytes | None = None,
        max_events: int = MAX_STORED_EVENTS,
        max_request_events: int = MAX_STORED_REQUEST_EVENTS,
        max_idempotency_keys: int = MAX_IDEMPOTENCY_KEYS,
        request_caps: RequestCaps = RequestCaps(),  # noqa: B008 (frozen)
    ) -> None:
        self._db = Database(path, synchronous=synchronous, key=key)
        self._reading = self._db.reading
        self._writing = self._db.writing
        self._event_caps = (max_events, max_request_events)
        self._request_caps = request_caps
        self._max_keys = max_idempotency_keys
        self._listener: Callable[[], None] | None = None

    @classmethod
    def open(cls, path: str | Path, *, synchronous: str = "FULL") -> SQLiteStore:
        """Open (creating and migrating as needed) the store at ``path``."""
        return cls(path, synchronous=synchronous)

    @property
    def path(self) -> str:
        return self._db.path

    # --- lifecycle -------------------------------------------------------

    def close(self) -> None:
        """Close the file; an open transaction is rolled back. Closing twice is harmless."""
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def transaction(self) -> AbstractContextManager[None]:
        """All writes inside commit together, or none if the block raises.

        Raises StoreError when nested or when the commit fails.
        """
        return self._db.transaction()

    def group(self) -> AbstractContextManager[None]:
        """Commit the transactions inside as one (one fsync for a burst).

        Raises StoreError when nested, inside a transaction, or when the commit fails.
        """
        return self._db.group()

    # --- settings --------------------------------------------------------

    def get_setting(self, key: str, default: object = None) -> object:
        with self._reading(f"reading setting {key!r}") as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else decode_setting(row[0])

    def set_setting(self, key: str, value: object) -> None:
        """Store a JSON-able value; raises StoreError for anything else."""
        text = encode_setting(key, value)
        with self._writing(f"saving setting {key!r}") as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def settings(self) -> dict[str, object]:
        with self._reading("reading settings") as db:
            rows = db.execute("SELECT key, value FROM settings ORDER BY key").fetchall()
        return {key: decode_setting(value) for key, value in rows}

    # --- contacts --------------------------------------------------------

    def put_contact(self, contact: Contact) -> None:
        """Insert or replace; a new contact makes a ``contact.added`` event."""
        with self._writing(f"saving contact {contact.peer_id.short()}") as db:
            new = not db.execute(
                "SELECT 1 FROM contacts WHERE peer_id = ?", (contact.peer_id.raw,)
            ).fetchone()
            db.execute(
                f"INSERT INTO contacts ({_CONTACT_COLUMNS}, name_key) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (peer_id) DO UPDATE SET name = excluded.name, "
                "name_key = excluded.name_key, added_at_ms = excluded.added_at_ms, "
                "bundle = excluded.bundle, addrs = excluded.addrs, "
                "last_seen_ms = excluded.last_seen_ms, verified = excluded.verified, "
                "blocked = excluded.blocked, name_from_invite = excluded.name_from_invite",
                (
                    contact.peer_id.raw,
                    contact.name,
                    contact.added_at_ms,
                    contact.bundle,
                    json.dumps(list(contact.addrs)),
                    contact.last_seen_ms,
                    int(contact.verified),
                    int(contact.blocked),
                    int(contact.name_from_invite),
                    contact_name_key(contact.name),
                ),
            )
            if new:
                insert_event(
                    db,
                    self._event_caps,
                    EventType.CONTACT_ADDED,
                    contact.added_at_ms,
                    contact.peer_id,
                )
        if new:
            self._notify()

    def get_contact(self, peer: PeerId) -> Contact | None:
        with self._reading(f"reading contact {peer.short()}") as db:
            row = db.execute(
                f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE peer_id = ?", (peer.raw,)
            ).fetchone()
        return None if row is None else _contact(row)

    def find_contact_by_name(self, name: str) -> Contact | None:
        """The contact of that name, ignoring case; the earliest added if several share it."""
        with self._reading("looking up a contact by name") as db:
            row = db.execute(
                f"SELECT {_CONTACT_COLUMNS} FROM contacts WHERE name_key = ? "
                "ORDER BY added_at_ms, peer_id LIMIT 1",
                (contact_name_key(name),),
            ).fetchone()
        return None if row is None else _contact(row)

    def list_contacts(self) -> list[Contact]:
        """Every contact, by name."""
        with self._reading("listing contacts") as db:
            rows = db.execute(
                f"SELECT {_CONTACT_COLUMNS} FROM contacts ORDER BY name_key, peer_id"
            ).fetchall()
        return [_contact(row) for row in rows]

    def delete_contact(self, peer: PeerId) -> bool:
        with self._writing(f"deleting contact {peer.short()}") as db:
            cursor = db.execute("DELETE FROM contacts WHERE peer_id = ?", (peer.raw,))
        return cursor.rowcount > 0

    # --- messages --------------------------------------------------------

    def add_message(self, message: StoredMessage) -> StoredMessage:
        """Insert; returns it with ``seq`` set. Raises StoreError if the id exists.

        Creates or updates its conversation: ``last_message_at_ms`` is the
        latest ``stored_at_ms`` (this node's clock, which a peer cannot push
        into the future), unread counts incoming unread messages, and the
        conversation stays a request while every message in it is one.
        """
        with self._writing(f"storing message {message.id.hex()}") as db:
            if db.execute("SELECT 1 FROM messages WHERE id = ?", (message.id,)).fetchone():
                raise StoreError(f"message {message.id.hex()} is already stored")
            first_request = not db.execute(
                "SELECT 1 FROM messages WHERE peer = ? AND request = 1", (message.peer.raw,)
            ).fetchone()
            events = received_events(message, first_request)
            db.execute(
                "INSERT INTO conversations "
                "(id, peer, last_message_at_ms, last_seq, unread, request) "
                "VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "last_message_at_ms = max(last_message_at_ms, excluded.last_message_at_ms), "
                "unread = unread + excluded.unread, request = request AND excluded.request",
                (
                    message.conversation_id,
                    message.peer.raw,
                    message.stored_at_ms,
                    int(is_unread(message)),
                    int(message.request),
                ),
            )
            cursor = db.execute(
                "INSERT INTO messages (id, conversation_id, peer, direction, kind, body, "
                "sent_at_ms, stored_at_ms, status, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    message.id,
                    message.conversation_id,
                    message.peer.raw,
                    str(message.direction),
                    message.kind,
                    message.body,
                    message.sent_at_ms,
                    message.stored_at_ms,
                    str(message.status),
                    int(message.request),
                ),
            )
            seq = cursor.lastrowid
            if seq is None:
                raise StoreError(f"storing message {message.id.hex()}: no seq assigned")
            db.execute(
                "UPDATE conversations SET last_seq = ? WHERE id = ?", (seq, message.conversation_id)
            )
            db.execute(
                "INSERT INTO status_history (message_id, status, at_ms) VALUES (?, ?, ?)",
                (message.id, str(message.status), message.stored_at_ms),
            )
            for kind in events:
                insert_event(
                    db,
                    self._event_caps,
                    kind,
                    message.stored_at_ms,
                    message.peer,
                    message.id,
                    request=message.request,
                )
            if message.request:
                trim_requests(db, message.peer, self._request_caps)
        if events:
            self._notify()
        return replace(message, seq=seq)

    def get_message(self, message_id: bytes) -> StoredMessage | None:
        with self._reading(f"reading message {message_id.hex()}") as db:
            row = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
        return None if row is None else _message(row)

    def set_status(
        self, message_id: bytes, status: DeliveryStatus, at_ms: int, detail: str = ""
    ) -> bool:
        """Record a status change; refuses to move back (see ``STATUS_RANK``).

        Returns True if the status changed. Raises NotFound for an unknown id.
        """
        with self._writing(f"setting status of message {message_id.hex()}") as db:
            row = db.execute(
                "SELECT status, direction, conversation_id, peer, request FROM messages "
                "WHERE id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no message {message_id.hex()} in the store")
            old = DeliveryStatus(row[0])
            if not status_moves(old, status):
                return False
            db.execute("UPDATE messages SET status = ? WHERE id = ?", (str(status), message_id))
            db.execute(
                "INSERT INTO status_history (message_id, status, at_ms, detail) "
                "VALUES (?, ?, ?, ?)",
                (message_id, str(status), at_ms, detail),
            )
            if row[1] == Direction.IN and old in UNREAD_STATUSES and status not in UNREAD_STATUSES:
                db.execute(
                    "UPDATE conversations SET unread = unread - 1 WHERE id = ? AND unread > 0",
                    (row[2],),
                )
            insert_event(
                db,
                self._event_caps,
                EventType.MESSAGE_STATUS,
                at_ms,
                PeerId(row[3]),
                message_id,
                status,
                detail,
                request=bool(row[4]),
            )
        self._notify()
        return True

    def status_history(self, message_id: bytes) -> list[StatusChange]:
        """Every status the message had, oldest first, starting with the one it was stored with."""
        with self._reading(f"reading status history of {message_id.hex()}") as db:
            rows = db.execute(
                "SELECT status, at_ms, detail FROM status_history WHERE message_id = ? ORDER BY n",
                (message_id,),
            ).fetchall()
        return [StatusChange(message_id, DeliveryStatus(s), at, detail) for s, at, detail in rows]

    def note_status(self, message_id: bytes, at_ms: int, detail: str) -> bool:
        """Record a note on an outgoing message's current status; see ``Store.note_status``."""
        with self._writing(f"noting the status of message {message_id.hex()}") as db:
            row = db.execute(
                "SELECT status, direction, peer FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no message {message_id.hex()} in the store")
            status = DeliveryStatus(row[0])
            last = db.execute(
                "SELECT n, status, at_ms, detail FROM status_history WHERE message_id = ? "
                "ORDER BY n DESC LIMIT 1",
                (message_id,),
            ).fetchall()
            latest = [StatusChange(message_id, DeliveryStatus(s), a, d) for _, s, a, d in last]
            if not notable(Direction(row[1]), status, latest, detail):
                return False
            (entries,) = db.execute(
                "SELECT count(*) FROM status_history WHERE message_id = ?", (message_id,)
            ).fetchone()
            if entries >= MAX_STATUS_HISTORY:
                db.execute(
                    "UPDATE status_history SET status = ?, at_ms = ?, detail = ? WHERE n = ?",
                    (str(status), at_ms, detail, last[0][0]),
                )
                return True
            db.execute(
                "INSERT INTO status_history (message_id, status, at_ms, detail) "
                "VALUES (?, ?, ?, ?)",
                (message_id, str(status), at_ms, detail),
            )
            insert_event(
                db,
                self._event_caps,
                EventType.MESSAGE_STATUS,
                at_ms,
                PeerId(row[2]),
                message_id,
                status,
                detail,
            )
        self._notify()
        return True

    def messages(
        self, conversation_id: bytes, limit: int, before: int | None = None
    ) -> MessagePage:
        """Newest first, at most ``limit`` (capped at MAX_PAGE_SIZE), with ``seq < before``.

        Raises StoreError if ``limit`` is below 1.
        """
        size = page_limit(limit)
        cursor = _NO_CURSOR if before is None else max(0, min(before, _NO_CURSOR))
        with self._reading("reading messages") as db:
            rows = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages "
                "WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (conversation_id, cursor, size + 1),
            ).fetchall()
        page = tuple(_message(row) for row in rows[:size])
        return MessagePage(page, page[-1].seq if len(rows) > size else None)

    def list_conversations(self) -> list[Conversation]:
        """Most recent first (by ``last_message_at_ms``, then by newest message)."""
        with self._reading("listing conversations") as db:
            rows = db.execute(
                "SELECT id, peer, last_message_at_ms, unread, request FROM conversations "
                "ORDER BY last_message_at_ms DESC, last_seq DESC"
            ).fetchall()
        return [
            Conversation(cid, PeerId(peer), last, unread, bool(request))
            for cid, peer, last, unread, request in rows
        ]

    def mark_conversation_read(self, conversation_id: bytes, at_ms: int) -> list[bytes]:
        """Mark incoming messages read; returns the ids that changed, oldest first."""
        with self._writing("marking a conversation read") as db:
            rows = db.execute(
                f"SELECT id, peer, request FROM messages WHERE conversation_id = ? "
                f"AND {UNREAD_CONDITION} ORDER BY seq",
                (conversation_id,),
            ).fetchall()
            db.execute(
                "INSERT INTO status_history (message_id, status, at_ms) "
                f"SELECT id, ?, ? FROM messages WHERE conversation_id = ? AND {UNREAD_CONDITION} "
                "ORDER BY seq",
                (str(DeliveryStatus.READ), at_ms, conversation_id),
            )
            db.execute(
                f"UPDATE messages SET status = ? WHERE conversation_id = ? AND {UNREAD_CONDITION}",
                (str(DeliveryStatus.READ), conversation_id),
            )
            db.execute("UPDATE conversations SET unread = 0 WHERE id = ?", (conversation_id,))
            for mid, peer, request in rows:
                insert_event(
                    db,
                    self._event_caps,
                    EventType.MESSAGE_STATUS,
                    at_ms,
                    PeerId(peer),
                    mid,
                    DeliveryStatus.READ,
                    request=bool(request),
                )
        if rows:
            self._notify()
        return [mid for mid, _, _ in rows]

    def accept_request(self, peer: PeerId) -> int:
        """Turn a peer's message requests into normal messages; returns how many."""
        with self._writing(f"accepting requests of {peer.short()}") as db:
            db.execute(
                "UPDATE conversations SET request = 0 WHERE request = 1 AND (peer = ? OR id IN "
                "(SELECT conversation_id FROM messages WHERE peer = ? AND request = 1))",
                (peer.raw, peer.raw),
            )
            cursor = db.execute(
                "UPDATE messages SET request = 0 WHERE peer = ? AND request = 1", (peer.raw,)
            )
        return cursor.rowcount

    def request_usage(self) -> RequestUsage:
        """Pending request messages and bytes, and how many were dropped over the caps."""
        with self._reading("measuring message requests") as db:
            return request_usage(db)

    # --- replay protection -----------------------------------------------

    def has_seen(self, message_id: bytes) -> bool:
        with self._reading("checking a seen message id") as db:
            row = db.execute("SELECT 1 FROM seen_ids WHERE id = ?", (message_id,)).fetchone()
        return row is not None

    def mark_seen(self, message_id: bytes, at_ms: int) -> None:
        """Remember an accepted id; seeing it again extends how long it is remembered."""
        with self._writing("recording a seen message id") as db:
            db.execute(
                "INSERT INTO seen_ids (id, seen_at_ms) VALUES (?, ?) ON CONFLICT (id) "
                "DO UPDATE SET seen_at_ms = max(seen_at_ms, excluded.seen_at_ms)",
                (message_id, at_ms),
            )

    def purge_seen(self, before_ms: int) -> int:
        """Forget ids last seen before ``before_ms``; returns how many."""
        with self._writing("purging seen message ids") as db:
            cursor = db.execute("DELETE FROM seen_ids WHERE seen_at_ms < ?", (before_ms,))
        return cursor.rowcount

    # --- sessions and own prekeys ----------------------------------------

    def get_session(self, peer: PeerId) -> bytes | None:
        with self._reading(f"reading session with {peer.short()}") as db:
            row = db.execute("SELECT state FROM sessions WHERE peer = ?", (peer.raw,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_session(self, peer: PeerId, state: bytes, at_ms: int) -> None:
        with self._writing(f"saving session with {peer.short()}") as db:
            db.execute(
                "INSERT INTO sessions (peer, state, updated_at_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (peer) DO UPDATE SET state = excluded.state, "
                "updated_at_ms = excluded.updated_at_ms",
                (peer.raw, state, at_ms),
            )

    def delete_session(self, peer: PeerId) -> None:
        with self._writing(f"deleting session with {peer.short()}") as db:
            db.execute("DELETE FROM sessions WHERE peer = ?", (peer.raw,))

    def get_prekeys(self) -> bytes | None:
        with self._reading("reading own prekeys") as db:
            row = db.execute("SELECT state FROM prekeys WHERE only_row = 1").fetchone()
        return None if row is None else bytes(row[0])

    def put_prekeys(self, state: bytes) -> None:
        with self._writing("saving own prekeys") as db:
            db.execute(
                "INSERT INTO prekeys (only_row, state) VALUES (1, ?) "
                "ON CONFLICT (only_row) DO UPDATE SET state = excluded.state",
                (state,),
            )

    # --- outbox ----------------------------------------------------------

    def add_outbox(self, item: OutboxItem) -> None:
        """Queue an envelope; raises StoreError if its envelope id is already queued."""
        with self._writing(f"queueing envelope {item.envelope_id.hex()}") as db:
            found = db.execute(
                "SELECT 1 FROM outbox WHERE envelope_id = ?", (item.envelope_id,)
            ).fetchone()
            if found:
                raise StoreError(f"envelope {item.envelope_id.hex()} is already in the outbox")
            db.execute(
                f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.envelope_id,
                    item.message_id,
                    item.recipient.raw,
                    item.envelope,
                    item.created_at_ms,
                    item.expires_at_ms,
                    item.next_attempt_at_ms,
                    item.attempts,
                    item.last_error,
                ),
            )

    def get_outbox(self, envelope_id: bytes) -> OutboxItem | None:
        with self._reading(f"reading envelope {envelope_id.hex()}") as db:
            row = db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE envelope_id = ?", (envelope_id,)
            ).fetchone()
        return None if row is None else _outbox_item(row)

    def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        """Items with ``next_attempt_at_ms <= now_ms``, earliest first, at most ``limit``.

        ``limit`` is capped at MAX_PAGE_SIZE; raises StoreError if it is below 1.
        """
        size = page_limit(limit)
        with self._reading("reading due envelopes") as db:
            rows = db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE next_attempt_at_ms <= ? "
                "ORDER BY next_attempt_at_ms, created_at_ms, envelope_id LIMIT ?",
                (now_ms, size),
            ).fetchall()
        return [_outbox_item(row) for row in rows]

    def outbox_for(
        self, recipient: PeerId, due_at_ms: int | None = None, limit: int | None = None
    ) -> list[OutboxItem]:
        """Queued envelopes for ``recipient``, oldest first: all of them, or those
        due at ``due_at_ms`` and not expired; at most ``limit``."""
        where = "recipient = ?"
        params: list[object] = [recipient.raw]
        if due_at_ms is not None:
            where += " AND next_attempt_at_ms <= ? AND expires_at_ms > ?"
            params += [due_at_ms, due_at_ms]
        with self._reading(f"reading envelopes for {recipient.short()}") as db:
            rows = db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {where} "
                "ORDER BY created_at_ms, envelope_id LIMIT ?",
                (*params, -1 if limit is None else limit),
            ).fetchall()
        return [_outbox_item(row) for row in rows]

    def outbox_page(self, after: bytes, limit: int) -> list[OutboxItem]:
        size = page_limit(limit)
        with self._reading("reading the outbox") as db:
            rows = db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE envelope_id > ? "
                "ORDER BY envelope_id LIMIT ?",
                (after, size),
            ).fetchall()
        return [_outbox_item(row) for row in rows]

    def reschedule_outbox(
        self, envelope_id: bytes, next_attempt_at_ms: int, attempts: int, last_error: str = ""
    ) -> None:
        """Set when to try again; raises NotFound if the envelope is not queued."""
        with self._writing(f"rescheduling envelope {envelope_id.hex()}") as db:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at_ms = ?, attempts = ?, last_error = ? "
                "WHERE envelope_id = ?",
                (next_attempt_at_ms, attempts, last_error, envelope_id),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"no envelope {envelope_id.hex()} in the outbox")

    def remove_outbox(self, envelope_id: bytes) -> bool:
        with self._writing(f"removing envelope {envelope_id.hex()}") as db:
            cursor = db.execute("DELETE FROM outbox WHERE envelope_id = ?", (envelope_id,))
            db.execute("DELETE FROM deposits WHERE envelope_id = ?", (envelope_id,))
        return cursor.rowcount > 0

    def outbox_count(self) -> int:
        with self._reading("counting the outbox") as db:
            (count,) = db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)

    # --- deposits of our own envelopes -------------------------------------

    def add_deposit(self, envelope_id: bytes, mailbox: PeerId, until_ms: int) -> None:
        with self._writing("recording a mailbox deposit") as db:
            db.execute(
                "INSERT INTO deposits (envelope_id, mailbox, until_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (envelope_id, mailbox) "
                "DO UPDATE SET until_ms = max(until_ms, excluded.until_ms)",
                (envelope_id, mailbox.raw, until_ms),
            )

    def deposits(self, envelope_id: bytes) -> list[tuple[PeerId, int]]:
        with self._reading("reading mailbox deposits") as db:
            rows = db.execute(
                "SELECT mailbox, until_ms FROM deposits WHERE envelope_id = ? ORDER BY mailbox",
                (envelope_id,),
            ).fetchall()
        return [(PeerId(mailbox), until) for mailbox, until in rows]

    # --- mailbox: envelopes held for others -----------------------------------

    def mailbox_add(self, item: StoredEnvelope) -> tuple[StoredEnvelope, bool]:
        digest = envelope_digest(item.envelope)
        with self._writing("holding an envelope in the mailbox") as db:
            row = db.execute(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailbox WHERE recipient = ? AND digest = ?",
                (item.recipient.raw, digest),
            ).fetchone()
            if row is not None:
                return _stored_envelope(row), False
            cursor = db.execute(
                "INSERT INTO mailbox (recipient, envelope_id, digest, envelope, size, "
                "deposited_at_ms, expires_at_ms, depositor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.recipient.raw,
                    item.envelope_id,
                    digest,
                    item.envelope,
                    item.size,
                    item.deposited_at_ms,
                    item.expires_at_ms,
                    item.depositor,
                ),
            )
        return replace(item, seq=int(cursor.lastrowid or 0)), True

    def mailbox_fetch(
        self, recipient: PeerId, after_seq: int, now_ms: int, limit: int
    ) -> list[StoredEnvelope]:
        size = page_limit(limit)
        with self._reading("fetching mailbox envelopes") as db:
            rows = db.execute(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailbox WHERE recipient = ? AND seq > ? "
                "AND expires_at_ms > ? ORDER BY seq LIMIT ?",
                (recipient.raw, min(after_seq, _NO_CURSOR), now_ms, size),
            ).fetchall()
        return [_stored_envelope(row) for row in rows]

    def mailbox_delete(self, recipient: PeerId, seqs: Sequence[int]) -> int:
        deleted = 0
        with self._writing("deleting mailbox envelopes") as db:
            for chunk in iter_chunks([min(s, _NO_CURSOR) for s in seqs], _IN_CHUNK):
                marks = ", ".join("?" * len(chunk))
                cursor = db.execute(
                    f"DELETE FROM mailbox WHERE recipient = ? AND seq IN ({marks})",
                    (recipient.raw, *chunk),
                )
                deleted += cursor.rowcount
        return deleted

    def mailbox_usage(
        self, recipient: PeerId | None = None, depositor: bytes | None = None
    ) -> tuple[int, int]:
        usage = "SELECT count(*), coalesce(sum(size), 0) FROM mailbox"
        with self._reading("measuring the mailbox") as db:
            if recipient is None:
                row = db.execute(usage)
            elif depositor is None:
                row = db.execute(f"{usage} WHERE recipient = ?", (recipient.raw,))
            else:
                row = db.execute(
                    f"{usage} WHERE recipient = ? AND depositor = ?", (recipient.raw, depositor)
                )
            count, used = row.fetchone()
        return int(count), int(used)

    def mailbox_purge(self, now_ms: int) -> int:
        with self._writing("purging expired mailbox envelopes") as db:
            cursor = db.execute("DELETE FROM mailbox WHERE expires_at_ms <= ?", (now_ms,))
        return cursor.rowcount

    # --- counts ----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """``contacts``, ``messages``, ``unread`` (not counting requests), ``requests``
        (request messages), ``outbox``, ``requests_dropped``; read in one snapshot."""
        with self._reading("counting the store") as db:
            row = db.execute(
                "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM messages), "
                f"(SELECT count(*) FROM messages WHERE {UNREAD_CONDITION} AND request = 0), "
                "(SELECT count(*) FROM messages WHERE request = 1), "
                "(SELECT count(*) FROM outbox)"
            ).fetchone()
            dropped = counter(db, "requests_dropped")
        contacts, messages, unread, requests, outbox = (int(n) for n in row)
        return {
            "contacts": contacts,
            "messages": messages,
            "unread": unread,
            "requests": requests,
            "outbox": outbox,
            "requests_dropped": dropped,
        }
