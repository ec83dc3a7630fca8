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


def test_held_entries_are_kept_bounded_and_dropped(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held entries keep their first time, come back oldest first and only if
    young enough, are bounded per group and in all (the oldest go), and go
    with their group."""
    import p2pdm.store.memory_groups as memory_groups
    import p2pdm.store.sqlite_groups as sqlite_groups

    for module in (memory_groups, sqlite_groups):
        monkeypatch.setattr(module, "MAX_HELD_GROUP_ENTRIES", 3)
        monkeypatch.setattr(module, "MAX_HELD_GROUP_ENTRIES_TOTAL", 5)
    other = bytes(16)
    for gid in (GID, other):
        store.put_group(GroupRow(gid, "active", None, 1))
    store.hold_group_entries(GID, [(b"b" * 32, b"B"), (b"a" * 32, b"A")], 10)
    store.hold_group_entries(GID, [(b"a" * 32, b"A"), (b"c" * 32, b"C")], 20)
    assert store.held_group_entries(GID, 0) == [b"A", b"B", b"C"]
    assert store.held_group_entries(GID, 15) == [b"C"]
    store.hold_group_entries(GID, [(b"d" * 32, b"D")], 30)  # past 3: the oldest goes
    assert store.held_group_entries(GID, 0) == [b"B", b"C", b"D"]
    store.hold_group_entries(other, [(b"x" * 32, b"X"), (b"y" * 32, b"Y")], 40)
    store.hold_group_entries(other, [(b"z" * 32, b"Z")], 50)  # past 5 in all
    assert store.held_group_entries(GID, 0) == [b"C", b"D"]
    assert store.held_group_entries(other, 0) == [b"X", b"Y", b"Z"]
    store.drop_held_group_entries(GID, [b"c" * 32, b"q" * 32])
    assert store.held_group_entries(GID, 0) == [b"D"]
    assert store.drop_stale_held_group_entries(45) == 3  # D, X, Y
    assert store.held_group_entries(GID, 0) == []
    assert store.held_group_entries(other, 0) == [b"Z"]
    store.delete_group(other)
    assert store.held_group_entries(other, 0) == []


def test_a_store_of_the_previous_schema_gains_the_held_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store_before(path, schema._MIGRATION_GROUP_HELD).close()
    store = SQLiteStore(path)
    try:
        store.put_group(GroupRow(GID, "active", None, 1, "g"))
        store.hold_group_entries(GID, [(b"a" * 32, b"A")], 1)
        assert store.held_group_entries(GID, 0) == [b"A"]
    finally:
        store.close()


def test_updating_a_group_row_keeps_its_log_heads_and_held_entries(store: Store) -> None:
    """Saving a group's row again (its state or name changed) keeps what hangs
    off it: a replace that deleted the row would cascade to its log."""
    store.put_group(GroupRow(GID, "request", ALICE, 5, "friends"))
    store.add_group_entries(GID, [(b"a" * 32, b"A")])
    store.set_peer_heads(GID, BOB, (b"a" * 32,))
    store.hold_group_entries(GID, [(b"b" * 32, b"B")], 1)
    store.put_group(GroupRow(GID, "active", ALICE, 5, "family"))
    assert store.group_entries(GID) == [b"A"]
    assert store.get_peer_heads(GID, BOB) == (b"a" * 32,)
    assert store.held_group_entries(GID, 0) == [b"B"]
