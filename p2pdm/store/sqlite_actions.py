"""The SQLite store's message actions: reactions, edits, unsends, deletions, held actions.

How this works: a reaction is one row per (message, peer) in ``reactions``;
an empty emoji is a reaction taken back, kept so that an older reaction
arriving late cannot come back (the newer signed time wins, then the larger
emoji, so every order of arrival ends the same). An edit replaces the body
and sets ``edited_at_ms`` only if it is newer (the same way: time, then
body). :func:`erase_body` (:meth:`ActionTables.erase_message_body`) is the
one place a message's text is removed from everywhere it lives here: its
body (the search triggers drop its words), reactions and held actions; an
unsent, deleted or expired message goes through it.
Actions whose target has not arrived wait in ``held_actions``, bounded per
sender and in all (the oldest dropped and counted) and in time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from p2pdm.core import cbor
from p2pdm.core.actions import Action, HeldAction, held_expired
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import decode_stored, encode_body
from p2pdm.limits import HELD_ACTION_TTL_MS, MAX_HELD_ACTIONS, MAX_HELD_ACTIONS_PER_PEER
from p2pdm.store.base import Reactions, is_unread, iter_chunks
from p2pdm.store.sqlite_api import add_to_counter
from p2pdm.store.sqlite_messages import MESSAGE_COLUMNS, message_row
from p2pdm.store.sqlite_outbox import withdraw_deposits
from p2pdm.store.sqlite_tables import IN_CHUNK, Tables

__all__ = ["ActionTables", "erase_body"]

_HELD_COLUMNS = "id, sender, conversation_id, kind, body, sent_at_ms, held_at_ms, expires_at_ms"


def _held(row: Any) -> HeldAction | None:
    mid, sender, conversation, kind, body, sent, held, expires = row
    decoded = decode_stored(kind, bytes(body))
    if decoded is None:
        return None
    action = Action(bytes(mid), PeerId(sender), conversation, sent, decoded)
    return HeldAction(action, held, expires)


def _drop_expired(db: Any, now_ms: int) -> int:
    """In the caller's write: delete the held actions past their wait; how many."""
    cursor = db.execute(
        "DELETE FROM held_actions WHERE held_at_ms < ? OR expires_at_ms < ?",
        (now_ms - HELD_ACTION_TTL_MS, now_ms),
    )
    return int(cursor.rowcount)


def erase_body(db: Any, message_id: bytes) -> bool:
    """In the caller's write: erase a message's body (its words leave the search
    index by trigger), its reactions and the actions held for it, and release
    its files (the node deletes blobs no message carries: MediaLibrary.collect);
    True if the message exists."""
    cursor = db.execute("UPDATE messages SET body = x'' WHERE id = ?", (message_id,))
    db.execute("DELETE FROM reactions WHERE message_id = ?", (message_id,))
    db.execute("DELETE FROM held_actions WHERE target = ?", (message_id,))
    db.execute("DELETE FROM blob_refs WHERE message_id = ?", (message_id,))
    return bool(cursor.rowcount > 0)


def _delete(db: Any, message_id: bytes) -> bool:
    row = db.execute(
        f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
    ).fetchone()
    if row is None:
        return False
    message = message_row(row)
    erase_body(db, message_id)
    for table in ("message_recipients", "status_history"):
        db.execute(f"DELETE FROM {table} WHERE message_id = ?", (message_id,))
    db.execute("DELETE FROM messages WHERE id = ?", (message_id,))
    cid = message.conversation_id
    (newest,) = db.execute(
        "SELECT max(seq) FROM messages WHERE conversation_id = ?", (cid,)
    ).fetchone()
    if newest is None:
        db.execute("DELETE FROM conversations WHERE id = ?", (cid,))
    else:
        db.execute(
            "UPDATE conversations SET last_seq = ?, unread = max(0, unread - ?) WHERE id = ?",
            (newest, int(is_unread(message)), cid),
        )
    return True


