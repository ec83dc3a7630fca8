"""The SQLite store's conversations and messages, with their delivery state.

How this works: ``messages`` holds every message (with the status it was stored
with, ``first_status``), ``conversations`` one row per conversation id
(recency, unread count, request), ``status_history`` each message's later
statuses, and ``message_recipients`` each recipient's status
of an outgoing message; a message's own ``status`` is the least advanced of
its recipients' (see :func:`~p2pdm.store.base.advance_recipients`). The
``seq`` column is the paging cursor, and ``(conversation_id, seq)`` is
indexed so a page is one index range scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final, cast

from p2pdm.core.eventlog import LogEvent, status_event
from p2pdm.core.identity import PeerId
from p2pdm.core.model import (
    Conversation,
    DeliveryStatus,
    Direction,
    MessagePage,
    Recipient,
    StatusChange,
    StoredMessage,
    overall_status,
)
from p2pdm.errors import NotFound, StoreError
from p2pdm.limits import MAX_STATUS_HISTORY
from p2pdm.store.base import (
    NOTED_STATUSES,
    UNREAD_STATUSES,
    RequestUsage,
    advance_recipients,
    first_recipients,
    is_unread,
    iter_chunks,
    message_status,
    notable,
    page_limit,
    status_change_entry,
    status_change_event,
    status_moves,
)
from p2pdm.store.cipher import integrity_errors
from p2pdm.store.database import NOT_READ
from p2pdm.store.rows import conversation_with, message_with
from p2pdm.store.schema import UNREAD_CONDITION
from p2pdm.store.sqlite_api import counter, insert_event
from p2pdm.store.sqlite_requests import request_usage, trim_requests
from p2pdm.store.sqlite_tables import IN_CHUNK, NO_CURSOR, Tables

__all__ = [
    "CONVERSATION_COLUMNS",
    "MESSAGE_COLUMNS",
    "MessageTables",
    "conversation_row",
    "message_row",
]

_MESSAGE_COLUMNS: Final = (
    "seq, id, conversation_id, peer, direction, kind, body, sent_at_ms, stored_at_ms, "
    "status, request, edited_at_ms, unsent, timer_s, expires_at_ms"
)


CONVERSATION_COLUMNS: Final = (
    "id, peer, last_message_at_ms, unread, request, timer_s, muted, archived, pinned_at_ms"
)


def conversation_row(row: Any) -> Conversation:
    """A conversation from its ``CONVERSATION_COLUMNS``."""
    cid, peer, last, unread, request, timer_s, muted, archived, pinned_at_ms = row
    return Conversation(
        cid,
        PeerId(peer),
        last,
        unread,
        bool(request),
        timer_s,
        bool(muted),
        bool(archived),
        pinned_at_ms,
    )


def _message(row: Any, recipients: tuple[Recipient, ...] = ()) -> StoredMessage:
    (
        seq,
        mid,
        conv,
        peer,
        direction,
        kind,
        body,
        sent,
        stored,
        status,
        request,
        edited,
        unsent,
        timer,
        ex,
    ) = row
    return StoredMessage(
        id=mid,
        conversation_id=conv,
        peer=PeerId.trusted(peer),
        direction=Direction(direction),
        kind=kind,
        body=body,
        sent_at_ms=sent,
        stored_at_ms=stored,
        status=DeliveryStatus(status),
        request=bool(request),
        seq=seq,
        recipients=recipients,
        edited_at_ms=edited,
        unsent=bool(unsent),
        timer_s=timer,
        expires_at_ms=ex,
    )


def _recipients(db: Any, messages: Sequence[StoredMessage]) -> list[StoredMessage]:
    """``messages`` with the recipients of the outgoing ones read from ``message_recipients``."""
    ids = [m.id for m in messages if m.direction == Direction.OUT]
    found: dict[bytes, list[Recipient]] = {}
    for chunk in iter_chunks(ids, IN_CHUNK):
        marks = ", ".join("?" * len(chunk))
        for mid, peer, status, at, detail in db.execute(
            "SELECT message_id, peer, status, at_ms, detail FROM message_recipients "
            f"WHERE message_id IN ({marks}) ORDER BY message_id, peer",
            chunk,
        ):
            found.setdefault(bytes(mid), []).append(
                Recipient(PeerId(peer), DeliveryStatus(status), at, detail)
            )
    return [replace(m, recipients=tuple(found.get(m.id, ()))) for m in messages]


#: One message and its recipients (one row each; NULLs for none) in one statement.
_MESSAGE_WITH_RECIPIENTS: Final = (
    "SELECT "
    + ", ".join("m." + column for column in _MESSAGE_COLUMNS.split(", "))
    + ", r.peer, r.status, r.at_ms, r.detail FROM messages m "
    "LEFT JOIN message_recipients r ON r.message_id = m.id WHERE m.id = ? ORDER BY r.peer"
)
_WIDTH: Final = len(_MESSAGE_COLUMNS.split(", "))
#: Where a row of _MESSAGE_COLUMNS holds the direction, and an outgoing one's.
_DIRECTION: Final = _MESSAGE_COLUMNS.split(", ").index("direction")
_OUT: Final = str(Direction.OUT)


def _read_message(db: Any, message_id: bytes) -> StoredMessage | None:
    """The message ``message_id`` with its recipients (an outgoing one's), or None."""
    rows = db.execute(_MESSAGE_WITH_RECIPIENTS, (message_id,)).fetchall()
    if not rows:
        return None
    first = rows[0]
    if first[_DIRECTION] != _OUT:
        return _message(first[:_WIDTH])
    recipients = tuple(
        Recipient(PeerId.trusted(peer), DeliveryStatus(status), at, detail)
        for peer, status, at, detail in (row[_WIDTH:] for row in rows)
        if peer is not None
    )
    return _message(first[:_WIDTH], recipients)


#: A message's conversation, made or brought up to date as the message is
#: stored, with ``last_seq`` the seq the message gets next: ``messages.seq``
#: is AUTOINCREMENT, so SQLite gives one more than the larger of the highest
#: seq ever given (``sqlite_sequence``) and the highest there now.
_UPSERT_CONVERSATION: Final = (
    "INSERT INTO conversations (id, peer, last_message_at_ms, last_seq, unread, request) "
    "VALUES (?1, ?2, ?3, 1 + max("
    "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0), "
    "coalesce((SELECT max(seq) FROM messages), 0)), ?4, ?5) "
    "ON CONFLICT (id) DO UPDATE SET "
    "last_message_at_ms = max(last_message_at_ms, excluded.last_message_at_ms), "
    "last_seq = excluded.last_seq, "
    "unread = unread + excluded.unread, request = request AND excluded.request"
)

#: A message's statuses, oldest first: the first from its row (``first_status``,
#: at ``stored_at_ms``; NULL for messages stored before that column, whose
#: first is their oldest ``status_history`` row), then its history rows.
_STATUS_HISTORY: Final = (
    "SELECT status, at_ms, detail FROM ("
    "SELECT 0 AS n, first_status AS status, stored_at_ms AS at_ms, '' AS detail "
    "FROM messages WHERE id = ?1 AND first_status IS NOT NULL "
    "UNION ALL SELECT n, status, at_ms, detail FROM status_history WHERE message_id = ?1"
    ") ORDER BY n"
)

#: Why an insert into ``messages`` failed when its id was taken.
_ID_TAKEN: Final = "UNIQUE constraint failed: messages.id"

#: The columns :func:`message_row` reads, for the other tables' queries.
MESSAGE_COLUMNS: Final = _MESSAGE_COLUMNS
message_row: Final = _message


class MessageTables(Tables):
    """Conversations and messages of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def add_message(self, message: StoredMessage) -> StoredMessage:
        """Insert; returns it with ``seq`` set. Raises StoreError if the id exists.

        Creates or updates its conversation: ``last_message_at_ms`` is the
        latest ``stored_at_ms`` (this node's clock, which a peer cannot push
        into the future), unread counts incoming unread messages, and the
        conversation stays a request while every message in it is one.
        Writes no event: the caller logs what storing it makes
        (:func:`p2pdm.core.eventlog.received_events`).
        """
        recipients = first_recipients(message)
        status = message_status(message, recipients)
        unread = message.direction == Direction.IN and status in UNREAD_STATUSES
        hot = self._hot
        with self._writing(f"storing message {message.id.hex()}") as db:
            if message.direction == Direction.IN or status is DeliveryStatus.READ:
                hot.unanswered.discard(message.conversation_id)  # it answers
            # Brought up to date below as the upsert does, once all of it is written.
            known = hot.conversations.pop(message.conversation_id, None)
            # The conversation first (the message refers to it), already with
            # the seq the message is about to get: one statement fewer.
            db.execute(
                _UPSERT_CONVERSATION,
                (
                    message.conversation_id,
                    message.peer.raw,
                    message.stored_at_ms,
                    int(unread),
                    int(message.request),
                ),
            )
            try:
                cursor = self._insert_message(db, message, status)
            except integrity_errors() as exc:  # the id's unique index: no read before
                if _ID_TAKEN not in str(exc):
                    raise
                raise StoreError(f"message {message.id.hex()} is already stored") from None
            seq = cursor.lastrowid
            if seq is None:
                raise StoreError(f"storing message {message.id.hex()}: no seq assigned")
            db.executemany(
                "INSERT INTO message_recipients (message_id, peer, status, at_ms, detail) "
                "VALUES (?, ?, ?, ?, ?)",
                [(message.id, r.peer.raw, str(r.status), r.at_ms, r.detail) for r in recipients],
            )
            if message.request:
                trim_requests(db, message.peer, self._request_caps)
                known = None  # it may have deleted conversations
                hot.conversations.clear()
            if known is not None:
                hot.conversations[message.conversation_id] = conversation_with(
                    known,
                    max(known.last_message_at_ms, message.stored_at_ms),
                    known.unread + int(unread),
                    known.request and message.request,
                )
        return message_with(message, status, recipients, seq)

    @staticmethod
    def _insert_message(db: Any, message: StoredMessage, status: DeliveryStatus) -> Any:
        # ``first_status`` is ``status`` again (?9): the start of its history.
        return db.execute(
            "INSERT INTO messages (id, conversation_id, peer, direction, kind, body, "
            "sent_at_ms, stored_at_ms, status, request, edited_at_ms, unsent, timer_s, "
            "expires_at_ms, first_status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?9)",
            (
                message.id,
                message.conversation_id,
                message.peer.raw,
                str(message.direction),
                message.kind,
                message.body,
                message.sent_at_ms,
                message.stored_at_ms,
                str(status),
                int(message.request),
                message.edited_at_ms,
                int(message.unsent),
                message.timer_s,
                message.expires_at_ms,
            ),
        )

    def get_message(self, message_id: bytes) -> StoredMessage | None:
        with self._reading(f"reading message {message_id.hex()}") as db:
            return _read_message(db, message_id)

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
        """Record a status change, of ``recipient``'s (every recipient's if None)
        for an outgoing message; see ``Store.set_status``."""
        hot = self._hot
        with self._writing(f"setting status of message {message_id.hex()}") as db:
            left = hot.moved
            if left is not None and left[:3] == (hot.serial, db.total_changes, message_id):
                old: StoredMessage | None = left[3]  # as the last call left it: no read
            else:
                old = _read_message(db, message_id)
            hot.moved = None
            if old is None:
                raise NotFound(f"no message {message_id.hex()} in the store")
            recipients, moved = advance_recipients(old.recipients, status, at_ms, detail, recipient)
            db.executemany(
                "UPDATE message_recipients SET status = ?, at_ms = ?, detail = ? "
                "WHERE message_id = ? AND peer = ?",
                [(str(r.status), r.at_ms, r.detail, message_id, r.peer.raw) for r in moved],
            )
            new = status if not old.recipients else message_status(old, recipients)
            entry = status_change_event(old, new, moved, at_ms, detail) if event else None
            if entry is not None:
                insert_event(db, self._event_caps, entry, self._hot)
            if not status_moves(old.status, new):
                changed = bool(moved)
                new = old.status
            else:
                self._move_status(db, old, new, at_ms, detail)
                changed = True
            if new is not DeliveryStatus.READ:  # read also starts its timer: read again
                left_as = message_with(old, new, recipients, old.seq) if changed else old
                hot.moved = (hot.serial, db.total_changes, message_id, left_as)
        if entry is not None:
            self._notify()
        return changed

    def set_statuses(
        self,
        message_id: bytes,
        statuses: Sequence[DeliveryStatus],
        at_ms: int,
        *,
        recipient: PeerId | None = None,
    ) -> bool:
        """``set_status`` for each of ``statuses`` in turn; see ``Store.set_statuses``.

        An outgoing message's rows are written once each, as the last move
        left them, and its history entries in one insert: an ack's "sent"
        mark and "delivered" cost one read and five writes, not one read
        and eight. Anything else (a read mark, an incoming message) goes
        through ``set_status`` one status at a time.
        """
        if DeliveryStatus.READ in statuses:
            return self._one_by_one(message_id, statuses, at_ms, recipient)
        hot = self._hot
        with self._writing(f"setting status of message {message_id.hex()}") as db:
            left = hot.moved
            if left is not None and left[:3] == (hot.serial, db.total_changes, message_id):
                old: StoredMessage | None = left[3]
            else:
                old = _read_message(db, message_id)
            hot.moved = None
            if old is None:
                raise NotFound(f"no message {message_id.hex()} in the store")
            if old.direction is not Direction.OUT:  # set_status reads nothing again
                hot.moved = (hot.serial, db.total_changes, message_id, old)
            else:
                changed, events = self._move_out(db, old, statuses, at_ms, recipient)
        if old.direction is not Direction.OUT:
            return self._one_by_one(message_id, statuses, at_ms, recipient)
        if events:
            self._notify()
        return changed

    def _move_out(
        self,
        db: Any,
        old: StoredMessage,
        statuses: Sequence[DeliveryStatus],
        at_ms: int,
        recipient: PeerId | None,
    ) -> tuple[bool, int]:
        """Write an outgoing message's moves (inside set_statuses); returns
        whether a status changed and how many events were logged."""
        hot, message_id = self._hot, old.id
        # The message as each move leaves it, made once at the end.
        now_status, now_recipients, changed = old.status, old.recipients, False
        moved_peers: dict[bytes, Recipient] = {}
        events: list[LogEvent] = []
        history: list[DeliveryStatus] = []
        for status in statuses:
            recipients, moved = advance_recipients(now_recipients, status, at_ms, "", recipient)
            moved_peers.update((r.peer.raw, r) for r in moved)
            new = overall_status(recipients) if recipients else status
            entry = status_change_entry(old, now_status, new, moved, at_ms, "")
            if entry is not None:
                events.append(entry)
            if status_moves(now_status, new):
                history.append(new)
                now_status = new
                changed = True
            else:
                changed = changed or bool(moved)
            now_recipients = recipients
        now = message_with(old, now_status, now_recipients, old.seq)
        db.executemany(
            "UPDATE message_recipients SET status = ?, at_ms = ?, detail = ? "
            "WHERE message_id = ? AND peer = ?",
            [
                (str(r.status), r.at_ms, r.detail, message_id, r.peer.raw)
                for r in moved_peers.values()
            ],
        )
        for entry in events:
            insert_event(db, self._event_caps, entry, hot)
        if history:
            db.execute("UPDATE messages SET status = ? WHERE id = ?", (str(now.status), message_id))
            db.execute(
                "INSERT INTO status_history (message_id, status, at_ms, detail) VALUES "
                + ", ".join("(?, ?, ?, '')" for _ in history),
                [value for status in history for value in (message_id, str(status), at_ms)],
            )
        hot.moved = (hot.serial, db.total_changes, message_id, now)
        return changed, len(events)

    def _one_by_one(
        self,
        message_id: bytes,
        statuses: Sequence[DeliveryStatus],
        at_ms: int,
        recipient: PeerId | None,
    ) -> bool:
        changed = False
        for status in statuses:
            changed = self.set_status(message_id, status, at_ms, recipient=recipient) or changed
        return changed

    def _move_status(
        self, db: Any, old: StoredMessage, new: DeliveryStatus, at_ms: int, detail: str
    ) -> None:
        """Write ``old``'s own status moving to ``new`` (inside set_status)."""
        message_id = old.id
        db.execute("UPDATE messages SET status = ? WHERE id = ?", (str(new), message_id))
        if new is DeliveryStatus.READ:  # the recipient read it: its timer starts
            self._hot.unanswered.discard(old.conversation_id)  # and knows this node
            db.execute(
                "UPDATE messages SET expires_at_ms = "
                "min(coalesce(expires_at_ms, ?1 + timer_s * 1000), ?1 + timer_s * 1000) "
                "WHERE id = ?2 AND timer_s > 0",
                (at_ms, message_id),
            )
        db.execute(
            "INSERT INTO status_history (message_id, status, at_ms, detail) VALUES (?, ?, ?, ?)",
            (message_id, str(new), at_ms, detail),
        )
        if is_unread(old) and new not in UNREAD_STATUSES:
            self._hot.conversations.pop(old.conversation_id, None)
            db.execute(
                "UPDATE conversations SET unread = unread - 1 WHERE id = ? AND unread > 0",
                (old.conversation_id,),
            )

    def status_history(self, message_id: bytes) -> list[StatusChange]:
        """Every status the message had, oldest first, starting with the one it
        was stored with (in its row: ``first_status``; a ``status_history`` row
        for a message stored before that column)."""
        with self._reading(f"reading status history of {message_id.hex()}") as db:
            rows = db.execute(_STATUS_HISTORY, (message_id,)).fetchall()
        return [StatusChange(message_id, DeliveryStatus(s), at, detail) for s, at, detail in rows]

    def note_status(
        self, message_id: bytes, at_ms: int, detail: str, *, recipient: PeerId | None = None
    ) -> bool:
        """Record a note on an outgoing message's current status; see ``Store.note_status``."""
        with self._writing(f"noting the status of message {message_id.hex()}") as db:
            row = db.execute(
                f"SELECT {_MESSAGE_COLUMNS}, first_status FROM messages WHERE id = ?",
                (message_id,),
            ).fetchone()
            if row is None:
                raise NotFound(f"no message {message_id.hex()} in the store")
            message, first = _message(row[:_WIDTH]), row[_WIDTH]
            status = message.status
            if recipient is not None and message.direction is Direction.OUT:
                db.execute(
                    "UPDATE message_recipients SET detail = ? WHERE message_id = ? AND peer = ? "
                    f"AND status IN ({', '.join('?' * len(NOTED_STATUSES))})",
                    (detail, message_id, recipient.raw, *(str(s) for s in NOTED_STATUSES)),
                )
            last = db.execute(
                "SELECT n, status, at_ms, detail FROM status_history WHERE message_id = ? "
                "ORDER BY n DESC LIMIT 1",
                (message_id,),
            ).fetchall()
            latest = [StatusChange(message_id, DeliveryStatus(s), a, d) for _, s, a, d in last]
            if not latest and first is not None:  # only the status it was stored with
                latest = [StatusChange(message_id, DeliveryStatus(first), message.stored_at_ms, "")]
            if not notable(message.direction, status, latest, detail):
                return False
            (entries,) = db.execute(
                "SELECT count(*) FROM status_history WHERE message_id = ?", (message_id,)
            ).fetchone()
            entries += first is not None
            if entries >= MAX_STATUS_HISTORY and last:
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
                db, self._event_caps, status_event(message, status, at_ms, detail), self._hot
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
        cursor = NO_CURSOR if before is None else max(0, min(before, NO_CURSOR))
        with self._reading("reading messages") as db:
            rows = db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages "
                "WHERE conversation_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                (conversation_id, cursor, size + 1),
            ).fetchall()
            page = tuple(_recipients(db, [_message(row) for row in rows[:size]]))
        return MessagePage(page, page[-1].seq if len(rows) > size else None)

    def list_conversations(self) -> list[Conversation]:
        """Pinned first (the latest pinned on top), then most recent first (by
        ``last_message_at_ms``, then by newest message)."""
        with self._reading("listing conversations") as db:
            rows = db.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations ORDER BY "
                "pinned_at_ms IS NULL, pinned_at_ms DESC, last_message_at_ms DESC, last_seq DESC"
            ).fetchall()
        return [conversation_row(row) for row in rows]

    def get_conversation(self, conversation_id: bytes) -> Conversation | None:
        """The conversation, or None; read once until a write changes it (every
        send and every received message asks)."""
        found = self._hot.conversations.get(conversation_id, NOT_READ)  # one lookup
        if found is not NOT_READ and not self._hot.settling:
            return cast("Conversation | None", found)
        with self._reading("reading a conversation") as db:
            row = db.execute(
                f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            found = None if row is None else conversation_row(row)
            self._hot.remember_conversation(conversation_id, found)  # frozen
        return found

    def mark_conversation_read(self, conversation_id: bytes, at_ms: int) -> list[bytes]:
        """Mark incoming messages read; returns the ids that changed, oldest first."""
        with self._writing("marking a conversation read") as db:
            self._hot.conversations.pop(conversation_id, None)
            read = [
                _message(row)
                for row in db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? "
                    f"AND {UNREAD_CONDITION} ORDER BY seq",
                    (conversation_id,),
                )
            ]
            db.execute(
                "INSERT INTO status_history (message_id, status, at_ms) "
                f"SELECT id, ?, ? FROM messages WHERE conversation_id = ? AND {UNREAD_CONDITION} "
                "ORDER BY seq",
                (str(DeliveryStatus.READ), at_ms, conversation_id),
            )
            db.execute(  # their disappearing timers start now
                "UPDATE messages SET expires_at_ms = ? + timer_s * 1000 WHERE conversation_id = ? "
                f"AND {UNREAD_CONDITION} AND timer_s > 0 AND expires_at_ms IS NULL",
                (at_ms, conversation_id),
            )
            db.execute(
                f"UPDATE messages SET status = ? WHERE conversation_id = ? AND {UNREAD_CONDITION}",
                (str(DeliveryStatus.READ), conversation_id),
            )
            db.execute("UPDATE conversations SET unread = 0 WHERE id = ?", (conversation_id,))
            for message in read:
                event = status_event(message, DeliveryStatus.READ, at_ms)
                insert_event(db, self._event_caps, event, self._hot)
        if read:
            self._notify()
        return [message.id for message in read]

    def accept_request(self, peer: PeerId) -> int:
        """Turn a peer's message requests into normal messages; returns how many."""
        with self._writing(f"accepting requests of {peer.short()}") as db:
            self._hot.conversations.clear()
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

    def has_requests(self, peer: PeerId) -> bool:
        """True while ``peer`` has a pending message request."""
        with self._reading(f"looking for requests of {peer.short()}") as db:
            found = db.execute(
                "SELECT 1 FROM messages WHERE peer = ? AND request = 1 LIMIT 1", (peer.raw,)
            ).fetchone()
        return found is not None

    # --- counts ----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """``contacts``, ``messages``, ``unread`` (not counting requests), ``requests``
        (request messages), ``outbox``, ``waiting_for_keys`` (messages without an
        envelope yet), ``requests_dropped``; read in one snapshot."""
        with self._reading("counting the store") as db:
            row = db.execute(
                "SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM messages), "
                f"(SELECT count(*) FROM messages WHERE {UNREAD_CONDITION} AND request = 0), "
                "(SELECT count(*) FROM messages WHERE request = 1), "
                "(SELECT count(*) FROM outbox), (SELECT count(*) FROM key_waits)"
            ).fetchone()
            dropped = counter(db, "requests_dropped")
            refused = counter(db, "actions_refused")
            held_dropped = counter(db, "held_actions_dropped")
        contacts, messages, unread, requests, outbox, waiting = (int(n) for n in row)
        return {
            "contacts": contacts,
            "messages": messages,
            "unread": unread,
            "requests": requests,
            "outbox": outbox,
            "waiting_for_keys": waiting,
            "requests_dropped": dropped,
            "actions_refused": refused,
            "held_actions_dropped": held_dropped,
        }
