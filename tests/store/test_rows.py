"""The store's fast paths give what the slow ones gave: rows copied without
``dataclasses.replace``, PeerIds of its own rows read back unchecked, bytes
and None bound without the adapter search, and its context managers (classes,
not generators) releasing the lock and mapping errors as before."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pdm.core.identity import PeerId
from p2pdm.core.model import Conversation, DeliveryStatus, Direction, Recipient, StoredMessage
from p2pdm.errors import NotFound, SchemaError, StoreError
from p2pdm.store import SQLiteStore
from p2pdm.store.cipher import adapt_directly
from p2pdm.store.rows import conversation_with, message_with
from tests.store.conftest import ALICE, BOB, CAROL

peers = st.sampled_from([ALICE, BOB, CAROL])
statuses = st.sampled_from(list(DeliveryStatus))
recipients = st.lists(
    st.builds(Recipient, peers, statuses, st.integers(0, 2**40), st.text(max_size=8)),
    max_size=3,
).map(tuple)
optional_ms = st.none() | st.integers(0, 2**40)

messages = st.builds(
    StoredMessage,
    id=st.binary(min_size=16, max_size=16),
    conversation_id=st.binary(min_size=16, max_size=16),
    peer=peers,
    direction=st.sampled_from(list(Direction)),
    kind=st.sampled_from(["text", "photo", "reaction"]),
    body=st.binary(max_size=32),
    sent_at_ms=st.integers(0, 2**40),
    stored_at_ms=st.integers(0, 2**40),
    status=statuses,
    request=st.booleans(),
    seq=st.integers(0, 2**40),
    recipients=recipients,
    edited_at_ms=optional_ms,
    unsent=st.booleans(),
    timer_s=st.integers(0, 10**6),
    expires_at_ms=optional_ms,
)
conversations = st.builds(
    Conversation,
    id=st.binary(min_size=16, max_size=16),
    peer=peers,
    last_message_at_ms=st.integers(0, 2**40),
    unread=st.integers(0, 10**6),
    request=st.booleans(),
    timer_s=st.integers(0, 10**6),
    muted=st.booleans(),
    archived=st.booleans(),
    pinned_at_ms=st.none() | st.integers(0, 2**40),
)


def test_the_copies_know_every_field_of_the_records() -> None:
    """A field added to these records must be added to p2pdm/store/rows.py
    (and to the strategies above): its copies would drop it otherwise."""
    assert [f.name for f in fields(StoredMessage)] == [
        "id",
        "conversation_id",
        "peer",
        "direction",
        "kind",
        "body",
        "sent_at_ms",
        "stored_at_ms",
        "status",
        "request",
        "seq",
        "recipients",
        "edited_at_ms",
        "unsent",
        "timer_s",
        "expires_at_ms",
    ]
    assert [f.name for f in fields(Conversation)] == [
        "id",
        "peer",
        "last_message_at_ms",
        "unread",
        "request",
        "timer_s",
        "muted",
        "archived",
        "pinned_at_ms",
    ]


@given(messages, statuses, recipients, st.integers(0, 2**40))
def test_message_with_is_replace(
    message: StoredMessage, status: DeliveryStatus, moved: tuple[Recipient, ...], seq: int
) -> None:
    made = message_with(message, status, moved, seq)
    expected = replace(message, status=status, recipients=moved, seq=seq)
    assert made == expected
    assert all(getattr(made, f.name) is getattr(expected, f.name) for f in fields(StoredMessage))


@given(conversations, st.integers(0, 2**40), st.integers(0, 10**6), st.booleans())
def test_conversation_with_is_replace(
    conversation: Conversation, last: int, unread: int, request: bool
) -> None:
    assert conversation_with(conversation, last, unread, request) == replace(
        conversation, last_message_at_ms=last, unread=unread, request=request
    )


@given(peers)
def test_a_trusted_peer_id_is_the_checked_one(peer: PeerId) -> None:
    trusted = PeerId.trusted(peer.raw)
    assert trusted == peer and hash(trusted) == hash(peer) and str(trusted) == str(peer)
    assert type(trusted) is PeerId and not trusted < peer and not peer < trusted
    with pytest.raises(AttributeError):
        trusted.raw = b""  # type: ignore[misc]  # still frozen


def test_peer_ids_from_outside_are_still_checked() -> None:
    with pytest.raises(SchemaError):
        PeerId(b"\x00" * 38)
    with pytest.raises(SchemaError):
        PeerId(ALICE.raw[:-1])


class _Bytes(bytes):
    pass


@pytest.mark.parametrize("module_name", ["sqlite3", "sqlcipher3"])
def test_bytes_and_none_bind_as_before(module_name: str) -> None:
    dbapi = pytest.importorskip(module_name)
    adapt_directly(dbapi)
    db = dbapi.connect(":memory:")
    values = (b"", b"\x00\xff" * 20, None, _Bytes(b"sub"), bytearray(b"ba"), memoryview(b"mv"), 7)
    marks = ", ".join("?" for _ in values)
    got = db.execute(f"SELECT {marks}", values).fetchone()
    assert got == (b"", b"\x00\xff" * 20, None, b"sub", b"ba", b"mv", 7)
    kinds = db.execute(
        f"SELECT {', '.join(f'typeof(?{i + 1})' for i in range(len(values)))}", values
    ).fetchone()
    assert kinds == ("blob", "blob", "null", "blob", "blob", "blob", "integer")
    db.close()


def test_the_plain_module_binds_directly() -> None:
    """The store registers the adapters when it is imported: each answers
    with the very object it is given."""
    registry = sqlite3.adapters
    value = b"x" * 32
    assert registry[(bytes, sqlite3.PrepareProtocol)](value) is value
    assert registry[(type(None), sqlite3.PrepareProtocol)](None) is None


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "rows.sqlite", synchronous="NORMAL")


def _free(store: SQLiteStore) -> bool:
    """Another thread can take the store's lock now."""
    done: list[bool] = []
    worker = threading.Thread(target=lambda: done.append(store.get_session(ALICE) is None))
    worker.start()
    worker.join(timeout=10)
    return done == [True]


