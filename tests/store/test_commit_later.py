"""A commit left due for a worker thread (``Store.commit_later``): nothing is
seen before it, any store call of any thread commits it first, a failed one
rolls back and puts back in-memory state before anything else runs, and the
connection is never used by two threads at once. Plain and encrypted stores."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pdm.core.model import EventType
from p2pdm.errors import StoreError
from p2pdm.store.memory import MemoryStore
from p2pdm.store.sqlite import SQLiteStore

#: A bound on every wait of these tests (never reached when they pass).
WAIT_S = 20.0

#: Each test store's key (None: plain), by path.
KEYS: dict[str, bytes | None] = {}


class Connection:
    """The store's connection, its COMMITs counted and made to fail or wait;
    it notes any two threads inside it at once."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.fail = 0
        self.commits: list[int] = []
        self.inside = 0
        self.overlaps = 0
        self.entered = threading.Event()
        self.go_on: threading.Event | None = None
        self._count = threading.Lock()

    def execute(self, sql: str, *args: Any) -> Any:
        with self._count:
            self.inside += 1
            self.overlaps += self.inside > 1
        try:
            if sql == "COMMIT":
                self.commits.append(threading.get_ident())
                self.entered.set()
                if self.go_on is not None:
                    assert self.go_on.wait(WAIT_S)
                if self.fail:
                    self.fail -= 1
                    raise sqlite3.OperationalError("disk I/O error")
            return self.db.execute(sql, *args)
        finally:
            with self._count:
                self.inside -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


