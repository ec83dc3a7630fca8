"""The SQLite store's conversation settings, disappearing messages and search.

How this works: a conversation's timer, muted and archived flags are columns
of ``conversations``; a message's timer and expiry are columns of
``messages`` (set when it is stored and when it is read, in
``sqlite_messages``). :meth:`ExpiryTables.expire_messages` erases what is
due — its body, reactions and held actions first (``erase_body``; the
search triggers drop its words), its outbox entry, then the row and what
cascades from it — and logs
``message.expired`` in the same transaction. :meth:`ExpiryTables.forget_erased`
then makes sure the text left the file: ``secure_delete`` zeroes the freed
pages, FTS5's index segments are merged when words left them, and the
write-ahead log, which still holds the old page images, is checkpointed and
truncated. Search is an FTS5 ``MATCH`` on ``message_search`` (see
``store/search_text.py``), newest first.
"""

from __future__ import annotations

from typing import Final

from p2pdm.core.eventlog import expired_event, settings_event
from p2pdm.core.identity import PeerId
from p2pdm.core.model import Conversation, StoredMessage
from p2pdm.store.base import SearchHit, is_unread
from p2pdm.store.search_text import phrase_query
from p2pdm.store.sqlite_actions import erase_body
from p2pdm.store.sqlite_api import counter, insert_event
from p2pdm.store.sqlite_messages import CONVERSATION_COLUMNS, MessageTables, conversation_row

__all__ = ["ExpiryTables"]

#: Words of context around a match in a search hit's snippet.
SNIPPET_TOKENS: Final = 12
#: What marks a match in a snippet.
MATCH_OPEN, MATCH_CLOSE, ELLIPSIS = "[", "]", "…"


class ExpiryTables(MessageTables):
    """Conversation settings, expiry and search of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

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
        """Change a conversation's settings, creating it (empty) if needed.

        ``timer`` is ``(timer_s, set_at_ms)``: applied only if ``set_at_ms``
        (the setter's clock) is newer than the setting's, or as new with a
        larger ``timer_s``, so the newest wins whatever order settings arrive
        in. ``pinned`` pins it at ``at_ms`` (one pinned already keeps its
        place) or unpins it. None leaves a setting as it is.
        """
        with self._writing("changing a conversation") as db:
            self._hot.conversations.pop(conversation_id, None)
            db.execute(
                "INSERT INTO conversations (id, peer, last_message_at_ms, last_seq) "
                "VALUES (?, ?, ?, 0) ON CONFLICT (id) DO NOTHING",
                (conversation_id, peer.raw, at_ms),
            )
            select = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?"
            before = conversation_row(db.execute(select, (conversation_id,)).fetchone())
            if timer is not None:
                db.execute(
                    "UPDATE conversations SET timer_s = ?, timer_set_at_ms = ? WHERE id = ? "
                    "AND (timer_set_at_ms < ? OR (timer_set_at_ms = ? AND timer_s < ?))",
                    (timer[0], timer[1], conversation_id, timer[1], timer[1], timer[0]),
                )
            for column, value in (("muted", muted), ("archived", archived)):
                if value is not None:
                    db.execute(
                        f"UPDATE conversations SET {column} = ? WHERE id = ?",
                        (int(value), conversation_id),
                    )
            if pinned is not None:
                db.execute(
                    "UPDATE conversations SET pinned_at_ms = ? WHERE id = ? "
                    "AND (pinned_at_ms IS NULL) = ?",
                    (at_ms if pinned else None, conversation_id, int(pinned)),
                )
            after = conversation_row(db.execute(select, (conversation_id,)).fetchone())
            event = settings_event(before, after, at_ms)
            if event is not None:
                insert_event(db, self._event_caps, event, self._hot)
        if event is not None:
            self._notify()
        return after

    def expire_messages(self, now_ms: int, limit: int) -> list[StoredMessage]:
        """Erase up to ``limit`` messages whose ``expires_at_ms`` is past: body,
        reactions and held actions (:func:`erase_body`), outbox entry, row,
        statuses; logs ``message.expired`` for each. Returns them as they were
        (bodies included), soonest expiry first. Each message is erased in one
        write of its own unless the caller holds a transaction."""
        with self._reading("finding expired messages") as db:
            ids = [
                bytes(mid)
                for (mid,) in db.execute(
                    "SELECT id FROM messages WHERE expires_at_ms IS NOT NULL "
                    "AND expires_at_ms <= ? ORDER BY expires_at_ms, seq LIMIT ?",
                    (now_ms, max(0, limit)),
                )
            ]
        gone = []
        for message_id in ids:
            message = self.get_message(message_id)
            if message is None:
                continue
            with self._writing(f"erasing expired message {message_id.hex()}") as db:
                erase_body(db, message_id)
                db.execute(
                    "DELETE FROM deposits WHERE envelope_id IN "
                    "(SELECT envelope_id FROM outbox WHERE message_id = ?)",
                    (message_id,),
                )
                db.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,))
                db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
                if is_unread(message):  # a timer set on arrival, not on reading
                    self._hot.conversations.pop(message.conversation_id, None)
                    db.execute(
                        "UPDATE conversations SET unread = unread - 1 WHERE id = ? AND unread > 0",
                        (message.conversation_id,),
                    )
                insert_event(db, self._event_caps, expired_event(message, now_ms), self._hot)
            gone.append(message)
        if gone:
            self._notify()
        return gone

    def next_expiry_ms(self) -> int | None:
        """See ``Store.next_expiry_ms``: one step down ``messages_by_expiry``."""
        with self._reading("finding the next expiry") as db:
            row = db.execute(
                "SELECT MIN(expires_at_ms) FROM messages WHERE expires_at_ms IS NOT NULL"
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def forget_erased(self) -> None:
        """Make erased text leave the file: merge the search index if words left
        it, then checkpoint and truncate the write-ahead log (outside any
        transaction; inside one, the log is left for the next call)."""
        with self._writing("merging the search index") as db:
            if counter(db, "search_erased"):
                db.execute("INSERT INTO message_search (message_search) VALUES ('optimize')")
                db.execute("UPDATE counters SET value = 0 WHERE name = 'search_erased'")
        with self._reading("emptying the write-ahead log") as db:
            if not db.in_transaction:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def search(self, terms: list[str], peer: PeerId | None, limit: int) -> list[SearchHit]:
        """Messages whose text has every term (the last also as a prefix),
        newest first, at most ``limit``; only ``peer``'s conversation if given."""
        where, args = "", list[object]([phrase_query(terms)])
        if peer is not None:
            where, args = " AND m.peer = ?", [*args, peer.raw]
        with self._reading("searching messages") as db:
            rows = db.execute(
                "SELECT m.id, m.conversation_id, m.peer, m.direction, m.sent_at_ms, "
                "snippet(message_search, 0, ?, ?, ?, ?) FROM message_search "
                "JOIN messages m ON m.seq = message_search.rowid "
                f"WHERE message_search MATCH ?{where} ORDER BY m.seq DESC LIMIT ?",
                (MATCH_OPEN, MATCH_CLOSE, ELLIPSIS, SNIPPET_TOKENS, *args, max(0, limit)),
            ).fetchall()
        return [
            SearchHit(bytes(mid), bytes(cid), PeerId(raw), direction, sent, snippet)
            for mid, cid, raw, direction, sent, snippet in rows
        ]
