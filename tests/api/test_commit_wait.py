"""While a store commit runs in its worker thread, the loop's hot readers (an
API request, the delivery loop, the withdrawer) wait for it without holding
the loop (:meth:`OffLoopCommits.settled`), so its fsync is never done on the
loop by the next store call."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from p2pdm.api.app import create_app
from p2pdm.core.identity import Identity
from p2pdm.node.node import Node
from p2pdm.node.offloop import OffLoopCommits
from p2pdm.store.sqlite import SQLiteStore
from tests.api.test_hot_route import OWNER, call
from tests.conftest import TOKEN
from tests.store.test_commit_later import WAIT_S, Connection


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.sqlite", synchronous="NORMAL")
    s._db._db = Connection(s._db._db)  # type: ignore[assignment]
    yield s
    s.close()


def _connection(store: SQLiteStore) -> Connection:
    return store._db._db  # type: ignore[return-value]


async def _held_commit(nursery: trio.Nursery, commits: OffLoopCommits, store: SQLiteStore) -> None:
    """Start a write whose COMMIT waits in its worker thread until ``go_on`` is set."""
    connection = _connection(store)
    connection.entered.clear()
    connection.commits.clear()
    connection.go_on = threading.Event()

    def write() -> None:
        with store.transaction():
            store.set_setting("name", "alice")

    nursery.start_soon(commits.run, write)
    with trio.fail_after(WAIT_S):
        await trio.to_thread.run_sync(connection.entered.wait)


async def test_settled_waits_for_the_commit_in_its_thread(store: SQLiteStore) -> None:
    commits = OffLoopCommits(store)
    connection = _connection(store)
    await commits.settled()  # none in flight: at once
    done: list[str] = []
    async with trio.open_nursery() as nursery:
        await _held_commit(nursery, commits, store)

        async def reader() -> None:
            await commits.settled()
            done.append(str(store.get_setting("name")))

        nursery.start_soon(reader)
        for _ in range(10):  # the loop goes on meanwhile
            await trio.lowlevel.checkpoint()
        assert done == []
        assert connection.go_on is not None
        connection.go_on.set()
    assert done == ["alice"]
    main = threading.get_ident()
    assert connection.commits and main not in connection.commits  # all in the thread


async def test_a_request_waits_for_the_commit_instead_of_doing_it_on_the_loop(
    store: SQLiteStore,
) -> None:
    node = Node(Identity(os.urandom(32)), store)
    app = create_app(node, TOKEN)
    connection = _connection(store)
    answers: list[int] = []
    async with trio.open_nursery() as nursery:
        await _held_commit(nursery, node.commits, store)

        async def request() -> None:
            status, _, _ = await call(app, headers=OWNER, method="GET", path="/v1/settings")
            answers.append(status)

        nursery.start_soon(request)
        for _ in range(10):
            await trio.lowlevel.checkpoint()
        assert answers == []  # waiting, and the loop runs
        assert connection.go_on is not None
        connection.go_on.set()
    assert answers == [200]
    assert connection.commits and threading.get_ident() not in connection.commits
