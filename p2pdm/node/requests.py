"""Blocking peers and answering message requests: the node's side.

How this works: :class:`RequestsAndBlocks` is a part of
:class:`~p2pdm.node.node.Node` (a mixin over the node's store, messenger
and clock). Blocking records the peer in the store (``contact.blocked``)
and takes back what still waits in the outbox for it, so not even a queued
receipt reaches it; from then on the messenger drops its envelopes before
reading them and refuses to send to it (docs/protocol.md §18.1). A message
request is what a stranger sent; accepting it is adding the contact,
declining deletes it (the sender is told nothing), blocking blocks and
deletes. :meth:`RequestsAndBlocks.is_accepted` is the one question other
features ask before they show a peer anything (read receipts, typing,
attachments).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import decode_stored
from p2pdm.core.model import DeliveryStatus, Direction
from p2pdm.core.request_stamp import request_name_of
from p2pdm.errors import NotFound, SchemaError
from p2pdm.limits import MIN_PEER_PREFIX_CHARS
from p2pdm.node.contact_names import fingerprint, name_from_invite
from p2pdm.store.base import BlockedPeer, RequestSummary, Store

if TYPE_CHECKING:
    from p2pdm.node.messenger import Messenger
    from p2pdm.node.node import AddedContact

__all__ = ["MIN_PEER_PREFIX_CHARS", "RequestsAndBlocks", "accepted"]

#: The status note of a message that was waiting when its recipient was blocked.
BLOCKED_NOTE = "not sent: you blocked them"


def accepted(store: Store, peer: PeerId) -> bool:
    """True if ``peer`` is a contact and not blocked (:meth:`RequestsAndBlocks.is_accepted`)."""
    return store.get_contact(peer) is not None and not store.is_blocked(peer)


def _names(text: str, peer: PeerId) -> bool:
    """True if ``text`` is ``peer``'s fingerprint (``~`` optional, any case) or a
    start of its PeerID of MIN_PEER_PREFIX_CHARS characters or more."""
    return text.casefold().removeprefix("~") == fingerprint(peer).casefold() or (
        len(text) >= MIN_PEER_PREFIX_CHARS and str(peer).startswith(text)
    )


class RequestsAndBlocks:
    """Blocked peers and message requests of a node."""

    store: Store
    messenger: Messenger
    now_ms: Callable[[], int]

    @property
    def peer_id(self) -> PeerId:
        raise NotImplementedError  # the node's

    def add_contact_by_peer_id(self, peer_id: str, name: str | None = None) -> AddedContact:
        raise NotImplementedError  # the node's

    # --- blocking -------------------------------------------------------------

    def is_blocked(self, peer: PeerId) -> bool:
        return self.store.is_blocked(peer)

    def is_accepted(self, peer: PeerId) -> bool:
        """True if ``peer`` is a contact and not blocked: only then does it get
        read receipts, typing signals and attachments."""
        return accepted(self.store, peer)

    def blocked(self) -> list[BlockedPeer]:
        return self.store.list_blocked()

    def block(self, peer: PeerId) -> bool:
        """Block ``peer`` (contact or stranger); False if it was already blocked.

        What waits in the outbox for it, or for its keys, is dropped and its
        messages marked ``failed``; a stranger's pending message request is deleted, as
        :meth:`block_request` does. Raises SchemaError for this node's own
        PeerID, StoreError past MAX_BLOCKED_PEERS.
        """
        return self._block(peer)[0]

    def _block(self, peer: PeerId) -> tuple[bool, int]:
        """:meth:`block`, and how many request messages of ``peer`` it deleted."""
        if peer == self.peer_id:
            raise SchemaError("you cannot block yourself")
        now = self.now_ms()
        deleted = 0
        with self.store.transaction():
            new = self.store.block_peer(peer, now)
            if new:
                for item in self.store.outbox_for(peer):
                    self.store.remove_outbox(item.envelope_id)
                    message = self.store.get_message(item.message_id)
                    if message is not None and message.direction is Direction.OUT:
                        self.store.set_status(
                            message.id, DeliveryStatus.FAILED, now, BLOCKED_NOTE, recipient=peer
                        )
                for wait in self.store.key_waits(peer):  # not encrypted yet: fail them too
                    self.store.drop_key_wait(wait.message_id)
                    if self.store.get_message(wait.message_id) is not None:
                        self.store.set_status(
                            wait.message_id,
                            DeliveryStatus.FAILED,
                            now,
                            BLOCKED_NOTE,
                            recipient=peer,
                        )
            if self.store.has_requests(peer):
                deleted = self.store.delete_requests(peer)
        if deleted:
            self.messenger.known.refresh()
        return new, deleted

    def unblock(self, peer: PeerId) -> bool:
        """Unblock ``peer``; False if it was not blocked."""
        return self.store.unblock_peer(peer, self.now_ms())

    def resolve_stranger(self, who: str, resolve: Callable[[str], PeerId]) -> PeerId:
        """The peer ``who`` names for blocking or unblocking: what ``resolve`` makes
        of it (a PeerID, a contact's name), else a stranger as ``requests`` and the
        block list show one: the fingerprint (``~`` and all), a unique start of its
        PeerID (MIN_PEER_PREFIX_CHARS or more), or the name a pending request says
        it goes by. Raises NotFound, or SchemaError when several strangers match."""
        try:
            return resolve(who)
        except NotFound:
            text = who.strip()
            key = text.casefold()
            named: dict[PeerId, None] = {}
            for entry in self.requests():
                name = self.request_name(entry)
                if _names(text, entry.peer_id) or (name is not None and name.casefold() == key):
                    named[entry.peer_id] = None
            for blocked in self.blocked():
                if _names(text, blocked.peer_id):
                    named[blocked.peer_id] = None
            matches = list(named)
            if not matches and text.startswith("~"):
                raise NotFound(
                    f"no request or blocked peer has the fingerprint {text[:60]!r}"
                ) from None
            if not matches:
                raise NotFound(
                    f"no contact, message request or blocked peer goes by {text[:60]!r} "
                    "(a blocked stranger is listed by its fingerprint: `p2pdm block`)"
                ) from None
            if len(matches) > 1:
                raise SchemaError(
                    f"{text[:60]!r} names {len(matches)} strangers: give the PeerID"
                ) from None
            return matches[0]

    # --- message requests -----------------------------------------------------

    def requests(self) -> list[RequestSummary]:
        """Strangers' pending message requests, one entry per stranger, newest first."""
        return self.store.list_requests()

    def request_name(self, entry: RequestSummary) -> str | None:
        """The name a stranger says it goes by, from its first request (unverified:
        show its fingerprint beside it); None if it gave none."""
        return request_name_of(decode_stored(entry.first.kind, entry.first.body))

    def resolve_request(self, who: str) -> PeerId:
        """The stranger whose pending request ``who`` names: its PeerID, a unique
        prefix of it (MIN_PEER_PREFIX_CHARS or more), its fingerprint (``~`` and
        all), or the name it goes by (ignoring case). Raises NotFound, or
        SchemaError when several requests match."""
        text = who.strip()
        if not text:
            raise SchemaError("name the stranger: a PeerID, its start, or their name")
        with contextlib.suppress(SchemaError):
            return PeerId.parse(text)
        key = text.casefold()
        matches = []
        for entry in self.requests():
            name = self.request_name(entry)
            if _names(text, entry.peer_id) or (name is not None and name.casefold() == key):
                matches.append(entry.peer_id)
        if not matches:
            raise NotFound(f"no message request from {text!r}: `p2pdm requests` lists them")
        if len(matches) > 1:
            listed = ", ".join(str(p) for p in matches[:5])
            raise SchemaError(f"{text!r} names {len(matches)} requests ({listed}): give the PeerID")
        return matches[0]

    def _pending(self, peer: PeerId) -> None:
        if not self.store.has_requests(peer):
            raise NotFound(f"no message request from {peer}")

    def accept_request(self, peer: PeerId) -> AddedContact:
        """Accept ``peer``'s request: add it as a contact, named as it says it goes
        by (as from an invite: marked as its own choice, changed if another
        contact has it; rename it any time). Raises NotFound if it has none."""
        self._pending(peer)
        entry = next((e for e in self.requests() if e.peer_id == peer), None)
        name = None if entry is None else self.request_name(entry)
        if name is None or self.store.get_contact(peer) is not None:
            return self.add_contact_by_peer_id(str(peer))
        from p2pdm.node.node import AddedContact  # the node's module imports this one

        # Marked as a name it gave itself, as from an invite: shown with its fingerprint.
        chosen = name_from_invite(self.store, peer, name)
        contact = self.messenger.add_contact(peer, chosen, name_from_invite=True)
        return AddedContact(contact, None if chosen == name else name)

    def decline_request(self, peer: PeerId) -> int:
        """Delete ``peer``'s request (it is told nothing); returns the messages
        deleted. Raises NotFound if it has none."""
        self._pending(peer)
        with self.store.transaction():
            deleted = self.store.delete_requests(peer)
        self.messenger.known.refresh()
        return deleted

    def block_request(self, peer: PeerId) -> int:
        """Block ``peer`` and delete its request; returns the messages deleted.
        Raises NotFound if it has none."""
        self._pending(peer)
        return self._block(peer)[1]

    # --- request stamps -------------------------------------------------------

    async def stamp_ahead(self, peer: PeerId) -> None:
        """Mint today's request stamp for ``peer`` off the event loop if what goes
        to it next needs one, so a synchronous send (an action, a timer notice)
        finds it made instead of minting it in the loop."""
        await self.messenger.stamps.prepare(peer)

    async def stamp_ahead_for(self, message_id: bytes) -> None:
        """:meth:`stamp_ahead` for the peer of a message: an action on it goes there."""
        found = self.store.get_message(message_id)
        if found is not None:
            await self.stamp_ahead(found.peer)

    def has_session(self, peer: PeerId) -> bool:
        """True if a session with ``peer`` exists (a first message can be encrypted)."""
        return self.store.get_session(peer) is not None
