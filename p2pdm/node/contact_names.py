"""Contact names: each name means one contact, and a PeerID is never a name.

How this works: commands and API calls name a contact by PeerID or by name.
:func:`resolve_contact` turns that text into a :class:`PeerId` once, at the
edge (the API handler, ``p2pdm token``); everything inside takes the PeerId.
Text that parses as a PeerID is always that PeerID, never a name. For a name
to mean one contact, it may not parse as a PeerID (also after NFKC
normalisation, so full-width look-alikes count) and may not equal another
contact's name compared as the store compares them (NFKC + casefold).

- A name the user chooses that breaks this is refused (:class:`NameRefused`).
- A name that arrives in an invite is the contact's own choice, so it is
  changed instead, as a chat app shows a stranger's profile name: one that
  is a PeerID is dropped for the contact's fingerprint, one that is taken
  gets the fingerprint appended (``Bob (x7Yk2pQe)``), and the caller tells
  the user. Such names are flagged (``Contact.name_from_invite``) and shown
  with the fingerprint.
- Stores written before these rules are fixed when a node opens them
  (:func:`fix_contact_names`): the contact added later gives way.
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Collection
from dataclasses import replace

from p2pdm.core.identity import PeerId
from p2pdm.core.model import Contact
from p2pdm.errors import NameRefused, NotFound, SchemaError
from p2pdm.limits import MAX_NAME_BYTES
from p2pdm.store.base import Store, contact_name_key

__all__ = [
    "check_name",
    "choose_name",
    "fingerprint",
    "fix_contact_names",
    "is_peer_id_text",
    "name_from_invite",
    "resolve_contact",
]


def fingerprint(peer: PeerId) -> str:
    """The short fingerprint shown beside names a contact gave itself (``PeerId.short``)."""
    return peer.short()


def resolve_contact(store: Store, who: str) -> PeerId:
    """The PeerId ``who`` names: a PeerID as such, else a contact's name; raises NotFound."""
    try:
        return PeerId.parse(who)
    except SchemaError:
        pass
    contact = store.find_contact_by_name(who)
    if contact is None:
        raise NotFound(f"no contact named {who[:60]!r}")
    return contact.peer_id


def is_peer_id_text(name: str) -> bool:
    """True if ``name``, as typed or NFKC-normalised, parses as a PeerID."""
    for text in dict.fromkeys((name, unicodedata.normalize("NFKC", name))):
        try:
            PeerId.parse(text)
        except SchemaError:
            continue
        return True
    return False


def check_name(name: str) -> str:
    """``name`` without surrounding blanks; raises SchemaError unless 1 to MAX_NAME_BYTES."""
    name = name.strip()
    if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise SchemaError(f"a name is 1 to {MAX_NAME_BYTES} bytes")
    return name


def _taken(contacts: Collection[Contact], peer: PeerId) -> dict[str, Contact]:
    """Name keys of every contact but ``peer``."""
    return {contact_name_key(c.name): c for c in contacts if c.peer_id != peer}


def choose_name(store: Store, peer: PeerId, name: str) -> str:
    """A name the user gives ``peer``, checked; raises SchemaError or NameRefused."""
    name = check_name(name)
    if is_peer_id_text(name):
        raise NameRefused(f"a contact name cannot be a PeerID ({name[:60]!r}); choose another")
    other = _taken(store.list_contacts(), peer).get(contact_name_key(name))
    if other is not None:
        raise NameRefused(
            f"contact {other.peer_id} is already called {other.name[:60]!r} "
            "(names are compared ignoring case); choose another name"
        )
    return name


def _fit(base: str, suffix: str) -> str:
    """``base`` cut so that ``base + suffix`` fits in MAX_NAME_BYTES."""
    while base and len((base + suffix).encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        base = base[:-1]
    return base.rstrip() + suffix


def _unambiguous(peer: PeerId, offered: str, taken: Collection[str]) -> str:
    """``offered`` if no other contact has it and it is no PeerID, else a changed name."""
    base = offered.strip()
    if not base or is_peer_id_text(base):
        base = ""
    short = fingerprint(peer)
    first = [base] if base else []
    first.append(_fit(base, f" ({short})") if base else short)
    # Each of the len(taken) + 1 numbered names is distinct, so one is free.
    numbered = (_fit(base or short, f" ({short} {n})") for n in itertools.count(2))
    for candidate in itertools.chain(first, itertools.islice(numbered, len(taken) + 1)):
        if contact_name_key(candidate) not in taken:
            return candidate
    raise AssertionError("unreachable: more names tried than are taken")  # pragma: no cover


def name_from_invite(store: Store, peer: PeerId, offered: str) -> str:
    """The name to save for ``peer`` whose invite calls it ``offered`` (see the module doc)."""
    return _unambiguous(peer, offered, _taken(store.list_contacts(), peer).keys())


def fix_contact_names(store: Store) -> list[tuple[Contact, str]]:
    """Rename contacts whose names are PeerIDs or taken by an earlier contact.

    Returns each renamed contact (as it was) with its new name.
    """
    contacts = sorted(store.list_contacts(), key=lambda c: (c.added_at_ms, c.peer_id.raw))
    taken: set[str] = set()
    renamed = []
    for contact in contacts:
        key = contact_name_key(contact.name)
        if key in taken or is_peer_id_text(contact.name):
            new = _unambiguous(contact.peer_id, contact.name, taken)
            store.put_contact(replace(contact, name=new, name_from_invite=True))
            renamed.append((contact, new))
            key = contact_name_key(new)
        taken.add(key)
    return renamed