class ActionTables(Tables):
    """Message actions of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def set_reaction(self, message_id: bytes, peer: PeerId, emoji: str, at_ms: int) -> bool:
        """``peer``'s reaction to the message is ``emoji`` ('' takes it back) if
        newer than the one stored; returns True if it changed."""
        with self._writing(f"reacting to message {message_id.hex()}") as db:
            old = db.execute(
                "SELECT emoji, at_ms FROM reactions WHERE message_id = ? AND peer = ?",
                (message_id, peer.raw),
            ).fetchone()
            if old is not None and (old[1], old[0]) >= (at_ms, emoji):
                return False
            db.execute(
                "INSERT INTO reactions (message_id, peer, emoji, at_ms) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (message_id, peer) DO UPDATE SET emoji = excluded.emoji, "
                "at_ms = excluded.at_ms",
                (message_id, peer.raw, emoji, at_ms),
            )
        return (old is None and emoji != "") or (old is not None and old[0] != emoji)

    def reactions(self, message_ids: Sequence[bytes]) -> dict[bytes, Reactions]:
        """The reactions of each message that has some: emoji → peers, in peer order."""
        found: dict[bytes, Reactions] = {}
        with self._reading("reading reactions") as db:
            for chunk in iter_chunks(list(message_ids), IN_CHUNK):
                marks = ", ".join("?" * len(chunk))
                for mid, peer, emoji in db.execute(
                    "SELECT message_id, peer, emoji FROM reactions "
                    f"WHERE message_id IN ({marks}) AND emoji != '' ORDER BY message_id, peer",
                    chunk,
                ):
                    found.setdefault(bytes(mid), {}).setdefault(emoji, []).append(PeerId(peer))
        return found

    def edit_message_body(self, message_id: bytes, body: bytes, edited_at_ms: int) -> bool:
        """Replace the body of a message not unsent if this edit is newer (a later
        time, then the larger body: every order of arrival ends the same); True if it did."""
        with self._writing(f"editing message {message_id.hex()}") as db:
            cursor = db.execute(
                "UPDATE messages SET body = ?, edited_at_ms = ? WHERE id = ? AND unsent = 0 "
                "AND (edited_at_ms IS NULL OR edited_at_ms < ? OR (edited_at_ms = ? AND body < ?))",
                (body, edited_at_ms, message_id, edited_at_ms, edited_at_ms, body),
            )
        return cursor.rowcount > 0

    def erase_message_body(self, message_id: bytes) -> bool:
        """Remove the message's text from everywhere it lives in the store: its
        body, its reactions, the actions held for it (an edit holds a text); its
        attachments are released. The row stays. True if the message exists."""
        with self._writing(f"erasing message {message_id.hex()}") as db:
            erased = erase_body(db, message_id)
        return erased

    def unsend_message(self, message_id: bytes) -> bool:
        """Erase the message's body and mark it unsent; True if it was not already."""
        with self._writing(f"unsending message {message_id.hex()}") as db:
            row = db.execute("SELECT unsent FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None or row[0]:
                return False
            erase_body(db, message_id)
            db.execute("UPDATE messages SET unsent = 1 WHERE id = ?", (message_id,))
        return True

    def delete_message(self, message_id: bytes) -> bool:
        """Delete a message here only (its statuses and reactions too); True if it existed."""
        with self._writing(f"deleting message {message_id.hex()}") as db:
            self._hot.conversations.clear()  # its conversation's row changes or goes
            return _delete(db, message_id)

    def delete_conversation(self, conversation_id: bytes) -> int:
        """Delete a conversation and its messages here only; returns how many messages."""
        with self._writing("deleting a conversation") as db:
            self._hot.conversations.clear()
            ids = [
                bytes(mid)
                for (mid,) in db.execute(
                    "SELECT id FROM messages WHERE conversation_id = ?", (conversation_id,)
                )
            ]
            for mid in ids:
                _delete(db, mid)
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            db.execute("DELETE FROM held_actions WHERE conversation_id = ?", (conversation_id,))
        return len(ids)

    def hold_action(self, held: HeldAction) -> None:
        """Keep an action until its target arrives; drops expired ones and the
        oldest over the caps (counted in ``held_actions_dropped``)."""
        action = held.action
        with self._writing(f"holding action {action.id.hex()}") as db:
            self._hot.no_held = False
            dropped = _drop_expired(db, held.held_at_ms)
            db.execute(
                "INSERT OR IGNORE INTO held_actions (id, target, sender, conversation_id, kind, "
                "body, sent_at_ms, held_at_ms, expires_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    action.id,
                    action.target,
                    action.sender.raw,
                    action.conversation_id,
                    action.kind,
                    cbor.encode(encode_body(action.body)),
                    action.sent_at_ms,
                    held.held_at_ms,
                    held.expires_at_ms,
                ),
            )
            for where, params, cap in (
                ("sender = ?", (action.sender.raw,), MAX_HELD_ACTIONS_PER_PEER),
                ("1", (), MAX_HELD_ACTIONS),
            ):
                dropped += db.execute(
                    "DELETE FROM held_actions WHERE n IN (SELECT n FROM held_actions "
                    f"WHERE {where} ORDER BY n DESC LIMIT -1 OFFSET ?)",
                    (*params, cap),
                ).rowcount
            if dropped:
                add_to_counter(db, "held_actions_dropped", dropped)

    def take_held(self, target: bytes, now_ms: int) -> list[HeldAction]:
        """Remove and return the live actions held for ``target``, oldest first
        (expired ones are dropped and counted).

        Asked for every message stored: once the table was found empty, no
        statement until an action is held again."""
        if self._hot.no_held and not self._hot.settling:
            return []
        with self._writing(f"taking actions held for {target.hex()}") as db:
            # One statement (nearly always deleting nothing): RETURNING gives no
            # order, so the rows are put in arrival order here.
            taken = db.execute(
                f"DELETE FROM held_actions WHERE target = ? RETURNING n, {_HELD_COLUMNS}",
                (target,),
            ).fetchall()
            if not taken:  # once, then not again while it stays empty
                (empty,) = db.execute("SELECT NOT EXISTS (SELECT 1 FROM held_actions)").fetchone()
                self._hot.no_held = bool(empty)
            rows = [row[1:] for row in sorted(taken, key=lambda row: int(row[0]))]
            held = [h for h in map(_held, rows) if h is not None]
            live = [h for h in held if not held_expired(h, now_ms)]
            if len(rows) > len(live):
                add_to_counter(db, "held_actions_dropped", len(rows) - len(live))
        return live

    def drop_expired_held(self, now_ms: int) -> int:
        """Drop (and count) the held actions that may wait no longer; returns how many."""
        with self._writing("dropping expired held actions") as db:
            dropped = _drop_expired(db, now_ms)
            if dropped:
                add_to_counter(db, "held_actions_dropped", dropped)
        return dropped

    def held_count(self) -> int:
        with self._reading("counting held actions") as db:
            (count,) = db.execute("SELECT count(*) FROM held_actions").fetchone()
        return int(count)

    def count_refused_action(self) -> None:
        """Count one action refused on receipt (``actions_refused`` in counts)."""
        with self._writing("counting a refused action") as db:
            add_to_counter(db, "actions_refused", 1)

    def remove_outbox_of(self, message_id: bytes) -> int:
        """Drop the envelopes of a message not yet acknowledged; returns how many."""
        with self._writing(f"dropping envelopes of {message_id.hex()}") as db:
            ids = [
                bytes(e)
                for (e,) in db.execute(
                    "SELECT envelope_id FROM outbox WHERE message_id = ?", (message_id,)
                )
            ]
            for envelope_id in ids:
                db.execute("DELETE FROM outbox WHERE envelope_id = ?", (envelope_id,))
                withdraw_deposits(db, envelope_id)
        return len(ids)
