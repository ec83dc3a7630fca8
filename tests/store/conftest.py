"""Shared by the store tests: the PeerIDs of contacts, and storing an incoming
message as the messenger does."""

from __future__ import annotations

import contextlib
import copy
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pdm.core.eventlog import received_events
from p2pdm.core.identity import PeerId
from p2pdm.core.model import StoredMessage
from p2pdm.store import MemoryStore, Store, schema
from p2pdm.store.base import log_event
from p2pdm.store.memory_state import MemoryState
from p2pdm.store.search_text import SEARCH_TEXT_FUNCTION, search_text

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


def store_before(path: Path, migration: schema.Migration) -> sqlite3.Connection:
    """A store file at ``path`` as the schema was before ``migration`` (open)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.create_function(SEARCH_TEXT_FUNCTION, 2, search_text, deterministic=True)
    for version, older in enumerate(
        schema.MIGRATIONS[: schema.MIGRATIONS.index(migration)], start=1
    ):
        schema._apply(db, older)
        db.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
    return db


@pytest.fixture(autouse=True)
def snapshots_answer_as_deep_copies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every memory store transaction or group in these tests checks, when it
    ends (committed or rolled back), that its snapshot still equals a
    ``copy.deepcopy`` of the state taken with it: nothing the block did
    reached into the snapshot."""
    taken: list[tuple[MemoryState, MemoryState]] = []
    fast = MemoryState.snapshot

    def snapshot(self: MemoryState) -> MemoryState:
        twin = fast(self)
        taken.append((twin, copy.deepcopy(self)))
        return twin

    monkeypatch.setattr(MemoryState, "snapshot", snapshot)
    for name in ("transaction", "group"):
        inner = getattr(MemoryStore, name)

        @contextlib.contextmanager
        def checked(self: MemoryStore, *args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
            depth = len(taken)
            try:
                with _inner(self, *args, **kwargs):
                    yield
            finally:
                if len(taken) > depth:
                    twin, deep = taken.pop(depth)
                    assert twin == deep, "a transaction changed its own snapshot"

        monkeypatch.setattr(MemoryStore, name, checked)
    yield
