"""The SQLite store's outbox of our envelopes and the mailboxes that hold them."""

from __future__ import annotations

from typing import Any, Final

from p2pdm.core.identity import PeerId
from p2pdm.core.model import (
    OutboxItem,
    Withdrawal,
)
from p2pdm.errors import NotFound, StoreError
from p2pdm.store.base import (
    page_limit,
)
from p2pdm.store.cipher import integrity_errors
from p2pdm.store.sqlite_tables import Tables

__all__ = ["OutboxTables", "withdraw_deposits"]

_OUTBOX_COLUMNS: Final = (
    "envelope_id, message_id, recipient, envelope, created_at_ms, expires_at_ms, "
    "next_attempt_at_ms, attempts, last_error"
)
#: Why an insert into ``outbox`` failed when its envelope id was queued already.
_QUEUED: Final = "UNIQUE constraint failed: outbox.envelope_id"


def withdraw_deposits(db: Any, envelope_id: bytes) -> None:
    """Forget the envelope's deposits, keeping each as a withdrawal to make
    (inside the caller's write)."""
    db.execute(
        "INSERT OR IGNORE INTO withdrawals (envelope_id, mailbox, until_ms) "
        "SELECT envelope_id, mailbox, until_ms FROM deposits WHERE envelope_id = ?",
        (envelope_id,),
    )
    db.execute("DELETE FROM deposits WHERE envelope_id = ?", (envelope_id,))


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


class OutboxTables(Tables):
    """Outbox and deposits of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def add_outbox(self, item: OutboxItem) -> None:
        """Queue an envelope; raises StoreError if its envelope id is already queued."""
        with self._writing_one(f"queueing envelope {item.envelope_id.hex()}") as db:
            try:  # the primary key refuses a queued id: no read before
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
            except integrity_errors() as exc:
                if _QUEUED not in str(exc):
                    raise
                raise StoreError(
                    f"envelope {item.envelope_id.hex()} is already in the outbox"
                ) from None

    def get_outbox(self, envelope_id: bytes) -> OutboxItem | None:
        with self._reading(f"reading envelope {envelope_id.hex()}") as db:
            row = db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE envelope_id = ?", (envelope_id,)
            ).fetchone()
        return None if row is None else _outbox_item(row)

    def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        """Items with ``next_attempt_at_ms <= now_ms``, earliest first (at equal
        times, in the order they were queued), at most ``limit``.

        ``limit`` is capped at MAX_PAGE_SIZE; raises StoreError if it is below 1.
        """
        size = page_limit(limit)
        with self._reading("reading due envelopes") as db:
            rows = db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE next_attempt_at_ms <= ? "
                "ORDER BY next_attempt_at_ms, created_at_ms, rowid LIMIT ?",
                (now_ms, size),
            ).fetchall()
        return [_outbox_item(row) for row in rows]

    def outbox_for(
        self, recipient: PeerId, due_at_ms: int | None = None, limit: int | None = None
    ) -> list[OutboxItem]:
        """Queued envelopes for ``recipient``, oldest first (at equal times, in the
        order they were queued): all of them, or those
        due at ``due_at_ms`` and not expired; at most ``limit``."""
        where = "recipient = ?"
        params: list[object] = [recipient.raw]
        if due_at_ms is not None:
            where += " AND next_attempt_at_ms <= ? AND expires_at_ms > ?"
            params += [due_at_ms, due_at_ms]
        with self._reading(f"reading envelopes for {recipient.short()}") as db:
            rows = db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {where} "
                "ORDER BY created_at_ms, rowid LIMIT ?",
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
        """Drop an envelope and its deposits (none, nearly always: once the
        table was found empty, no statement for them until one is made)."""
        hot = self._hot
        with self._writing(f"removing envelope {envelope_id.hex()}") as db:
            cursor = db.execute("DELETE FROM outbox WHERE envelope_id = ?", (envelope_id,))
            if not hot.no_deposits:
                gone = db.execute("DELETE FROM deposits WHERE envelope_id = ?", (envelope_id,))
                if gone.rowcount == 0:
                    (empty,) = db.execute("SELECT NOT EXISTS (SELECT 1 FROM deposits)").fetchone()
                    hot.no_deposits = bool(empty)
        return cursor.rowcount > 0

    def outbox_count(self) -> int:
        with self._reading("counting the outbox") as db:
            (count,) = db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(count)

    # --- deposits of our own envelopes -------------------------------------

    def add_deposit(self, envelope_id: bytes, mailbox: PeerId, until_ms: int) -> None:
        with self._writing("recording a mailbox deposit") as db:
            self._hot.no_deposits = False
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

    # --- deposits to take back -----------------------------------------------

    def withdrawals_due(self, now_ms: int, limit: int) -> list[Withdrawal]:
        # Almost always none (only unsends make them), and the withdrawer asks
        # each time something is queued: a read, not a write transaction, then.
        with self._reading("reading withdrawals") as db:
            if db.execute("SELECT 1 FROM withdrawals LIMIT 1").fetchone() is None:
                return []
        with self._writing("reading withdrawals") as db:
            db.execute("DELETE FROM withdrawals WHERE until_ms <= ?", (now_ms,))
            rows = db.execute(
                "SELECT envelope_id, mailbox, until_ms, attempts FROM withdrawals "
                "WHERE next_at_ms <= ? ORDER BY mailbox, envelope_id LIMIT ?",
                (now_ms, page_limit(limit)),
            ).fetchall()
        return [Withdrawal(bytes(e), PeerId(m), u, a) for e, m, u, a in rows]

    def withdrawal_done(self, envelope_id: bytes, mailbox: PeerId) -> None:
        with self._writing("forgetting a withdrawal") as db:
            db.execute(
                "DELETE FROM withdrawals WHERE envelope_id = ? AND mailbox = ?",
                (envelope_id, mailbox.raw),
            )

    def withdrawal_retry(
        self, envelope_id: bytes, mailbox: PeerId, attempts: int, next_at_ms: int
    ) -> None:
        with self._writing("rescheduling a withdrawal") as db:
            db.execute(
                "UPDATE withdrawals SET attempts = ?, next_at_ms = ? "
                "WHERE envelope_id = ? AND mailbox = ?",
                (attempts, next_at_ms, envelope_id, mailbox.raw),
            )

    def withdrawals_count(self) -> int:
        with self._reading("counting withdrawals") as db:
            (count,) = db.execute("SELECT count(*) FROM withdrawals").fetchone()
        return int(count)

    # --- our running live location shares (no positions) ---------------------

    def put_live_share(self, conversation_id: bytes, peer: PeerId | None, until_ms: int) -> None:
        with self._writing("remembering a live location share") as db:
            db.execute(
                "INSERT OR REPLACE INTO live_shares (conversation_id, peer, until_ms) "
                "VALUES (?, ?, ?)",
                (conversation_id, None if peer is None else peer.raw, until_ms),
            )

    def remove_live_share(self, conversation_id: bytes) -> bool:
        with self._writing("forgetting a live location share") as db:
            cursor = db.execute(
                "DELETE FROM live_shares WHERE conversation_id = ?", (conversation_id,)
            )
        return cursor.rowcount > 0

    def live_shares(self) -> list[tuple[bytes, PeerId | None, int]]:
        with self._reading("reading live location shares") as db:
            rows = db.execute(
                "SELECT conversation_id, peer, until_ms FROM live_shares ORDER BY conversation_id"
            ).fetchall()
        return [(bytes(c), None if p is None else PeerId(p), u) for c, p, u in rows]
