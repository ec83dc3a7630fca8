"""What only the SQLite store has: a file, its modes, WAL, migrations, query plans."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from operator import methodcaller
from pathlib import Path

import pytest

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.core.model import (
    Contact,
    DeliveryStatus,
    Direction,
    OutboxItem,
    Recipient,
    StoredMessage,
)
from p2pdm.core.profile import Profile
from p2pdm.errors import StoreError
from p2pdm.store import SQLiteStore, schema
from p2pdm.store.base import UNREAD_STATUSES
from p2pdm.store.schema import MIGRATIONS, SCHEMA_VERSION, UNREAD_CONDITION, split_statements
from p2pdm.store.search_text import SEARCH_TEXT_FUNCTION, search_text
from tests.conftest import mode
from tests.store.conftest import ALICE, BOB, receive, store_before

CONVERSATION = b"\x07" * 16


def message(n: int, conversation: bytes = CONVERSATION) -> StoredMessage:
    return StoredMessage(
        id=n.to_bytes(16, "big"),
        conversation_id=conversation,
        peer=ALICE,
        direction=Direction.IN,
        kind="text",
        body=b"hello",
        sent_at_ms=n,
        stored_at_ms=n,
        status=DeliveryStatus.DELIVERED,
    )


def _old_sent_and_received(db: sqlite3.Connection) -> None:
    """Message 1 (out, deposited) and 2 (in, delivered) with Alice, written
    as a home of an older schema holds them (raw rows, before any migration
    that follows)."""
    db.execute(
        "INSERT INTO conversations (id, peer, last_message_at_ms, last_seq) VALUES (?, ?, 1, 2)",
        (CONVERSATION, ALICE.raw),
    )
    for n, direction, status in ((1, "out", "deposited"), (2, "in", "delivered")):
        db.execute(
            "INSERT INTO messages (seq, id, conversation_id, peer, direction, kind, body, "
            "sent_at_ms, stored_at_ms, status) VALUES (?, ?, ?, ?, ?, 'text', x'a0', 1, 1, ?)",
            (n, message(n).id, CONVERSATION, ALICE.raw, direction, status),
        )


def outbox_item(n: int) -> OutboxItem:
    return OutboxItem(
        envelope_id=n.to_bytes(16, "big"),
        message_id=n.to_bytes(16, "big"),
        recipient=BOB,
        envelope=b"sealed",
        created_at_ms=n,
        expires_at_ms=n + 1_000,
        next_attempt_at_ms=n,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(path)
    yield opened
    opened.close()


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


# --- the file ------------------------------------------------------------


def test_file_and_wal_companions_are_owner_only_whatever_the_umask(path: Path) -> None:
    with umask(0), SQLiteStore(path) as store:
        store.add_message(message(1))
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert name.exists(), name
            assert mode(name) == 0o600, name


def test_existing_file_with_wider_mode_is_tightened(path: Path) -> None:
    SQLiteStore(path).close()
    path.chmod(0o644)
    with SQLiteStore(path):
        assert mode(path) == 0o600


def test_wal_mode_foreign_keys_and_durability(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.put_session(ALICE, b"s", 1)
        db = store._db._connection()  # the store's own settings are per connection
        assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    with closing(sqlite3.connect(path)) as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_normal_durability_on_request(path: Path) -> None:
    with SQLiteStore(path, synchronous="NORMAL") as store:
        assert store._db._connection().execute("PRAGMA synchronous").fetchone() == (1,)
    with pytest.raises(StoreError, match="synchronous"):
        SQLiteStore(path, synchronous="OFF")


def test_reopen_keeps_everything(path: Path) -> None:
    with SQLiteStore.open(path) as store:
        store.set_setting("name", "me")
        store.put_contact(Contact(ALICE, "Alice", 1, addrs=("/ip4/1.2.3.4/tcp/1",)))
        stored = store.add_message(message(1))
        store.set_status(stored.id, DeliveryStatus.READ, 5)
        store.put_session(ALICE, b"ratchet", 2)
        store.put_prekeys(b"prekeys")
        store.mark_seen(stored.id, 3)
        store.add_outbox(outbox_item(1))
        before = (
            store.settings(),
            store.list_contacts(),
            store.messages(CONVERSATION, 10),
            store.status_history(stored.id),
            store.list_conversations(),
            store.counts(),
        )
    with SQLiteStore.open(path) as store:
        after = (
            store.settings(),
            store.list_contacts(),
            store.messages(CONVERSATION, 10),
            store.status_history(stored.id),
            store.list_conversations(),
            store.counts(),
        )
        assert after == before
        assert store.get_session(ALICE) == b"ratchet"
        assert store.get_prekeys() == b"prekeys"
        assert store.has_seen(stored.id)
        assert store.get_outbox(outbox_item(1).envelope_id) == outbox_item(1)
        assert store.add_message(message(2)).seq == stored.seq + 1


def test_reopen_keeps_mailbox_envelopes_and_deposits(path: Path) -> None:
    """A mailbox node that restarts still holds what it was given."""
    with SQLiteStore.open(path) as store:
        held, _ = store.mailbox_add(StoredEnvelope(ALICE, b"i" * 16, b"sealed", 10, 9_000))
        store.add_outbox(outbox_item(1))
        store.add_deposit(outbox_item(1).envelope_id, BOB, 7_000)
    with SQLiteStore.open(path) as store:
        assert store.mailbox_fetch(ALICE, 0, 0, 10) == [held]
        assert store.deposits(outbox_item(1).envelope_id) == [(BOB, 7_000)]
        again, new = store.mailbox_add(StoredEnvelope(ALICE, b"j" * 16, b"other", 10, 9_000))
        assert new and again.seq == held.seq + 1


# --- migrations ----------------------------------------------------------


def test_migrations_recorded_once(path: Path) -> None:
    SQLiteStore(path).close()
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        rows = db.execute("SELECT version, applied_at_ms FROM schema_version").fetchall()
    assert [version for version, _ in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert all(applied > 0 for _, applied in rows)


def test_store_from_a_newer_schema_refused_untouched(path: Path) -> None:
    SQLiteStore(path).close()
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=r"newer p2pdm; upgrade"):
        SQLiteStore(path)
    with closing(sqlite3.connect(path)) as db, db:
        (version,) = db.execute("SELECT max(version) FROM schema_version").fetchone()
    assert version == SCHEMA_VERSION + 1


def test_a_failing_migration_leaves_the_previous_version(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SQLiteStore(path).close()
    broken = "CREATE TABLE half_done (a INTEGER); CREATE TABLE broken (;"
    monkeypatch.setattr(schema, "MIGRATIONS", (*MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="cannot open message store"):
        SQLiteStore(path)
    with closing(sqlite3.connect(path)) as db, db:
        assert schema.schema_version(db) == SCHEMA_VERSION
        found = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchone()
    assert found is None


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = """
    CREATE TABLE t (a TEXT);
    CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
        UPDATE t SET a = 'x;y' WHERE rowid = new.rowid;
    END;
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    for unfinished in ("CREATE TABLE t (a", "CREATE TABLE t (a); INSERT INTO t VALUES ('x;"):
        with pytest.raises(StoreError, match="incomplete"):
            split_statements(unfinished)