@pytest.fixture(params=["plain", "encrypted"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLiteStore]:
    key = bytes(range(32)) if request.param == "encrypted" else None
    s = SQLiteStore(tmp_path / "s.sqlite", key=key, synchronous="NORMAL")
    s._db._db = Connection(s._db._db)  # type: ignore[assignment]
    KEYS[s.path] = key
    yield s
    s.close()


def conn(store: SQLiteStore) -> Connection:
    return store._db._db  # type: ignore[return-value]


def committed(store: SQLiteStore, key: str) -> bool:
    """Whether ``key`` is in the file, as another connection sees it."""
    other = SQLiteStore(store.path, key=KEYS[store.path], synchronous="NORMAL")
    try:
        return other.get_setting(key) is not None
    finally:
        other.close()


def test_a_commit_left_due_is_seen_once_finished_in_another_thread(store: SQLiteStore) -> None:
    with store.commit_later() as pending, store.transaction():
        store.set_setting("a", 1)
    assert pending.due and not committed(store, "a")
    thread = threading.Thread(target=pending.finish)
    thread.start()
    thread.join(WAIT_S)
    assert not pending.due and committed(store, "a")
    assert conn(store).commits == [thread.ident]
    pending.finish()  # again: nothing
    assert len(conn(store).commits) == 1


def test_any_store_call_commits_what_is_due_first(store: SQLiteStore) -> None:
    with store.commit_later() as pending, store.group():
        store.set_setting("a", 1)
    store.set_setting("b", 2)  # its own transaction: the one due is committed before it
    assert not pending.due and committed(store, "a") and committed(store, "b")
    pending.finish()


def test_only_the_first_commit_of_a_block_is_left_due(store: SQLiteStore) -> None:
    with store.commit_later() as pending:
        with store.transaction():
            store.set_setting("a", 1)
        with store.transaction():  # commits the first, then itself
            store.set_setting("b", 2)
    assert not pending.due and committed(store, "a") and committed(store, "b")


def test_a_failed_commit_rolls_back_and_puts_back_state_before_the_next_call(
    store: SQLiteStore,
) -> None:
    store.set_setting("kept", 1)
    assert store.get_setting("kept") == 1  # remembered
    order: list[str] = []
    with store.commit_later(lambda: order.append("put back")) as pending, store.transaction():
        store.set_setting("lost", 1)
        store.set_setting("kept", 2)
    conn(store).fail = 1
    thread_error: list[BaseException] = []

    def finish() -> None:
        try:
            pending.finish()
        except StoreError as exc:
            thread_error.append(exc)

    thread = threading.Thread(target=finish)
    thread.start()
    thread.join(WAIT_S)
    assert [str(e) for e in thread_error] == [
        "committing a store transaction failed: disk I/O error"
    ]
    order.append("next call")
    assert store.get_setting("lost") is None and store.get_setting("kept") == 1
    assert order == ["put back", "next call"]
    with pytest.raises(StoreError, match="disk I/O error"):
        pending.finish()  # its outcome stays
    store.set_setting("after", 1)  # the store goes on
    assert committed(store, "after") and not committed(store, "lost")


def test_a_failed_commit_settled_by_another_call_puts_back_state_there(
    store: SQLiteStore,
) -> None:
    calls: list[str] = []
    with store.commit_later(lambda: calls.append("put back")) as pending, store.transaction():
        store.set_setting("lost", 1)
    conn(store).fail = 1
    assert store.get_setting("lost") is None  # this read committed it, and it failed
    assert calls == ["put back"]
    with pytest.raises(StoreError):
        pending.finish()


def test_event_listeners_are_woken_after_the_commit_only(store: SQLiteStore) -> None:
    woken: list[bool] = []
    store.set_event_listener(lambda: woken.append(committed(store, "a")))
    with store.commit_later() as pending, store.transaction():
        store.set_setting("a", 1)
        store.add_event(EventType.CONTACT_ADDED, 1)
    assert woken == []
    pending.finish()
    pending.notify()
    pending.notify()  # once
    assert woken == [True]
    store.add_event(EventType.CONTACT_ADDED, 2)  # outside a block: at once, as before
    assert woken == [True, True]


def test_reads_remembered_are_not_answered_while_a_commit_is_due(store: SQLiteStore) -> None:
    store.set_setting("x", 1)
    assert store.get_setting("x") == 1
    with store.commit_later(), store.transaction():
        store.set_setting("x", 2)
    conn(store).fail = 1
    assert store.get_setting("x") == 1  # not the 2 a rolled-back commit wrote


def test_many_threads_never_use_the_connection_at_once(store: SQLiteStore) -> None:
    """The loop leaves commits due and finishes each in a thread while other
    threads write: every row lands, and no two threads were ever inside."""
    stop = threading.Event()
    written: list[str] = []

    def other(name: str) -> None:
        n = 0
        while not stop.is_set() and n < 200:
            store.set_setting(f"{name}{n}", n)
            written.append(f"{name}{n}")
            n += 1

    others = [threading.Thread(target=other, args=(f"t{i}-",)) for i in range(3)]
    for t in others:
        t.start()
    finishers = []
    for n in range(100):
        with store.commit_later() as pending, store.group(), store.transaction():
            store.set_setting(f"loop{n}", n)
        finisher = threading.Thread(target=pending.finish)
        finisher.start()
        finishers.append(finisher)
    for t in finishers:
        t.join(WAIT_S)
    stop.set()
    for t in others:
        t.join(WAIT_S)
    assert conn(store).overlaps == 0
    keys = set(store.settings())
    assert {f"loop{n}" for n in range(100)} <= keys
    assert set(written) <= keys


def test_commit_later_blocks_do_not_nest(store: SQLiteStore) -> None:
    with (
        store.commit_later(),
        pytest.raises(StoreError, match="do not nest"),
        store.commit_later(),
    ):
        pass


def test_the_memory_store_commits_at_once() -> None:
    store = MemoryStore()
    with store.commit_later() as pending, store.transaction():
        store.set_setting("a", 1)
    assert not pending.due
    pending.finish()
    store.settle()
    assert store.get_setting("a") == 1


#: One step: ("due", key) a write left due, ("finish",) finish it in a
#: thread, ("fail",) the next COMMIT fails, ("write", key) a write of its own.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("due"), st.integers(0, 5)),
        st.tuples(st.just("finish")),
        st.tuples(st.just("fail")),
        st.tuples(st.just("write"), st.integers(0, 5)),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_what_is_stored_is_exactly_what_committed(store: SQLiteStore, steps: list[Any]) -> None:
    """Against a model: a write is kept if and only if its commit went
    through, whoever committed it (a thread, the next call) and whenever."""
    conn(store).fail = 0
    model = {f"k{n}": store.get_setting(f"k{n}") for n in range(6)}
    pending = None
    due: tuple[str, int] | None = None
    for value, step in enumerate(steps, start=len(store.settings()) * 100):
        if step[0] == "due":
            if pending is not None:
                _settle_into(store, pending, due, model)
            with store.commit_later() as pending, store.transaction():
                store.set_setting(f"k{step[1]}", value)
            due = (f"k{step[1]}", value)
        elif step[0] == "finish" and pending is not None:
            _settle_into(store, pending, due, model, threaded=True)
            pending = None
        elif step[0] == "fail":
            conn(store).fail = 1
        elif step[0] == "write":
            if pending is not None:
                _settle_into(store, pending, due, model)
                pending = None
            failing = conn(store).fail > 0
            try:
                store.set_setting(f"k{step[1]}", value)
            except StoreError:
                assert failing
            else:
                assert not failing
                model[f"k{step[1]}"] = value
    if pending is not None:
        _settle_into(store, pending, due, model)
    assert {key: store.get_setting(key) for key in model} == model
    assert {key: _read_back(store, key) for key in model} == model


def _read_back(store: SQLiteStore, key: str) -> object:
    other = SQLiteStore(store.path, key=KEYS[store.path], synchronous="NORMAL")
    try:
        return other.get_setting(key)
    finally:
        other.close()


def _settle_into(
    store: SQLiteStore,
    pending: Any,
    due: tuple[str, int] | None,
    model: dict[str, object],
    *,
    threaded: bool = False,
) -> None:
    failing = conn(store).fail > 0 and pending.due
    errors: list[BaseException] = []

    def finish() -> None:
        try:
            pending.finish()
        except StoreError as exc:
            errors.append(exc)

    if threaded:
        thread = threading.Thread(target=finish)
        thread.start()
        thread.join(WAIT_S)
    else:
        finish()
    assert bool(errors) == failing
    if not failing and due is not None:
        model[due[0]] = due[1]
    conn(store).fail = 0 if failing else conn(store).fail
