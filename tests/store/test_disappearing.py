"""Conversation settings, disappearing messages and search, on every store
(memory, SQLite, SQLCipher), and what an erased message leaves in the file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from p2pdm.core import cbor
from p2pdm.core.actions import Action, HeldAction
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import EditBody, TextBody, encode_body
from p2pdm.core.model import (
    DeliveryStatus,
    Direction,
    EventType,
    StoredMessage,
    direct_conversation_id,
)
from p2pdm.errors import SchemaError
from p2pdm.store import MemoryStore, SQLiteStore, Store, schema
from p2pdm.store.search_text import search_terms
from tests.store.conftest import ALICE, BOB, receive
from tests.store.test_contract import ME, WITH_ALICE, WITH_BOB, mid, msg, outbox_item

SECRET = "zebracorn"


@pytest.fixture(params=["memory", "sqlite", "sqlcipher"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    opened: Store = (
        MemoryStore()
        if request.param == "memory"
        else SQLiteStore(
            tmp_path / "s.db", key=bytes(range(32)) if request.param == "sqlcipher" else None
        )
    )
    yield opened
    opened.close()


def text(n: int, words: str, *, timer_s: int = 0, **kwargs: Any) -> StoredMessage:
    """Message ``n`` (see ``msg``) as a real text body saying ``words``."""
    body = cbor.encode(encode_body(TextBody(words, timer_s=timer_s)))
    return replace(msg(n, **kwargs), body=body, timer_s=timer_s)


def found(store: Store, query: str, peer: Any = None) -> list[bytes]:
    return [hit.message_id for hit in store.search(search_terms(query), peer, 50)]


def test_search_finds_every_word_newest_first_and_by_peer(store: Store) -> None:
    receive(store, text(1, "Lunch at the Café tomorrow?"))
    receive(store, text(2, "no lunch today", peer=BOB))
    receive(store, text(3, "LUNCH tomorrow then"))
    assert found(store, "lunch") == [mid(3), mid(2), mid(1)]
    assert found(store, "lunch tomorrow") == [mid(3), mid(1)]
    assert found(store, "lunch tom") == [mid(3), mid(1)]  # the last word is a prefix
    assert found(store, "cafe") == [mid(1)]  # diacritics folded
    assert found(store, "lunch", BOB) == [mid(2)]
    assert found(store, "dinner") == []
    [hit] = store.search(search_terms("today"), None, 5)
    assert (hit.conversation_id, hit.peer, hit.direction) == (WITH_BOB, BOB, "in")
    assert "today" in hit.snippet


@pytest.mark.parametrize("query", ['"lunch', "lunch AND", "NEAR(lunch", "lunch*", "-lunch", "^x"])
def test_search_syntax_of_fts5_in_a_query_is_only_text(store: Store, query: str) -> None:
    receive(store, text(1, "lunch x"))
    assert mid(1) in found(store, query) or found(store, query) == []


@pytest.mark.parametrize("query", ["", "   ", "!!! ???", "_", "x" * 300])
def test_a_search_without_words_or_too_big_is_refused(query: str) -> None:
    with pytest.raises(SchemaError):
        search_terms(query)


def test_an_erased_body_leaves_the_search_and_an_expired_message_the_store(store: Store) -> None:
    receive(store, text(1, f"the {SECRET} secret", timer_s=300))
    receive(store, text(2, f"another {SECRET}"))
    assert store.erase_message_body(mid(2))
    assert not store.erase_message_body(mid(99))
    assert found(store, SECRET) == [mid(1)]
    # Not read yet: the timer has not started.
    assert store.expire_messages(10**12, 10) == []
    assert store.mark_conversation_read(WITH_ALICE, 5_000) == [mid(1), mid(2)]
    message = store.get_message(mid(1))
    assert message is not None and message.expires_at_ms == 5_000 + 300_000
    assert store.expire_messages(304_999, 10) == []
    [gone] = store.expire_messages(305_000, 10)
    assert gone.id == mid(1) and SECRET.encode() in gone.body
    assert store.get_message(mid(1)) is None
    assert found(store, SECRET) == []
    assert [m.id for m in store.messages(WITH_ALICE, 10).messages] == [mid(2)]
    [event] = [e for e in store.events(0, 50) if e.type is EventType.MESSAGE_EXPIRED]
    assert (event.message_id, event.conversation_id, event.at_ms) == (mid(1), WITH_ALICE, 305_000)
    store.forget_erased()


def test_an_expired_message_takes_its_reactions_and_held_actions_with_it(store: Store) -> None:
    receive(store, text(1, "soon gone", timer_s=300))
    assert store.set_reaction(mid(1), ALICE, "👍", 10)
    store.hold_action(HeldAction(Action(mid(50), ALICE, WITH_ALICE, 20, EditBody(mid(1), "x")), 20))
    store.mark_conversation_read(WITH_ALICE, 0)
    [gone] = store.expire_messages(300_000, 10)
    assert gone.id == mid(1)
    assert store.reactions([mid(1)]) == {} and store.held_count() == 0
    # A reaction row left behind would come back with a message of the same id.
    assert store.take_held(mid(1), 300_000) == []


def test_an_unsent_or_edited_text_is_found_by_its_new_words_only(store: Store) -> None:
    receive(store, text(1, f"the {SECRET} plan"))
    receive(store, text(2, "first draft"))
    assert found(store, SECRET) == [mid(1)]
    assert store.unsend_message(mid(1))
    assert found(store, SECRET) == []
    edited = cbor.encode(encode_body(TextBody("final words")))
    assert store.edit_message_body(mid(2), edited, 10)
    assert found(store, "draft") == [] and found(store, "final") == [mid(2)]


def test_an_outgoing_message_expires_after_it_is_read_and_leaves_the_outbox(store: Store) -> None:
    out = text(1, "bye", timer_s=3_600, direction=Direction.OUT)
    store.add_message(out)
    store.add_outbox(outbox_item(1))
    store.set_status(mid(1), DeliveryStatus.DELIVERED, 10)
    stored = store.get_message(mid(1))
    assert stored is not None and stored.expires_at_ms is None
    store.set_status(mid(1), DeliveryStatus.READ, 20)
    stored = store.get_message(mid(1))
    assert stored is not None and stored.expires_at_ms == 20 + 3_600_000
    assert [m.id for m in store.expire_messages(3_600_020, 10)] == [mid(1)]
    assert store.outbox_count() == 0


def test_expiry_runs_in_bounded_passes(store: Store) -> None:
    for n in range(1, 6):
        receive(store, replace(text(n, "x", timer_s=300), expires_at_ms=n))
    assert [m.id for m in store.expire_messages(100, 2)] == [mid(1), mid(2)]
    # They were never read: the conversation counts only the unread still there.
    conversation = store.get_conversation(WITH_ALICE)
    assert conversation is not None and conversation.unread == 3
    assert [m.id for m in store.expire_messages(100, 10)] == [mid(3), mid(4), mid(5)]
    conversation = store.get_conversation(WITH_ALICE)
    assert conversation is not None and conversation.unread == 0


def test_the_next_expiry_is_the_soonest_running_timer_even_after_a_rollback(store: Store) -> None:
    assert store.next_expiry_ms() is None
    receive(store, text(1, "not read yet", timer_s=300))  # its timer has not started
    assert store.next_expiry_ms() is None
    receive(store, replace(text(2, "x", timer_s=300), expires_at_ms=900))
    receive(store, replace(text(3, "y", timer_s=300), expires_at_ms=400))
    assert store.next_expiry_ms() == 400
    with pytest.raises(RuntimeError), store.transaction():
        store.expire_messages(500, 10)
        assert store.next_expiry_ms() == 900
        raise RuntimeError("rolled back")
    assert store.next_expiry_ms() == 400
    store.expire_messages(500, 10)
    assert store.next_expiry_ms() == 900
    store.delete_message(mid(2))
    assert store.next_expiry_ms() is None


def test_conversation_settings_and_the_newest_timer_wins(store: Store) -> None:
    fresh = store.update_conversation(WITH_BOB, BOB, 7, muted=True)
    assert (fresh.peer, fresh.muted, fresh.archived, fresh.timer_s) == (BOB, True, False, 0)
    assert store.update_conversation(WITH_BOB, BOB, 8, timer=(86_400, 100)).timer_s == 86_400
    assert store.update_conversation(WITH_BOB, BOB, 9, timer=(300, 50)).timer_s == 86_400  # older
    after = store.update_conversation(WITH_BOB, BOB, 9, timer=(0, 101), archived=True)
    assert (after.timer_s, after.muted, after.archived) == (0, True, True)
    # Two settings at the same time: the larger timer, in either order.
    assert store.update_conversation(WITH_BOB, BOB, 9, timer=(3_600, 200)).timer_s == 3_600
    assert store.update_conversation(WITH_BOB, BOB, 9, timer=(300, 200)).timer_s == 3_600
    assert store.update_conversation(WITH_ALICE, ALICE, 9, timer=(300, 200)).timer_s == 300
    assert store.update_conversation(WITH_ALICE, ALICE, 9, timer=(3_600, 200)).timer_s == 3_600
    after = store.update_conversation(WITH_BOB, BOB, 9, timer=(0, 201))
    assert store.get_conversation(WITH_BOB) == after
    assert {c.id for c in store.list_conversations()} == {WITH_BOB, WITH_ALICE}


def test_pinned_conversations_come_first_the_latest_pinned_on_top(store: Store) -> None:
    carol = PeerId.from_public_key(b"\x09" * 32)
    with_carol = direct_conversation_id(ME, carol)
    for at, (cid, peer) in enumerate(((WITH_BOB, BOB), (WITH_ALICE, ALICE), (with_carol, carol))):
        store.update_conversation(cid, peer, 100 + at)
    assert [c.id for c in store.list_conversations()] == [with_carol, WITH_ALICE, WITH_BOB]
    pinned = store.update_conversation(WITH_BOB, BOB, 500, pinned=True)
    assert pinned.pinned_at_ms == 500 and store.get_conversation(WITH_BOB) == pinned
    store.update_conversation(WITH_ALICE, ALICE, 600, pinned=True)
    assert [c.id for c in store.list_conversations()] == [WITH_ALICE, WITH_BOB, with_carol]
    # Pinned again, it keeps its place; unpinned, it goes back by its last message.
    assert store.update_conversation(WITH_BOB, BOB, 700, pinned=True).pinned_at_ms == 500
    assert store.update_conversation(WITH_ALICE, ALICE, 800, pinned=False).pinned_at_ms is None
    assert [c.id for c in store.list_conversations()] == [WITH_BOB, with_carol, WITH_ALICE]
    assert store.update_conversation(WITH_BOB, BOB, 900, muted=True).pinned_at_ms == 500
    # Each change of a setting is a `conversation.changed` event naming what changed;
    # a setting given as it was is none.
    changed = [e for e in store.events(0, 100) if e.type is EventType.CONVERSATION_CHANGED]
    assert [(e.conversation_id, e.detail, e.at_ms) for e in changed] == [
        (WITH_BOB, "pinned", 500),
        (WITH_ALICE, "pinned", 600),
        (WITH_ALICE, "pinned", 800),
        (WITH_BOB, "muted", 900),
    ]
    assert changed[0].peer == BOB
    store.update_conversation(WITH_BOB, BOB, 950, muted=True, archived=False, pinned=True)
    store.update_conversation(WITH_BOB, BOB, 960, archived=True, pinned=False)
    after = [e for e in store.events(0, 100) if e.type is EventType.CONVERSATION_CHANGED]
    assert [e.detail for e in after[len(changed) :]] == ["archived,pinned"]


def test_secure_delete_is_on_in_plain_and_encrypted_stores(tmp_path: Path) -> None:
    for key in (None, bytes(range(32))):
        with (
            closing(SQLiteStore(tmp_path / f"{key is None}.db", key=key)) as store,
            store._db.reading("checking") as db,
        ):
            assert db.execute("PRAGMA secure_delete").fetchone() == (1,)


def test_no_trace_of_an_expired_text_is_left_in_the_file_or_its_log(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with closing(SQLiteStore(path)) as store:
        for n in range(1, 40):  # enough rows that the index has several segments
            receive(store, text(n, f"note {n} about nothing"))
        receive(store, text(40, f"meet me at the {SECRET} gate", timer_s=300))
        receive(store, text(41, "a later note"))
        assert found(store, SECRET) == [mid(40)]
        store.mark_conversation_read(WITH_ALICE, 1_000)
        assert [m.id for m in store.expire_messages(301_000, 10)] == [mid(40)]
        store.forget_erased()
        files = sorted(tmp_path.glob("store.sqlite*"))
        assert any(p.name.endswith("-wal") for p in files)
        for file in files:
            assert SECRET.encode() not in file.read_bytes(), file.name
        assert found(store, "later") == [mid(41)]


def test_an_old_store_gets_the_new_columns_and_its_texts_indexed(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    before = schema.MIGRATIONS.index(schema._migration_disappearing)
    with closing(sqlite3.connect(path, isolation_level=None)) as db:
        for version, migration in enumerate(schema.MIGRATIONS[:before], start=1):
            schema._apply(db, migration)
            db.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        db.execute(
            "INSERT INTO conversations (id, peer, last_message_at_ms, last_seq) "
            "VALUES (?, ?, 1, 1)",
            (WITH_ALICE, ALICE.raw),
        )
        old = text(1, "kept from before")
        db.execute(
            "INSERT INTO messages (id, conversation_id, peer, direction, kind, body, "
            "sent_at_ms, stored_at_ms, status) VALUES (?, ?, ?, 'in', 'text', ?, 1, 1, "
            "'delivered')",
            (old.id, WITH_ALICE, ALICE.raw, old.body),
        )
    with closing(SQLiteStore(path)) as store:
        assert found(store, "before") == [mid(1)]
        conversation = store.get_conversation(WITH_ALICE)
        assert conversation is not None
        assert (conversation.timer_s, conversation.muted, conversation.archived) == (
            0,
            False,
            False,
        )
        message = store.get_message(mid(1))
        assert message is not None and (message.timer_s, message.expires_at_ms) == (0, None)
