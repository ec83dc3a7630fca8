"""The SQLite store remembers the settings it read: a write, or a rollback
that undid one, is never hidden by what it remembered."""

from __future__ import annotations

from pathlib import Path

import pytest

from p2pdm.store import SQLiteStore


def test_a_remembered_setting_follows_writes_and_rollbacks(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    try:
        assert store.get_setting("read_receipts", True) is True  # absent: the default
        store.set_setting("read_receipts", False)
        assert store.get_setting("read_receipts", True) is False
        with pytest.raises(RuntimeError), store.transaction():
            store.set_setting("read_receipts", True)
            assert store.get_setting("read_receipts") is True  # read inside, then undone
            raise RuntimeError("roll back")
        assert store.get_setting("read_receipts") is False
        store.set_setting("list", [1, 2])
        got = store.get_setting("list")
        assert isinstance(got, list)
        got.append(3)  # a caller's change to what it got is not remembered
        assert store.get_setting("list") == [1, 2]
    finally:
        store.close()
    reopened = SQLiteStore(tmp_path / "s.sqlite")
    try:
        assert reopened.get_setting("read_receipts") is False
    finally:
        reopened.close()
