"""The node's own profile, and finding the people who claim a handle.

How this works: :class:`Profiles` keeps the profile in the store (none until
the person sets one: publishing is opt-in) and calls ``on_change`` after
every change, so the network services republish the signed record and start
or stop providing the handle's key. :meth:`Profiles.find` asks the network
(``lookup``, set while the node runs: :mod:`p2pdm.services.directory`) for
the checked claims of a handle, notes when each claim was first seen, and
returns at most MAX_HANDLE_CLAIMANTS :class:`Claimant` s ordered by
:func:`~p2pdm.core.profile.rank_claimants`: contacts first, then the claims
seen longest. Claimants seen before are asked again even if this lookup's
providers did not name them, so a flood of fresh claims cannot hide them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from p2pdm.core.identity import PeerId, short_fingerprint
from p2pdm.core.profile import (
    Profile,
    check_bio,
    check_display_name,
    normalise_handle,
    rank_claimants,
)
from p2pdm.errors import NotConnected
from p2pdm.limits import MAX_HANDLE_CLAIMANTS, MAX_HANDLE_SIGHTINGS
from p2pdm.node.avatar import make_avatar
from p2pdm.store.base import Store

__all__ = ["UNCHANGED", "Claimant", "Lookup", "Profiles", "Relation"]

log = logging.getLogger("p2pdm.node.profiles")

#: What a claimant is to us. (Contacts of contacts are not shown: a node
#: publishes nothing about its contacts.)
Relation = Literal["self", "contact", "stranger"]

#: Looks up the valid claims of a normalised handle in the network, asking
#: also the given claimants seen before; returns each claimant's profile.
Lookup = Callable[[str, Sequence[PeerId]], Awaitable[dict[PeerId, Profile]]]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


#: A profile field left as it is by :meth:`Profiles.update`.
UNCHANGED: Final = _Unchanged()


@dataclass(frozen=True, slots=True)
class Claimant:
    """One node that claims a handle, as a lookup found and checked it."""

    peer: PeerId
    profile: Profile
    #: When this node first saw the claim (ms since the epoch).
    first_seen_ms: int
    relation: Relation
    #: The first ten digits of the claimant's half of the safety number.
    fingerprint: str


class Profiles:
    """The node's profile (opt-in) and handle lookups."""

    def __init__(self, store: Store, peer: PeerId, now_ms: Callable[[], int]) -> None:
        self.store = store
        self.peer = peer
        self.now_ms = now_ms
        #: Called after the profile changed (the network services republish).
        self.on_change: Callable[[], None] = lambda: None
        #: Finds a handle's claims in the network (set while the node runs).
        self.lookup: Lookup | None = None

    def current(self) -> Profile | None:
        """The profile this node publishes, or None (nothing about it is findable)."""
        return self.store.get_profile()

    def update(
        self,
        *,
        name: str | _Unchanged = UNCHANGED,
        handle: str | _Unchanged = UNCHANGED,
        bio: str | _Unchanged = UNCHANGED,
        avatar: bytes | _Unchanged = UNCHANGED,
    ) -> Profile | None:
        """Change some fields ('' or b'' clears one); returns the profile, None if now empty.

        ``avatar`` is any picture (:func:`~p2pdm.node.avatar.make_avatar`).
        Raises ProfileRefused, changing nothing, if any value is refused.
        """
        old = self.current() or Profile()
        new = Profile(
            check_display_name(name) if isinstance(name, str) else old.name,
            (normalise_handle(handle) if handle.strip() else "")
            if isinstance(handle, str)
            else old.handle,
            check_bio(bio) if isinstance(bio, str) else old.bio,
            (make_avatar(avatar) if avatar else b"") if isinstance(avatar, bytes) else old.avatar,
        )
        if new != old:
            self.store.put_profile(new, self.now_ms())
            self.on_change()
        return None if new.empty else new

    def clear(self) -> None:
        """Stop publishing a profile: the next record carries none, the handle is not provided."""
        if self.current() is not None:
            self.store.put_profile(None, self.now_ms())
            self.on_change()

    async def find(self, handle: str) -> tuple[str, list[Claimant]]:
        """The normalised handle and its claimants, likeliest first (see the module doc).

        Raises ProfileRefused for a handle that cannot be claimed, NotConnected
        when the node is not on the network.
        """
        normalised = normalise_handle(handle)
        if self.lookup is None:
            raise NotConnected("the node is not on the network: it cannot look handles up now")
        known = self.store.handle_claimants(normalised, MAX_HANDLE_CLAIMANTS)
        found = await self.lookup(normalised, known)
        first_seen = self.store.note_handle_claims(
            normalised, list(found), self.now_ms(), MAX_HANDLE_SIGHTINGS
        )
        contacts = {peer for peer in found if self._is_contact(peer)}
        shown = rank_claimants(list(found), first_seen, contacts)
        return normalised, [
            Claimant(
                peer,
                found[peer],
                first_seen[peer],
                "self" if peer == self.peer else "contact" if peer in contacts else "stranger",
                short_fingerprint(peer),
            )
            for peer in shown
        ]

    def _is_contact(self, peer: PeerId) -> bool:
        contact = self.store.get_contact(peer)
        return contact is not None and not contact.blocked