def test_unread_condition_matches_unread_statuses() -> None:
    listed = UNREAD_CONDITION.split("IN (")[1].rstrip(")")
    assert {s.strip(" '") for s in listed.split(",")} == set(UNREAD_STATUSES)
    first = MIGRATIONS[0]
    assert isinstance(first, str) and UNREAD_CONDITION in first  # the very same text


# --- damaged or unusable files -------------------------------------------


def test_not_a_database_gives_store_error(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite file, just some text " * 100)
    with pytest.raises(StoreError, match="cannot open message store") as caught:
        SQLiteStore(path)
    assert not isinstance(caught.value, sqlite3.Error)


def test_damaged_header_gives_store_error(path: Path) -> None:
    with SQLiteStore(path) as store:
        store.add_message(message(1))
    data = bytearray(path.read_bytes())
    data[16:24] = b"\xff" * 8  # page size and format bytes
    path.write_bytes(bytes(data))
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        companion.unlink(missing_ok=True)
    with pytest.raises(StoreError):
        SQLiteStore(path)


def test_unusable_paths_give_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path / "missing-dir" / "store.sqlite")
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path)


# --- query plans ---------------------------------------------------------


_FULL_SCAN = re.compile(r"^SCAN \w+$")  # a table scan without any index


def plans_of(store: SQLiteStore, call: Callable[[SQLiteStore], object]) -> list[str]:
    """The query plan of every statement that ``call`` runs, one string per statement."""
    db = store._db._connection()
    statements: list[str] = []
    db.set_trace_callback(statements.append)  # gets the SQL with its values filled in
    try:
        call(store)
    finally:
        db.set_trace_callback(None)
    plans = []
    for sql in statements:
        if sql.split()[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE"}:
            steps = [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql)]
            assert not any(_FULL_SCAN.match(step) for step in steps), (sql, steps)
            assert not any("TEMP B-TREE" in step for step in steps), (sql, steps)
            plans.append(" | ".join(steps))
    return plans


