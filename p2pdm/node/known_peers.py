"""Peers that are not contacts yet not strangers: whom this node wrote to, and
the other members of the groups it accepted.

How this works: :meth:`Messenger.receive` asks for every envelope from a
non-contact whether its sender is answering (this node wrote to it in their
one-to-one conversation, docs/protocol.md §18.2) or shares an accepted group
(§19.4): such a sender needs no request stamp and is not held to the
strangers' rate. Both answers come from the store, so they are kept here:
the co-members as one set, made again after any group change, and the
"wrote to" answer per peer (bounded, least recently used dropped first),
dropped for a peer when something is sent to it and for everyone when
messages are deleted or erased, or the store is reloaded after a failed
commit. A dropped answer is only read again from the store: the store stays
the truth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from p2pdm.core.identity import PeerId
from p2pdm.core.model import direct_conversation_id
from p2pdm.limits import MAX_CACHED_KNOWN_PEERS
from p2pdm.store.base import Store

__all__ = ["KnownPeers"]


class KnownPeers:
    """Whom ``me`` wrote to, and its accepted groups' other members, cached."""

    def __init__(self, me: PeerId, store: Store) -> None:
        self.me = me
        self.store = store
        #: Every other member of the groups this node accepted, read from the
        #: store (set by the node once it has groups).
        self.members_of: Callable[[], set[PeerId]] = set
        self._members: frozenset[PeerId] | None = None
        #: Whether this node wrote to each peer (True and False both kept).
        self._wrote: OrderedDict[PeerId, bool] = OrderedDict()

    def co_member(self, peer: PeerId) -> bool:
        """True if ``peer`` is in a group this node accepted."""
        return peer in self.members()

    def members(self) -> frozenset[PeerId]:
        """Every other member of the groups this node accepted."""
        if self._members is None:
            self._members = frozenset(self.members_of())
        return self._members

    def wrote_to(self, peer: PeerId) -> bool:
        """True if the one-to-one conversation with ``peer`` holds a message of ours."""
        found = self._wrote.get(peer)
        if found is not None:
            self._wrote.move_to_end(peer)
            return found
        found = self.store.conversation_written(direct_conversation_id(self.me, peer))
        self._wrote[peer] = found
        while len(self._wrote) > MAX_CACHED_KNOWN_PEERS:
            self._wrote.popitem(last=False)
        return found

    def sent(self, peer: PeerId) -> None:
        """Something was stored for ``peer``: its answer is read again."""
        self._wrote.pop(peer, None)

    def groups_changed(self) -> None:
        """A group's members or this node's part in it changed."""
        self._members = None

    def refresh(self) -> None:
        """Messages were deleted or erased, or the store reloaded: read it all again."""
        self._wrote.clear()
        self._members = None
