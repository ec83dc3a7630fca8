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
        return self._live().contacts.get(peer)

    def find_contact_by_name(self, name: str) -> Contact | None:
        """The contact of that name, ignoring case; the earliest added if several share it."""
        key = contact_name_key(name)
        matches = [c for c in self._live().contacts.values() if contact_name_key(c.name) == key]
        return min(matches, key=lambda c: (c.added_at_ms, c.peer_id.raw), default=None)

    def list_contacts(self) -> list[Contact]:
        """Every contact, by name."""
        contacts = self._live().contacts.values()
        return sorted(contacts, key=lambda c: (contact_name_key(c.name), c.peer_id.raw))

    def delete_contact(self, peer: PeerId) -> bool:
        return self._live().contacts.pop(peer, None) is not None
