"""Group rows, change entries and members' heads behave alike in both stores,
and a store of the previous schema gains the group tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from p2pdm.errors import StoreError
from p2pdm.limits import MAX_GROUP_LOG
from p2pdm.store import MemoryStore, SQLiteStore, Store, schema
from p2pdm.store.groups import GroupRow
from tests.store.conftest import ALICE, BOB, store_before

GID = bytes(range(16))


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield opened
    opened.close()


def test_group_rows(store: Store) -> None:
    assert store.get_group(GID) is None
    row = GroupRow(GID, "request", ALICE, 5, "friends")
    store.put_group(row)
    assert store.get_group(GID) == row
    store.put_group(GroupRow(GID, "active", ALICE, 5, "family"))
    assert [g.name for g in store.list_groups()] == ["family"]
    store.put_group(GroupRow(bytes(16), "active", None, 1))
    assert [g.id for g in store.list_groups()] == [bytes(16), GID]
    assert store.delete_group(GID) and not store.delete_group(GID)
    assert store.get_group(GID) is None


def test_entries_kept_once_in_arrival_order(store: Store) -> None:
    store.put_group(GroupRow(GID, "active", None, 1))
    assert store.add_group_entries(GID, [(b"b" * 32, b"B"), (b"a" * 32, b"A")]) == 2
    assert store.add_group_entries(GID, [(b"a" * 32, b"A"), (b"c" * 32, b"C")]) == 1
    assert store.group_entries(GID) == [b"B", b"A", b"C"]
    store.set_peer_heads(GID, BOB, (b"a" * 32,))
    assert store.get_peer_heads(GID, BOB) == (b"a" * 32,)
    assert store.get_peer_heads(GID, ALICE) == ()
    store.delete_group(GID)
    assert store.group_entries(GID) == []
    assert store.get_peer_heads(GID, BOB) == ()


def test_a_log_is_bounded(store: Store) -> None:
    store.put_group(GroupRow(GID, "active", None, 1))
    many = [(i.to_bytes(32, "big"), b"x") for i in range(MAX_GROUP_LOG)]
    store.add_group_entries(GID, many)
    with pytest.raises(StoreError):
        store.add_group_entries(GID, [(b"\xff" * 32, b"y")])
    assert len(store.group_entries(GID)) == MAX_GROUP_LOG


def test_a_store_of_the_previous_schema_gains_the_group_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # The store as the previous version left it: no group tables.
    store_before(path, schema._MIGRATION_GROUPS).close()
    store = SQLiteStore(path)
    try:
        store.put_group(GroupRow(GID, "active", None, 1, "g"))
        assert store.get_group(GID) is not None
    finally:
        store.close()


def test_accepting_a_conversation_turns_its_requests_into_messages(store: Store) -> None:
    from tests.store.conftest import receive
    from tests.store.test_contract import msg

    first = receive(store, replace(msg(1, request=True), conversation_id=GID))
    other = receive(store, msg(2, request=True))
    assert store.accept_conversation(GID) == 1
    assert not store.get_message(first.id).request  # type: ignore[union-attr]
    assert store.get_message(other.id).request  # type: ignore[union-attr]
    found = store.get_conversation(GID)
    assert found is not None and not found.request
