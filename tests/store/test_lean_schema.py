"""A store from before the lean search index and event log, upgraded in
place: search, edits and erasure keep the index in step, the event log
prunes to its caps and filters by peer, and no copy of the text is kept."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

from p2pdm.core import cbor
from p2pdm.core.kinds import TextBody, encode_body
from p2pdm.core.model import EventType, StoredMessage
from p2pdm.store import SQLiteStore, schema, schema_lean
from p2pdm.store.search_text import search_terms
from tests.store.conftest import ALICE, BOB, receive
from tests.store.test_contract import mid, msg
from tests.store.test_secrets import undo_lean


def _text(n: int, words: str, **kwargs: Any) -> StoredMessage:
    body = cbor.encode(encode_body(TextBody(words)))
    return replace(msg(n, **kwargs), body=body)


def _found(store: SQLiteStore, query: str) -> list[bytes]:
    return [hit.message_id for hit in store.search(search_terms(query), None, 50)]


def _objects(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master")}


def test_an_old_store_is_upgraded_in_place_and_keeps_search_and_events(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path, max_events=6)
    receive(store, _text(1, "lunch at noon"))
    receive(store, _text(2, "zebracorn dinner", peer=BOB))
    store.close()
    # The version before the lean migrations (those after them run again: they
    # create only what is not there).
    lean = schema.MIGRATIONS.index(schema_lean.migration_search_external)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        undo_lean(db)
        db.execute("DELETE FROM schema_version WHERE version > ?", (lean,))
    assert "events_by_peer" in _objects(path) and "message_search_content" in _objects(path)

    store = SQLiteStore(path, max_events=6)
    try:
        names = _objects(path)
        assert "message_search_content" not in names and "message_search_docsize" not in names
        assert {"events_by_peer", "events_by_lane"}.isdisjoint(names)
        assert _found(store, "lunch") == [mid(1)] and _found(store, "zebra") == [mid(2)]
        receive(store, _text(3, "lunch again", peer=BOB))
        assert _found(store, "lunch") == [mid(3), mid(1)]
        # Erased and deleted messages leave the index in the same transaction.
        assert store.erase_message_body(mid(2))
        assert _found(store, "zebracorn") == []
        assert store.delete_message(mid(1))
        assert _found(store, "lunch") == [mid(3)]
        for n in range(4, 12):
            receive(store, _text(n, f"word{n}", peer=BOB if n % 2 else ALICE))
        events = store.events(0, 100)
        assert len(events) == 6 and events[-1].message_id == mid(11)
        assert [e.message_id for e in store.events(0, 100, peers=[BOB])] == [
            mid(7),
            mid(9),
            mid(11),
        ]
        assert store.events_pruned()[0] == events[0].id - 1
        assert all(e.type is EventType.MESSAGE_RECEIVED for e in events)
    finally:
        store.close()
    store = SQLiteStore(path, max_events=2)  # a lower cap: the next event prunes to it
    try:
        receive(store, _text(12, "last"))
        assert [e.message_id for e in store.events(0, 100)] == [mid(11), mid(12)]
    finally:
        store.close()
