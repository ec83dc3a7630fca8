"""Groups in the SQLite store (:mod:`p2pdm.store.groups` says what is kept)."""

from __future__ import annotations

from p2pdm.core import cbor
from p2pdm.core.identity import PeerId
from p2pdm.errors import StoreError
from p2pdm.limits import (
    MAX_GROUP_LOG,
    MAX_GROUPS,
    MAX_HELD_GROUP_ENTRIES,
    MAX_HELD_GROUP_ENTRIES_TOTAL,
)
from p2pdm.store.groups import GroupRow
from p2pdm.store.sqlite_tables import Tables

__all__ = ["GroupTables"]

#: A member's heads as kept: a short CBOR list of hashes.
_MAX_HEADS_BYTES = 1 << 12


def _row(row: tuple[bytes, str, bytes | None, int, str]) -> GroupRow:
    gid, state, invited_by, joined, name = row
    return GroupRow(gid, state, None if invited_by is None else PeerId(invited_by), joined, name)  # type: ignore[arg-type]


_COLUMNS = "id, state, invited_by, joined_at_ms, name"


class GroupTables(Tables):
    """Groups in a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def put_group(self, group: GroupRow) -> None:
        with self._writing("saving a group") as db:
            known = db.execute("SELECT 1 FROM groups WHERE id = ?", (group.id,)).fetchone()
            if known is None:
                (count,) = db.execute("SELECT count(*) FROM groups").fetchone()
                if count >= MAX_GROUPS:
                    raise StoreError(f"at most {MAX_GROUPS} groups")
            # An upsert, not INSERT OR REPLACE: a replace deletes the row first,
            # and ON DELETE CASCADE would take the group's log and heads with it.
            db.execute(
                f"INSERT INTO groups ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO "
                "UPDATE SET state = excluded.state, invited_by = excluded.invited_by, "
                "joined_at_ms = excluded.joined_at_ms, name = excluded.name",
                (
                    group.id,
                    group.state,
                    None if group.invited_by is None else group.invited_by.raw,
                    group.joined_at_ms,
                    group.name,
                ),
            )

    def get_group(self, group_id: bytes) -> GroupRow | None:
        with self._reading("reading a group") as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM groups WHERE id = ?", (group_id,)).fetchone()
        return None if row is None else _row(row)

    def list_groups(self) -> list[GroupRow]:
        with self._reading("listing groups") as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM groups ORDER BY joined_at_ms, id").fetchall()
        return [_row(r) for r in rows]

    def delete_group(self, group_id: bytes) -> bool:
        with self._writing("deleting a group") as db:
            db.execute("DELETE FROM group_entries WHERE group_id = ?", (group_id,))
            db.execute("DELETE FROM group_peer_heads WHERE group_id = ?", (group_id,))
            db.execute("DELETE FROM group_held WHERE group_id = ?", (group_id,))
            return bool(db.execute("DELETE FROM groups WHERE id = ?", (group_id,)).rowcount)

    def add_group_entries(self, group_id: bytes, entries: list[tuple[bytes, bytes]]) -> int:
        with self._writing("keeping group changes") as db:
            (count,) = db.execute(
                "SELECT count(*) FROM group_entries WHERE group_id = ?", (group_id,)
            ).fetchone()
            added = 0
            for digest, encoded in entries:
                if db.execute(
                    "SELECT 1 FROM group_entries WHERE group_id = ? AND hash = ?",
                    (group_id, digest),
                ).fetchone():
                    continue
                if count + added >= MAX_GROUP_LOG:
                    raise StoreError(f"a group's log holds at most {MAX_GROUP_LOG} changes")
                db.execute(
                    "INSERT INTO group_entries (group_id, hash, entry) VALUES (?, ?, ?)",
                    (group_id, digest, encoded),
                )
                added += 1
            return added

    def group_entries(self, group_id: bytes) -> list[bytes]:
        with self._reading("reading group changes") as db:
            rows = db.execute(
                "SELECT entry FROM group_entries WHERE group_id = ? ORDER BY seq", (group_id,)
            ).fetchall()
        return [r[0] for r in rows]

    def hold_group_entries(
        self, group_id: bytes, entries: list[tuple[bytes, bytes]], now_ms: int
    ) -> None:
        if not entries:
            return
        with self._writing("keeping held group changes") as db:
            db.executemany(
                "INSERT OR IGNORE INTO group_held (group_id, hash, entry, held_at_ms) "
                "VALUES (?, ?, ?, ?)",
                [(group_id, digest, encoded, now_ms) for digest, encoded in entries],
            )
            # The oldest past each cap go (ties: by hash, as every order must be total).
            db.execute(
                "DELETE FROM group_held WHERE group_id = ? AND hash NOT IN (SELECT hash "
                "FROM group_held WHERE group_id = ? ORDER BY held_at_ms DESC, hash DESC LIMIT ?)",
                (group_id, group_id, MAX_HELD_GROUP_ENTRIES),
            )
            (total,) = db.execute("SELECT count(*) FROM group_held").fetchone()
            if total > MAX_HELD_GROUP_ENTRIES_TOTAL:
                db.execute(
                    "DELETE FROM group_held WHERE (group_id, hash) IN (SELECT group_id, hash "
                    "FROM group_held ORDER BY held_at_ms, group_id, hash LIMIT ?)",
                    (total - MAX_HELD_GROUP_ENTRIES_TOTAL,),
                )

    def held_group_entries(self, group_id: bytes, since_ms: int) -> list[bytes]:
        with self._reading("reading held group changes") as db:
            rows = db.execute(
                "SELECT entry FROM group_held WHERE group_id = ? AND held_at_ms >= ? "
                "ORDER BY held_at_ms, hash",
                (group_id, since_ms),
            ).fetchall()
        return [r[0] for r in rows]

    def drop_held_group_entries(self, group_id: bytes, hashes: list[bytes]) -> None:
        if not hashes:
            return
        with self._writing("dropping held group changes") as db:
            db.executemany(
                "DELETE FROM group_held WHERE group_id = ? AND hash = ?",
                [(group_id, digest) for digest in hashes],
            )

    def drop_stale_held_group_entries(self, before_ms: int) -> int:
        with self._writing("dropping stale held group changes") as db:
            return db.execute("DELETE FROM group_held WHERE held_at_ms < ?", (before_ms,)).rowcount

    def accept_conversation(self, conversation_id: bytes) -> int:
        with self._writing("accepting a conversation's requests") as db:
            self._hot.conversations.pop(conversation_id, None)
            db.execute("UPDATE conversations SET request = 0 WHERE id = ?", (conversation_id,))
            cursor = db.execute(
                "UPDATE messages SET request = 0 WHERE conversation_id = ? AND request = 1",
                (conversation_id,),
            )
        return cursor.rowcount

    def set_peer_heads(self, group_id: bytes, peer: PeerId, heads: tuple[bytes, ...]) -> None:
        with self._writing("remembering a member's heads") as db:
            db.execute(
                "INSERT OR REPLACE INTO group_peer_heads (group_id, peer, heads) VALUES (?, ?, ?)",
                (group_id, peer.raw, cbor.encode(list(heads))),
            )

    def get_peer_heads(self, group_id: bytes, peer: PeerId) -> tuple[bytes, ...]:
        with self._reading("reading a member's heads") as db:
            row = db.execute(
                "SELECT heads FROM group_peer_heads WHERE group_id = ? AND peer = ?",
                (group_id, peer.raw),
            ).fetchone()
        return () if row is None else tuple(cbor.decode(row[0], _MAX_HEADS_BYTES))
