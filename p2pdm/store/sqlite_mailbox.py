"""The SQLite store's mailbox: envelopes this node holds for others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.store.base import (
    envelope_digest,
    iter_chunks,
    page_limit,
)
from p2pdm.store.sqlite_tables import IN_CHUNK, NO_CURSOR, Tables

__all__ = ["MailboxTables"]

_MAILBOX_COLUMNS: Final = (
    "seq, recipient, envelope_id, envelope, deposited_at_ms, expires_at_ms, depositor, withdraw"
)


def _stored_envelope(row: Any) -> StoredEnvelope:
    seq, recipient, eid, envelope, deposited, expires, depositor, withdraw = row
    return StoredEnvelope(
        PeerId(recipient), eid, envelope, deposited, expires, seq, depositor, withdraw
    )


class MailboxTables(Tables):
    """The mailbox of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def mailbox_add(self, item: StoredEnvelope) -> tuple[StoredEnvelope, bool]:
        digest = envelope_digest(item.envelope)
        with self._writing("holding an envelope in the mailbox") as db:
            row = db.execute(
                f"SELECT {_MAILBOX_COLUMNS} FROM mailbox WHERE recipient = ? AND digest = ?",
                (item.recipient.raw, digest),
            ).fetchone()
            if row is not None:
                held = _stored_envelope(row)
                if held.withdraw and held.withdraw != item.withdraw:
                    # Two depositors, two secrets: neither may take it back alone.
                    db.execute("UPDATE mailbox SET withdraw = x'' WHERE seq = ?", (held.seq,))
                    held = replace(held, withdraw=b"")
                return held, False
            cursor = db.execute(
                "INSERT INTO mailbox (recipient, envelope_id, digest, envelope, size, "
                "deposited_at_ms, expires_at_ms, depositor, withdraw) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.recipient.raw,
                    item.envelope_id,
                    digest,
                    item.envelope,
                    item.size,
                    item.deposited_at_ms,
                    item.expires_at_ms,
                    item.depositor,
                    item.withdraw,
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
                (recipient.raw, min(after_seq, NO_CURSOR), now_ms, size),
            ).fetchall()
        return [_stored_envelope(row) for row in rows]

    def mailbox_delete(self, recipient: PeerId, seqs: Sequence[int]) -> int:
        deleted = 0
        with self._writing("deleting mailbox envelopes") as db:
            for chunk in iter_chunks([min(s, NO_CURSOR) for s in seqs], IN_CHUNK):
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

    def mailbox_recipients(self) -> int:
        with self._reading("counting the mailbox's recipients") as db:
            (count,) = db.execute("SELECT count(DISTINCT recipient) FROM mailbox").fetchone()
        return int(count)

    def mailbox_purge(self, now_ms: int) -> int:
        with self._writing("purging expired mailbox envelopes") as db:
            cursor = db.execute("DELETE FROM mailbox WHERE expires_at_ms <= ?", (now_ms,))
        return cursor.rowcount

    def mailbox_withdraw(self, hashes: Sequence[bytes]) -> int:
        wanted = [h for h in set(hashes) if h]
        withdrawn = 0
        with self._writing("withdrawing mailbox envelopes") as db:
            for chunk in iter_chunks(wanted, IN_CHUNK):
                marks = ", ".join("?" * len(chunk))
                cursor = db.execute(f"DELETE FROM mailbox WHERE withdraw IN ({marks})", chunk)
                withdrawn += cursor.rowcount
        return withdrawn
