"""A lone commit (none of the same OffLoopCommits for LONE_COMMIT_GAP_SECONDS
before it) is done on the event loop; commits that follow each other closely
keep their fsync in a worker thread. Either way the caller goes on only once
it is committed, and a failed one stores nothing and puts state back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pdm.core.model import EventType
from p2pdm.errors import StoreError
from p2pdm.node import offloop
from p2pdm.node.offloop import OffLoopCommits
from p2pdm.store.sqlite import SQLiteStore
from tests.store.test_commit_later import Connection

#: The gap these tests wait out: short, so they stay fast.
GAP_S = 0.05


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.sqlite")  # synchronous=FULL, the node's default
    s._db._db = Connection(s._db._db)  # type: ignore[assignment]
    yield s
    s.close()


def _connection(store: SQLiteStore) -> Connection:
    return store._db._db  # type: ignore[return-value]


def _setting(store: SQLiteStore, value: int) -> None:
    with store.transaction():
        store.set_setting("n", value)


def _committed(store: SQLiteStore) -> object:
    """The setting as another connection sees it (only what is committed)."""
    other = SQLiteStore(store.path, synchronous="NORMAL")
    try:
        return other.get_setting("n")
    finally:
        other.close()


async def test_a_lone_commit_is_done_on_the_loop_and_one_close_behind_it_in_a_thread(
    store: SQLiteStore,
) -> None:
    commits = OffLoopCommits(store)
    commits.lone_gap = GAP_S
    connection = _connection(store)
    main = threading.get_ident()

    await commits.run(lambda: _setting(store, 1), one=True)  # the first: nothing before it
    assert connection.commits == [main]
    assert _committed(store) == 1
    await commits.run(lambda: _setting(store, 2), one=True)  # right behind it: in a thread
    assert connection.commits[1] != main
    assert _committed(store) == 2
    await trio.sleep(GAP_S * 1.5)
    await commits.run(lambda: _setting(store, 3), one=True)  # lone again
    assert connection.commits[2] == main
    assert _committed(store) == 3


async def test_commits_in_a_stream_stay_in_their_thread(store: SQLiteStore) -> None:
    commits = OffLoopCommits(store)
    commits.lone_gap = GAP_S
    connection = _connection(store)
    for n in range(10):
        await commits.run(lambda n=n: _setting(store, n), one=True)  # type: ignore[misc]
    main = threading.get_ident()
    assert connection.commits[0] == main
    assert main not in connection.commits[1:]
    assert _committed(store) == 9


async def test_the_work_of_several_messages_is_committed_in_a_thread(store: SQLiteStore) -> None:
    commits = OffLoopCommits(store)
    await commits.run(lambda: _setting(store, 1))  # lone, but not one message's work
    assert threading.get_ident() not in _connection(store).commits
    assert _committed(store) == 1


async def test_without_a_gap_every_commit_is_in_a_thread(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offloop, "LONE_COMMIT_GAP_SECONDS", None)
    commits = OffLoopCommits(store)
    await commits.run(lambda: _setting(store, 1), one=True)
    assert threading.get_ident() not in _connection(store).commits


async def test_a_lone_commit_that_fails_stores_nothing_and_puts_state_back(
    store: SQLiteStore,
) -> None:
    commits = OffLoopCommits(store)
    connection = _connection(store)
    connection.fail = 1
    put_back: list[str] = []
    with pytest.raises(StoreError):
        await commits.run(lambda: _setting(store, 1), lambda: put_back.append("put back"), one=True)
    assert connection.commits == [threading.get_ident()]  # it failed on the loop
    assert put_back == ["put back"]
    assert store.get_setting("n") is None and _committed(store) is None
    await commits.run(lambda: _setting(store, 2), one=True)  # the store goes on
    assert _committed(store) == 2


async def test_a_lone_commit_wakes_event_listeners_only_once_committed(
    store: SQLiteStore,
) -> None:
    """What wakes the event stream (``message.received``) comes after the
    commit, on the loop as in a thread."""
    commits = OffLoopCommits(store)
    woken: list[object] = []
    store.set_event_listener(lambda: woken.append(_committed(store)))

    def write() -> None:
        with store.transaction():
            store.set_setting("n", 5)
            store.add_event(EventType.CONTACT_ADDED, 1)
        assert woken == []  # not before the commit

    await commits.run(write, one=True)
    assert _connection(store).commits == [threading.get_ident()]
    assert woken == [5]
