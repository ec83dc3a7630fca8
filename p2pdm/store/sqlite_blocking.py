"""The SQLite store's blocked peers and message requests as a list.

How this works: ``blocked_peers`` holds every peer the user blocked, contact
or stranger; a contact's ``blocked`` flag is read from it. Blocking and
unblocking log ``contact.blocked`` / ``contact.unblocked`` in the same
write. Message requests are the messages with ``request = 1``; they are
listed per sender here, and declined (deleted) through
:func:`~p2pdm.store.sqlite_requests.delete_requests`.
"""

from __future__ import annotations

from p2pdm.core.eventlog import LogEvent
from p2pdm.core.identity import PeerId
from p2pdm.core.model import EventType
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_BLOCKED_PEERS
from p2pdm.store.base import BlockedPeer, RequestSummary
from p2pdm.store.sqlite_api import insert_event
from p2pdm.store.sqlite_messages import _MESSAGE_COLUMNS, _message
from p2pdm.store.sqlite_requests import delete_requests
from p2pdm.store.sqlite_tables import Tables

__all__ = ["BlockTables"]


class BlockTables(Tables):
    """Blocked peers and the requests list of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def block_peer(self, peer: PeerId, at_ms: int) -> bool:
        """Block ``peer`` (``contact.blocked``); False if it was already blocked.

        Raises StoreError past MAX_BLOCKED_PEERS.
        """
        with self._writing(f"blocking {peer.short()}") as db:
            self._hot.contacts.pop(peer.raw, None)  # its blocked flag
            if db.execute("SELECT 1 FROM blocked_peers WHERE peer_id = ?", (peer.raw,)).fetchone():
                return False
            (count,) = db.execute("SELECT count(*) FROM blocked_peers").fetchone()
            if count >= MAX_BLOCKED_PEERS:
                raise StoreError(f"at most {MAX_BLOCKED_PEERS} peers can be blocked")
            db.execute(
                "INSERT INTO blocked_peers (peer_id, blocked_at_ms) VALUES (?, ?)",
                (peer.raw, at_ms),
            )
            insert_event(
                db, self._event_caps, LogEvent(EventType.CONTACT_BLOCKED, at_ms, peer), self._hot
            )
        self._notify()
        return True

    def unblock_peer(self, peer: PeerId, at_ms: int) -> bool:
        """Unblock ``peer`` (``contact.unblocked``); False if it was not blocked."""
        with self._writing(f"unblocking {peer.short()}") as db:
            self._hot.contacts.pop(peer.raw, None)
            gone = db.execute("DELETE FROM blocked_peers WHERE peer_id = ?", (peer.raw,)).rowcount
            if gone:
                insert_event(
                    db,
                    self._event_caps,
                    LogEvent(EventType.CONTACT_UNBLOCKED, at_ms, peer),
                    self._hot,
                )
        if gone:
            self._notify()
        return bool(gone)

    def is_blocked(self, peer: PeerId) -> bool:
        with self._reading(f"checking whether {peer.short()} is blocked") as db:
            row = db.execute("SELECT 1 FROM blocked_peers WHERE peer_id = ?", (peer.raw,))
            return row.fetchone() is not None

    def list_blocked(self) -> list[BlockedPeer]:
        """Every blocked peer, most recently blocked first."""
        with self._reading("listing blocked peers") as db:
            rows = db.execute(
                "SELECT peer_id, blocked_at_ms FROM blocked_peers "
                "ORDER BY blocked_at_ms DESC, peer_id"
            ).fetchall()
        return [BlockedPeer(PeerId(peer), at) for peer, at in rows]

    def list_requests(self) -> list[RequestSummary]:
        """One entry per stranger with pending requests, most recent first."""
        with self._reading("listing message requests") as db:
            rows = db.execute(
                "SELECT peer, count(*), min(seq), max(stored_at_ms) FROM messages "
                "WHERE request = 1 GROUP BY peer ORDER BY max(seq) DESC"
            ).fetchall()
            summaries = []
            for peer, count, first_seq, last_at in rows:
                first = db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE seq = ?", (first_seq,)
                ).fetchone()
                summaries.append(RequestSummary(PeerId(peer), int(count), _message(first), last_at))
        return summaries

    def delete_requests(self, peer: PeerId) -> int:
        """Delete ``peer``'s pending request messages; returns how many."""
        with self._writing(f"deleting requests of {peer.short()}") as db:
            self._hot.conversations.clear()
            return delete_requests(db, peer)

    def conversation_answered(self, conversation_id: bytes) -> bool:
        """True if the conversation holds a message from the peer or one of
        ours it read (so the peer has this node among its contacts).

        A conversation without one is remembered (until a message from the
        peer is stored in it or one of ours moves to read): asked before
        every send, the read scans every message of a conversation the
        peer never answered."""
        if conversation_id in self._hot.unanswered and not self._hot.settling:
            return False
        with self._reading("looking for an answer in a conversation") as db:
            row = db.execute(
                "SELECT 1 FROM messages WHERE conversation_id = ? "
                "AND (direction = 'in' OR status = 'read') LIMIT 1",
                (conversation_id,),
            )
            answered = row.fetchone() is not None
            if not answered:
                self._hot.remember_unanswered(conversation_id)
        return answered

    def conversation_written(self, conversation_id: bytes) -> bool:
        """True if the conversation holds a message this node sent."""
        with self._reading("looking for our own message in a conversation") as db:
            row = db.execute(
                "SELECT 1 FROM messages WHERE conversation_id = ? AND direction = 'out' LIMIT 1",
                (conversation_id,),
            )
            return row.fetchone() is not None