@pytest.fixture
def busy_store(store: SQLiteStore) -> SQLiteStore:
    with store.transaction():
        for n in range(300):
            store.add_message(message(n, conversation=bytes([n % 5]) * 16))
            store.add_outbox(outbox_item(n))
            store.put_contact(Contact(PeerId.from_public_key(n.to_bytes(32, "big")), f"c{n}", n))
            recipient = ALICE if n % 2 else BOB
            store.mailbox_add(StoredEnvelope(recipient, mid16(n), bytes([n % 256]) * n, n, 50 + n))
    return store


def mid16(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_message_page_is_an_index_range_scan(busy_store: SQLiteStore) -> None:
    conversation = bytes([3]) * 16
    first = busy_store.messages(conversation, 10)
    for before in (None, first.next_before):
        (plan,) = plans_of(busy_store, methodcaller("messages", conversation, 10, before))
        assert plan == (
            "SEARCH messages USING INDEX messages_by_conversation (conversation_id=? AND seq<?)"
        )


@pytest.mark.parametrize(
    ("call", "index"),
    [
        (lambda s: s.outbox_due(100, 10), "outbox_by_next_attempt"),
        (lambda s: s.outbox_for(BOB), "outbox_by_recipient"),
        (lambda s: s.find_contact_by_name("C7"), "contacts_by_name"),
        (lambda s: s.mark_conversation_read(bytes([2]) * 16, 1), "messages_unread"),
        (lambda s: s.accept_request(ALICE), "messages_requests"),
        (lambda s: s.purge_seen(5), "seen_ids_by_time"),
        (lambda s: s.counts(), "messages_unread"),
        (lambda s: s.mailbox_fetch(ALICE, 7, 100, 10), "mailbox_by_recipient"),
        (lambda s: s.mailbox_delete(ALICE, [1, 3]), "mailbox_by_recipient"),
        (lambda s: s.mailbox_usage(ALICE), "mailbox_by_depositor"),
        (lambda s: s.mailbox_usage(ALICE, b"tag"), "mailbox_by_depositor"),
        (lambda s: s.mailbox_purge(100), "mailbox_by_expiry"),
    ],
)
def test_other_lookups_use_their_index(
    busy_store: SQLiteStore, call: Callable[[SQLiteStore], object], index: str
) -> None:
    plans = plans_of(busy_store, call)
    assert any(index in plan for plan in plans), plans


def test_numbers_beyond_64_bits_give_store_error(store: SQLiteStore) -> None:
    with pytest.raises(StoreError, match="64 bits"):
        store.mark_seen(b"x" * 16, 2**64)
    with pytest.raises(StoreError, match="64 bits"):
        store.outbox_due(2**64, 1)
    with pytest.raises(StoreError, match="not valid Unicode"):
        store.put_contact(Contact(ALICE, "lone \ud800 surrogate", 1))


def test_another_thread_waits_for_an_open_transaction(store: SQLiteStore) -> None:
    done: list[bytes | None] = []

    def other_thread() -> None:
        store.put_session(BOB, b"from another thread", 1)
        done.append(store.get_session(ALICE))

    with store.transaction():
        store.put_session(ALICE, b"mine", 1)
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join(timeout=0.05)
        assert worker.is_alive() and not done  # it cannot slip into our transaction
    worker.join(timeout=5)
    assert done == [b"mine"]
    assert store.get_session(BOB) == b"from another thread"


def test_the_request_caps_migration_keeps_the_event_log_and_its_gap(path: Path) -> None:
    """A store from before request events were kept apart: its request events
    move to their own part, and what the old log had pruned still counts."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for version, script in enumerate(MIGRATIONS[:3], start=1):
            assert isinstance(script, str)  # the first migrations are SQL scripts
            for statement in split_statements(script):
                db.execute(statement)
            db.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        db.execute(
            "INSERT INTO messages (id, conversation_id, peer, direction, kind, body, "
            "sent_at_ms, stored_at_ms, status, request) VALUES (?, ?, ?, 'in', 'text', ?, 1, 1, "
            "'delivered', 1)",
            (b"r" * 16, CONVERSATION, BOB.raw, b"hi"),
        )
        for n, (kind, mid) in enumerate(
            [
                ("peer.online", None),  # id 1: pruned below
                ("message.received", b"m" * 16),
                ("contact.request", b"r" * 16),
                ("message.received", b"r" * 16),
            ],
            start=1,
        ):
            db.execute(
                "INSERT INTO events (id, type, at_ms, message_id) VALUES (?, ?, 0, ?)",
                (n, kind, mid),
            )
        db.execute("DELETE FROM events WHERE id = 1")
    with closing(SQLiteStore(path, max_request_events=2)) as store:
        assert store.events_pruned() == (1, 0)
        assert [e.id for e in store.events(0, 10)] == [2, 3, 4]
        receive(store, replace(message(5), peer=BOB, request=True))  # the oldest goes
        assert [e.id for e in store.events(0, 10)] == [2, 4, 5]
        assert store.events_pruned() == (1, 3)


def test_the_recipients_migration_keeps_statuses_of_a_store_written_before(path: Path) -> None:
    """A store of the schema before per-recipient status: each outgoing message
    gets its recipient's row as it stood, and message events their conversation."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        before = MIGRATIONS.index(schema._MIGRATION_RECIPIENTS)
        for version, migration in enumerate(MIGRATIONS[:before], start=1):
            schema._apply(db, migration)
            db.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        _old_sent_and_received(db)
        db.executemany(
            "INSERT INTO status_history (message_id, status, at_ms, detail) VALUES (?, ?, ?, ?)",
            [
                (message(1).id, "queued", 1, ""),
                (message(1).id, "sent", 5, ""),
                (message(1).id, "deposited", 7, "held by 2 mailboxes"),
                (message(2).id, "delivered", 1, ""),
            ],
        )
        db.execute(
            "INSERT INTO events (type, at_ms, peer, message_id) VALUES ('message.status', 7, ?, ?)",
            (ALICE.raw, message(1).id),
        )
        db.execute(
            "INSERT INTO events (type, at_ms, peer) VALUES ('peer.online', 8, ?)", (ALICE.raw,)
        )
    with closing(SQLiteStore(path)) as store:
        out, incoming = store.get_message(message(1).id), store.get_message(message(2).id)
        assert out is not None and incoming is not None
        assert out.recipients == (
            Recipient(ALICE, DeliveryStatus.DEPOSITED, 7, "held by 2 mailboxes"),
        )
        assert incoming.recipients == ()
        assert [e.conversation_id for e in store.events(0, 10)] == [CONVERSATION, None]
        assert store.set_status(message(1).id, DeliveryStatus.DELIVERED, 9, recipient=ALICE)
        moved = store.get_message(message(1).id)
        assert moved is not None and moved.status == DeliveryStatus.DELIVERED
        assert moved.recipients == (Recipient(ALICE, DeliveryStatus.DELIVERED, 9),)


def test_the_blocked_peers_migration_keeps_contacts_blocked_before(path: Path) -> None:
    """A store written before the blocked-peers table: a contact marked blocked
    stays blocked, the others do not become so, and the store works on."""
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        before = MIGRATIONS.index(schema._MIGRATION_BLOCKED)
        # The search index's triggers (an earlier migration) call the store's function.
        db.create_function(SEARCH_TEXT_FUNCTION, 2, search_text, deterministic=True)
        for version, migration in enumerate(MIGRATIONS[:before], start=1):
            schema._apply(db, migration)
            db.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        for peer, name, blocked in ((ALICE, "alice", 1), (BOB, "bob", 0)):
            db.execute(
                "INSERT INTO contacts (peer_id, name, name_key, added_at_ms, blocked) "
                "VALUES (?, ?, ?, 7, ?)",
                (peer.raw, name, name, blocked),
            )
    with closing(SQLiteStore(path)) as store:
        assert [(b.peer_id, b.blocked_at_ms) for b in store.list_blocked()] == [(ALICE, 7)]
        alice, bob = store.get_contact(ALICE), store.get_contact(BOB)
        assert alice is not None and alice.blocked and bob is not None and not bob.blocked
        assert store.unblock_peer(ALICE, 9) and not store.is_blocked(ALICE)


def test_a_store_from_before_profiles_migrates_with_none_published(path: Path) -> None:
    """Written by the schema before profiles: it opens with no profile (opt-in) and
    keeps what it held."""
    profiles = MIGRATIONS.index(schema._MIGRATION_PROFILE)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for version, migration in enumerate(MIGRATIONS[:profiles], start=1):
            schema._apply(db, migration)
            db.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        db.execute("INSERT INTO settings (key, value) VALUES ('name', '\"alice\"')")
    with closing(SQLiteStore(path)) as store:
        assert store.get_setting("name") == "alice"
        assert store.get_profile() is None
        assert store.note_handle_claims("alice", [ALICE], 5, cap=10) == {ALICE: 5}
        store.put_profile(Profile(name="Alice", handle="alice"), 6)
    with closing(SQLiteStore(path)) as store:
        assert store.get_profile() == Profile(name="Alice", handle="alice")
        assert store.handle_claimants("alice", 10) == [ALICE]


def test_a_store_from_before_first_status_keeps_every_status_and_event(path: Path) -> None:
    """A home written when a message's first status was a ``status_history``
    row: every message, status and event is there after the migration, old
    messages' histories read as before, and new messages keep their first
    status in their row (no history row for it)."""
    with closing(store_before(path, schema._migration_first_status)) as db:
        _old_sent_and_received(db)
        db.execute(
            "INSERT INTO message_recipients (message_id, peer, status, at_ms, detail) "
            "VALUES (?, ?, 'deposited', 7, 'held by 2 mailboxes')",
            (message(1).id, ALICE.raw),
        )
        db.executemany(
            "INSERT INTO status_history (message_id, status, at_ms, detail) VALUES (?, ?, ?, ?)",
            [
                (message(1).id, "queued", 1, ""),
                (message(1).id, "sent", 5, ""),
                (message(1).id, "deposited", 7, "held by 2 mailboxes"),
                (message(2).id, "delivered", 1, ""),
            ],
        )
        db.execute(
            "INSERT INTO events (type, at_ms, peer, message_id, status, conversation_id) "
            "VALUES ('message.status', 7, ?, ?, 'deposited', ?)",
            (ALICE.raw, message(1).id, CONVERSATION),
        )

    def history(store: SQLiteStore, n: int) -> list[tuple[str, int, str]]:
        return [(str(s.status), s.at_ms, s.detail) for s in store.status_history(message(n).id)]

    with closing(SQLiteStore(path)) as store:
        assert store.counts()["messages"] == 2
        assert history(store, 1) == [
            ("queued", 1, ""),
            ("sent", 5, ""),
            ("deposited", 7, "held by 2 mailboxes"),
        ]
        assert history(store, 2) == [("delivered", 1, "")]
        [event] = store.events(0, 10)
        assert event.message_id == message(1).id and event.status is DeliveryStatus.DEPOSITED
        assert store.note_status(message(1).id, 8, "held by 3 mailboxes", recipient=ALICE)
        assert store.set_status(message(1).id, DeliveryStatus.DELIVERED, 9, recipient=ALICE)
        assert history(store, 1)[3:] == [
            ("deposited", 8, "held by 3 mailboxes"),
            ("delivered", 9, ""),
        ]
        new = replace(message(3), direction=Direction.OUT, status=DeliveryStatus.QUEUED)
        store.add_message(replace(new, recipients=(Recipient(ALICE, DeliveryStatus.QUEUED, 3),)))
        assert history(store, 3) == [("queued", 3, "")]
        assert store.note_status(message(3).id, 4, "no route", recipient=ALICE)
        assert store.set_status(message(3).id, DeliveryStatus.SENT, 5, recipient=ALICE)
        assert history(store, 3) == [("queued", 3, ""), ("queued", 4, "no route"), ("sent", 5, "")]
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT m.seq, m.first_status, count(h.n) FROM messages m "
            "LEFT JOIN status_history h ON h.message_id = m.id GROUP BY m.seq ORDER BY m.seq"
        ).fetchall()
    assert rows == [(1, None, 5), (2, None, 1), (3, "queued", 2)]
