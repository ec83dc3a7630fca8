"""The in-memory store's contacts."""

from __future__ import annotations

from dataclasses import replace

from p2pdm.core.eventlog import contact_added
from p2pdm.core.identity import PeerId
from p2pdm.core.model import Contact
from p2pdm.store.base import (
    contact_name_key,
)
from p2pdm.store.memory_state import Dicts

__all__ = ["ContactDicts"]


class ContactDicts(Dicts):
    """Contacts of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def put_contact(self, contact: Contact) -> None:
        """Insert or replace; a new contact makes a ``contact.added`` event."""
        state = self._live()
        new = contact.peer_id not in state.contacts
        state.contacts[contact.peer_id] = replace(contact, addrs=tuple(contact.addrs))
        if new:
            self._log(contact_added(contact))

    def get_contact(self, peer: PeerId) -> Contact | None:
        contact = self._live().contacts.get(peer)
        return None if contact is None else self._with_block(contact)

    def _with_block(self, contact: Contact) -> Contact:
        """``contact`` with its ``blocked`` flag read from the blocked peers."""
        return replace(contact, blocked=contact.peer_id in self._live().blocked)

    def find_contact_by_name(self, name: str) -> Contact | None:
        """The contact of that name, ignoring case; the earliest added if several share it."""
        key = contact_name_key(name)
        matches = [c for c in self._live().contacts.values() if contact_name_key(c.name) == key]
        found = min(matches, key=lambda c: (c.added_at_ms, c.peer_id.raw), default=None)
        return None if found is None else self._with_block(found)

    def list_contacts(self) -> list[Contact]:
        """Every contact, by name."""
        contacts = self._live().contacts.values()
        ordered = sorted(contacts, key=lambda c: (contact_name_key(c.name), c.peer_id.raw))
        return [self._with_block(c) for c in ordered]

    def delete_contact(self, peer: PeerId) -> bool:
        return self._live().contacts.pop(peer, None) is not None
