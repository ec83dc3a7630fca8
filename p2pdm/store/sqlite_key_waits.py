"""Messages waiting for their recipient's prekeys in SQLite (see :mod:`p2pdm.store.key_waits`)."""

from __future__ import annotations

from p2pdm.core.identity import PeerId
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_KEY_WAITS
from p2pdm.store.key_waits import KeyWait
from p2pdm.store.sqlite_tables import Tables

__all__ = ["KeyWaitTables"]

_COLUMNS = "message_id, peer, held_at_ms, expires_at_ms"
#: The waits with their messages' seq: the order the messages were written
#: (ids are random, and several are written in one millisecond).
_IN_ORDER = (
    "SELECT w.message_id, w.peer, w.held_at_ms, w.expires_at_ms "
    "FROM key_waits w JOIN messages m ON m.id = w.message_id"
)


class KeyWaitTables(Tables):
    def hold_for_keys(self, wait: KeyWait) -> None:
        with self._writing("keeping a message waiting for prekeys") as db:
            (count,) = db.execute(
                "SELECT count(*) FROM key_waits WHERE message_id != ?", (wait.message_id,)
            ).fetchone()
            if count >= MAX_KEY_WAITS:
                raise StoreError(
                    f"{MAX_KEY_WAITS} messages already wait for their recipients' keys"
                )
            db.execute(
                f"INSERT OR REPLACE INTO key_waits ({_COLUMNS}) VALUES (?, ?, ?, ?)",
                (wait.message_id, wait.peer.raw, wait.held_at_ms, wait.expires_at_ms),
            )

    def key_waits(self, peer: PeerId | None = None) -> list[KeyWait]:
        with self._reading("reading messages waiting for prekeys") as db:
            if peer is None:
                rows = db.execute(
                    f"{_IN_ORDER} ORDER BY m.seq LIMIT ?", (MAX_KEY_WAITS,)
                ).fetchall()
            else:
                rows = db.execute(
                    f"{_IN_ORDER} WHERE w.peer = ? ORDER BY m.seq LIMIT ?",
                    (peer.raw, MAX_KEY_WAITS),
                ).fetchall()
        return [KeyWait(r[0], PeerId(r[1]), r[2], r[3]) for r in rows]

    def drop_key_wait(self, message_id: bytes) -> bool:
        with self._writing("dropping a message's wait for prekeys") as db:
            cursor = db.execute("DELETE FROM key_waits WHERE message_id = ?", (message_id,))
        return cursor.rowcount > 0