def test_the_lock_is_released_whatever_a_block_raises(store: SQLiteStore) -> None:
    database = store._db
    with (
        pytest.raises(StoreError, match="reading it failed: "),
        database.reading("reading it") as db,
    ):
        db.execute("SELECT * FROM no_such_table")
    assert _free(store)
    with (
        pytest.raises(StoreError, match="writing it failed: "),
        database.writing("writing it") as db,
    ):
        db.execute("INSERT INTO no_such_table VALUES (1)")
    assert _free(store)
    with pytest.raises(KeyError), database.writing("writing it") as db:
        raise KeyError("not the database's")
    assert _free(store)
    with pytest.raises(StoreError, match="beyond 64 bits"), database.reading("reading it") as db:
        db.execute("SELECT ?", (2**64,))
    assert _free(store)
    with pytest.raises(ValueError), store.transaction():
        store.put_session(ALICE, b"state", 1)
        raise ValueError("undone")
    assert _free(store)
    with pytest.raises(StoreError, match="do not nest"), store.transaction(), store.transaction():
        pass
    assert _free(store)


def test_a_failed_write_inside_a_transaction_is_undone_alone(store: SQLiteStore) -> None:
    with store.transaction():
        store.put_session(ALICE, b"kept", 1)
        with (
            pytest.raises(StoreError, match="writing it failed"),
            store._db.writing("writing it") as db,
        ):
            db.execute("INSERT INTO settings (key, value) VALUES ('k', '1')")
            db.execute("INSERT INTO no_such_table VALUES (1)")
    assert store.get_session(ALICE) == b"kept"
    assert store.get_setting("k") is None


def test_an_undivided_transaction_spoiled_by_a_failed_call_stores_nothing(
    store: SQLiteStore,
) -> None:
    with pytest.raises(StoreError, match="nothing was stored"), store.transaction(undivided=True):
        store.put_session(ALICE, b"lost", 1)
        with pytest.raises(StoreError), store._db.writing("writing it") as db:
            db.execute("INSERT INTO settings (key, value) VALUES ('k', '1')")
            db.execute("INSERT INTO no_such_table VALUES (1)")
    assert store.get_session(ALICE) is None and store.get_setting("k") is None
    assert _free(store)
    # NotFound having written nothing spoils nothing.
    with store.transaction(undivided=True):
        store.put_session(ALICE, b"kept", 1)
        with pytest.raises(NotFound):
            store.set_status(b"\x01" * 16, DeliveryStatus.DELIVERED, 1)
    assert store.get_session(ALICE) == b"kept"
