"""Shared by the store tests: the PeerIDs of contacts, and storing an incoming
message as the messenger does."""

from __future__ import annotations

from p2pdm.core.eventlog import received_events
from p2pdm.core.identity import PeerId
from p2pdm.core.model import StoredMessage
from p2pdm.store import Store
from p2pdm.store.base import log_event

ALICE = PeerId.from_public_key(b"\x02" * 32)
BOB = PeerId.from_public_key(b"\x03" * 32)
CAROL = PeerId.from_public_key(b"\x04" * 32)


def receive(store: Store, message: StoredMessage) -> StoredMessage:
    """Store an incoming message and log the events it makes, as the messenger
    does (``add_message`` itself writes none); raises what ``add_message`` raises."""
    with store.transaction():
        first_request = message.request and not store.has_requests(message.peer)
        stored = store.add_message(message)
        for event in received_events(stored, first_request):
            log_event(store, event)
    return stored
