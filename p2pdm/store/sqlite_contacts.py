"""The SQLite store's contacts (the ``contacts`` table)."""

from __future__ import annotations

import json
from typing import Any, Final, cast

from p2pdm.core.eventlog import contact_added
from p2pdm.core.identity import PeerId
from p2pdm.core.model import Contact
from p2pdm.store.base import (
    contact_name_key,
)
from p2pdm.store.database import NOT_READ
from p2pdm.store.sqlite_api import insert_event
from p2pdm.store.sqlite_tables import Tables

__all__ = ["ContactTables"]

_CONTACT_COLUMNS: Final = (
    "peer_id, name, added_at_ms, bundle, addrs, last_seen_ms, verified, blocked, name_from_invite"
)


#: What a contact is read as: its ``blocked`` flag comes from ``blocked_peers``.
_CONTACT_SELECT: Final = _CONTACT_COLUMNS.replace(
    "blocked,", "EXISTS (SELECT 1 FROM blocked_peers b WHERE b.peer_id = contacts.peer_id),"
)


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


class ContactTables(Tables):
    """Contacts of a :class:`~p2pdm.store.sqlite.SQLiteStore`."""

    def put_contact(self, contact: Contact) -> None:
        """Insert or replace; a new contact makes a ``contact.added`` event."""
        with self._writing(f"saving contact {contact.peer_id.short()}") as db:
            self._hot.contacts.pop(contact.peer_id.raw, None)
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
                insert_event(db, self._event_caps, contact_added(contact), self._hot)
        if new:
            self._notify()

    def get_contact(self, peer: PeerId) -> Contact | None:
        """The contact, or None; read once until a write changes it (every
        send and every received envelope asks)."""
        found = self._hot.contacts.get(peer.raw, NOT_READ)  # one lookup: another thread may clear
        if found is not NOT_READ and not self._hot.settling:
            return cast("Contact | None", found)
        with self._reading(f"reading contact {peer.short()}") as db:
            row = db.execute(
                f"SELECT {_CONTACT_SELECT} FROM contacts WHERE peer_id = ?", (peer.raw,)
            ).fetchone()
            found = None if row is None else _contact(row)
            self._hot.remember_contact(peer.raw, found)  # frozen: safe to hand out again
        return found

    def find_contact_by_name(self, name: str) -> Contact | None:
        """The contact of that name, ignoring case; the earliest added if several share it."""
        with self._reading("looking up a contact by name") as db:
            row = db.execute(
                f"SELECT {_CONTACT_SELECT} FROM contacts WHERE name_key = ? "
                "ORDER BY added_at_ms, peer_id LIMIT 1",
                (contact_name_key(name),),
            ).fetchone()
        return None if row is None else _contact(row)

    def list_contacts(self) -> list[Contact]:
        """Every contact, by name."""
        with self._reading("listing contacts") as db:
            rows = db.execute(
                f"SELECT {_CONTACT_SELECT} FROM contacts ORDER BY name_key, peer_id"
            ).fetchall()
        return [_contact(row) for row in rows]

    def delete_contact(self, peer: PeerId) -> bool:
        with self._writing(f"deleting contact {peer.short()}") as db:
            self._hot.contacts.pop(peer.raw, None)
            cursor = db.execute("DELETE FROM contacts WHERE peer_id = ?", (peer.raw,))
        return cursor.rowcount > 0
