"""Group commit of concurrent store work."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from p2pdm.errors import SchemaError, StoreError
from p2pdm.node.batching import CommitBatcher
from p2pdm.store.sqlite import SQLiteStore
from tests.store.test_commit_later import Connection


class CountingStore(SQLiteStore):
    groups = 0
    fail_commit = False

    @contextmanager
    def group(self) -> Iterator[None]:
        self.groups += 1
        with super().group():
            yield
            if self.fail_commit:
                raise StoreError("disk full")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    s = CountingStore(tmp_path / "s.sqlite")
    yield s
    s.close()


async def test_concurrent_work_is_committed_in_one_group(store: CountingStore) -> None:
    failures: list[bool] = []
    batcher = CommitBatcher(store, lambda: failures.append(True))
    results: dict[int, object] = {}

    async def one(n: int) -> None:
        def work() -> int:
            with store.transaction():
                store.set_setting(f"k{n}", n)
            if n == 3:
                raise SchemaError("this one is refused")
            return n

        try:
            results[n] = await batcher.submit(work)
        except SchemaError as exc:
            results[n] = exc

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        async with trio.open_nursery() as callers:
            for n in range(10):
                callers.start_soon(one, n)
        nursery.cancel_scope.cancel()
    assert store.groups == 1
    assert isinstance(results.pop(3), SchemaError)
    assert results == {n: n for n in range(10) if n != 3}
    assert store.get_setting("k9") == 9 and not failures


async def _set_setting(
    batcher: CommitBatcher, store: SQLiteStore, n: int, errors: list[BaseException]
) -> bool:
    """Submit one transaction setting ``k<n>``; a StoreError goes to ``errors``
    (and True is returned)."""

    def work() -> None:
        with store.transaction():
            store.set_setting(f"k{n}", n)

    try:
        await batcher.submit(work)
    except StoreError as exc:
        errors.append(exc)
        return True
    return False


async def test_a_failed_group_commit_fails_every_caller(store: CountingStore) -> None:
    failures: list[bool] = []
    batcher = CommitBatcher(store, lambda: failures.append(True))
    store.fail_commit = True
    errors: list[BaseException] = []

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        async with trio.open_nursery() as callers:
            for n in range(4):
                callers.start_soon(_set_setting, batcher, store, n, errors)
        nursery.cancel_scope.cancel()
    assert len(errors) == 4 and failures == [True]
    assert store.settings() == {}  # nothing was kept


async def test_without_its_task_work_runs_at_once(store: CountingStore) -> None:
    batcher = CommitBatcher(store, lambda: None)
    assert await batcher.submit(lambda: 7) == 7
    assert store.groups == 0


async def test_a_group_commit_failing_in_its_thread_fails_every_caller_once_put_back(
    tmp_path: Path,
) -> None:
    """The group's COMMIT runs in a worker thread; when it fails there,
    in-memory state is put back before any other store call, every caller
    gets the error, and nothing is kept; the next group commits."""
    store = SQLiteStore(tmp_path / "t.sqlite")
    connection = Connection(store._db._db)
    store._db._db = connection  # type: ignore[assignment]
    connection.fail = 1
    order: list[str] = []
    batcher = CommitBatcher(store, lambda: order.append("put back"))
    errors: list[BaseException] = []

    async def one(n: int) -> None:
        if await _set_setting(batcher, store, n, errors):
            order.append("caller")

    async with trio.open_nursery() as nursery:
        await nursery.start(batcher.run)
        async with trio.open_nursery() as callers:
            for n in range(4):
                callers.start_soon(one, n)
        await batcher.submit(lambda: store.set_setting("after", 1))
        nursery.cancel_scope.cancel()
    assert connection.commits[0] != threading.get_ident()  # in a worker thread
    assert len(errors) == 4 and order[0] == "put back" and order.count("caller") == 4
    assert store.settings() == {"after": 1}
    store.close()
