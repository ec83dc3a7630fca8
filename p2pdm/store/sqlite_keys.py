"""The SQLite store's settings, replay protection, sessions and own prekeys."""

from __future__ import annotations

import copy
from typing import Final

from p2pdm.core.identity import PeerId
from p2pdm.store.base import decode_setting, encode_setting
from p2pdm.store.database import SAVE_SESSION
from p2pdm.store.sqlite_tables import Tables

__all__ = ["KeyTables"]

#: A setting read and found absent.
_ABSENT: Final = object()

#: The integers SQLite stores (a signed 64-bit integer).
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


class KeyTables(Tables):
    """Settings, seen ids, sessions and prekeys of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    # --- settings --------------------------------------------------------

    def get_setting(self, key: str, default: object = None) -> object:
        try:
            if self._hot.settling:  # what was read may still be rolled back
                raise KeyError(key)
            value = self._settings_read[key]
        except KeyError:
            with self._reading(f"reading setting {key!r}") as db:
                row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            value = self._settings_read[key] = _ABSENT if row is None else decode_setting(row[0])
        return default if value is _ABSENT else copy.deepcopy(value)

    def set_setting(self, key: str, value: object) -> None:
        """Store a JSON-able value; raises StoreError for anything else."""
        text = encode_setting(key, value)
        self._settings_read.pop(key, None)
        with self._writing(f"saving setting {key!r}") as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )
        self._settings_read.pop(key, None)

    def settings(self) -> dict[str, object]:
        with self._reading("reading settings") as db:
            rows = db.execute("SELECT key, value FROM settings ORDER BY key").fetchall()
        return {key: decode_setting(value) for key, value in rows}

    # --- replay protection -----------------------------------------------

    def has_seen(self, message_id: bytes) -> bool:
        with self._reading("checking a seen message id") as db:
            row = db.execute("SELECT 1 FROM seen_ids WHERE id = ?", (message_id,)).fetchone()
        return row is not None

    def mark_seen(self, message_id: bytes, at_ms: int) -> None:
        """Remember an accepted id; seeing it again extends how long it is remembered."""
        with self._writing_one("recording a seen message id") as db:
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
            due = self._hot.sessions_due
            if due and peer.raw in due:  # saved in the open group
                return due[peer.raw][0]
            row = db.execute("SELECT state FROM sessions WHERE peer = ?", (peer.raw,)).fetchone()
        return None if row is None else bytes(row[0])

    def put_session(self, peer: PeerId, state: bytes, at_ms: int) -> None:
        """Save at once, or inside a group when the group commits (the same
        commit: stored with the messages it encrypted or decrypted, or not at all)."""
        with self._writing_one(f"saving session with {peer.short()}") as db:
            due = self._hot.sessions_due
            if due is None:
                db.execute(SAVE_SESSION, (peer.raw, state, at_ms))
                return
            if not _INT64_MIN <= at_ms <= _INT64_MAX:  # as SQLite would refuse it, now
                raise OverflowError(at_ms)
            due[peer.raw] = (bytes(state), at_ms)

    def delete_session(self, peer: PeerId) -> None:
        with self._writing(f"deleting session with {peer.short()}") as db:
            if self._hot.sessions_due:
                self._hot.sessions_due.pop(peer.raw, None)
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
