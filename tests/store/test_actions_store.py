"""The message actions' part of the store contract, on both stores; the migration
that adds it, from a store of the previous schema; an unsent text leaves the file."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path

from p2pdm.core import cbor
from p2pdm.core.actions import Action, ActionBody, HeldAction
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import EditBody, ReactionBody, UnsendBody
from p2pdm.core.model import Direction, StoredMessage
from p2pdm.limits import HELD_ACTION_TTL_MS, MAX_HELD_ACTIONS_PER_PEER
from p2pdm.store import SQLiteStore, Store, schema
from tests.store.conftest import ALICE, BOB, store_before
from tests.store.test_contract import WITH_ALICE, mid, msg, outbox_item, store

__all__ = ["store"]  # the contract's fixture: every test here runs on each store


def _text(message: StoredMessage | None) -> bytes:
    assert message is not None
    return message.body


def test_one_reaction_per_person_the_newest_wins_in_any_order(store: Store) -> None:
    store.add_message(msg(1))
    assert store.set_reaction(mid(1), ALICE, "👍", 10)
    assert store.set_reaction(mid(1), BOB, "👍", 5)
    assert store.reactions([mid(1), mid(2)]) == {mid(1): {"👍": sorted([ALICE, BOB])}}
    assert store.set_reaction(mid(1), ALICE, "❤️", 20)
    assert not store.set_reaction(mid(1), ALICE, "😮", 15)  # older: arrived late
    assert store.set_reaction(mid(1), ALICE, "", 30)  # taken back
    assert not store.set_reaction(mid(1), ALICE, "👍", 25)  # cannot come back
    assert store.reactions([mid(1)]) == {mid(1): {"👍": [BOB]}}


def test_an_edit_applies_only_if_newer_and_never_to_an_unsent_message(store: Store) -> None:
    store.add_message(msg(1))
    assert store.edit_message_body(mid(1), b"v2", 10)
    assert not store.edit_message_body(mid(1), b"v1", 5)
    assert store.edit_message_body(mid(1), b"v3", 10)  # same time: the larger body
    assert not store.edit_message_body(mid(1), b"v0", 10)
    edited = store.get_message(mid(1))
    assert edited is not None and (edited.body, edited.edited_at_ms) == (b"v3", 10)
    assert store.unsend_message(mid(1)) and not store.unsend_message(mid(1))
    assert not store.edit_message_body(mid(1), b"v4", 99)
    gone = store.get_message(mid(1))
    assert gone is not None and gone.unsent and gone.body == b""


def _held(n: int, target: int, at: int, sender: PeerId = ALICE) -> HeldAction:
    body: list[ActionBody] = [
        ReactionBody(mid(target), "👍"),
        EditBody(mid(target), "x"),
        UnsendBody(mid(target)),
    ]
    return HeldAction(Action(mid(n), sender, WITH_ALICE, at, body[n % 3]), at)


def test_erasing_a_body_removes_its_reactions_and_held_actions(store: Store) -> None:
    store.add_message(msg(1))
    store.set_reaction(mid(1), ALICE, "👍", 1)
    store.hold_action(_held(100, 1, 1))
    assert store.erase_message_body(mid(1))
    assert _text(store.get_message(mid(1))) == b"" and store.reactions([mid(1)]) == {}
    assert store.held_count() == 0 and not store.erase_message_body(mid(9))


def test_held_actions_are_bounded_in_count_and_time(store: Store) -> None:
    for n in range(MAX_HELD_ACTIONS_PER_PEER + 2):
        store.hold_action(_held(1000 + n, 7, 1))
    assert store.held_count() == MAX_HELD_ACTIONS_PER_PEER
    assert store.counts()["held_actions_dropped"] == 2
    [first, *_] = store.take_held(mid(7), 1)
    assert first.action.id == mid(1002)  # the oldest went
    store.hold_action(_held(1, 8, 1))
    assert store.take_held(mid(8), 2 + HELD_ACTION_TTL_MS) == []  # expired
    assert store.counts()["held_actions_dropped"] == 3


def test_a_held_action_with_its_own_expiry_goes_then_on_every_store(store: Store) -> None:
    store.hold_action(replace(_held(1, 7, 1), expires_at_ms=1_000))  # a timed conversation
    store.hold_action(_held(2, 8, 1))
    assert store.drop_expired_held(1_000) == 0 and store.held_count() == 2
    assert store.drop_expired_held(1_001) == 1 and store.held_count() == 1
    assert store.counts()["held_actions_dropped"] == 1
    store.hold_action(replace(_held(3, 9, 1), expires_at_ms=500))
    assert store.take_held(mid(9), 501) == []  # not applied past its wait, purged or not
    [kept] = store.take_held(mid(8), 1_001)
    assert kept.expires_at_ms is None


def test_held_actions_of_the_previous_schema_upgrade_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with closing(store_before(path, schema._MIGRATION_HELD_EXPIRY)) as db:
        db.execute(
            "INSERT INTO held_actions (id, target, sender, conversation_id, kind, body, "
            "sent_at_ms, held_at_ms) VALUES (?, ?, ?, ?, 'react', ?, 1, 1)",
            (mid(1), mid(7), ALICE.raw, WITH_ALICE, cbor.encode({"target": mid(7), "emoji": "👍"})),
        )
    with closing(SQLiteStore(path)) as upgraded:
        assert upgraded.drop_expired_held(2) == 0  # no expiry of its own: the usual wait
        [held] = upgraded.take_held(mid(7), 2)
        assert held.expires_at_ms is None and held.action.id == mid(1)


def test_delete_for_me_and_a_whole_conversation(store: Store) -> None:
    for n in (1, 2, 3):
        store.add_message(msg(n, at_ms=n))
    store.add_message(msg(4, BOB))
    assert store.delete_message(mid(3)) and not store.delete_message(mid(3))
    conversation = store.get_conversation(WITH_ALICE)
    assert conversation is not None and conversation.unread == 2
    assert [m.id for m in store.messages(WITH_ALICE, 10).messages] == [mid(2), mid(1)]
    assert store.delete_conversation(WITH_ALICE) == 2
    assert store.get_conversation(WITH_ALICE) is None and store.counts()["messages"] == 1


def test_dropping_the_outbox_of_a_message(store: Store) -> None:
    store.add_message(msg(1, direction=Direction.OUT))
    store.add_outbox(replace(outbox_item(5), message_id=mid(1)))
    store.add_outbox(outbox_item(6))
    assert store.remove_outbox_of(mid(1)) == 1 and store.outbox_count() == 1
    store.count_refused_action()
    assert store.counts()["actions_refused"] == 1


def test_a_store_of_the_previous_schema_upgrades_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with closing(store_before(path, schema._MIGRATION_ACTIONS)) as db:
        db.execute(
            "INSERT INTO conversations (id, peer, last_message_at_ms, last_seq) "
            "VALUES (?, ?, 1, 1)",
            (WITH_ALICE, ALICE.raw),
        )
        db.execute(
            "INSERT INTO messages (seq, id, conversation_id, peer, direction, kind, body, "
            "sent_at_ms, stored_at_ms, status) VALUES (1, ?, ?, ?, 'in', 'text', ?, 1, 1, "
            "'delivered')",
            (mid(1), WITH_ALICE, ALICE.raw, cbor.encode({"text": "from before"})),
        )
    with closing(SQLiteStore(path)) as upgraded:
        old = upgraded.get_message(mid(1))
        assert old is not None and (old.edited_at_ms, old.unsent) == (None, False)
        assert upgraded.counts()["actions_refused"] == 0
        assert upgraded.set_reaction(mid(1), BOB, "👍", 2)
        assert upgraded.unsend_message(mid(1))


def test_an_unsent_text_leaves_no_trace_in_the_file(tmp_path: Path) -> None:
    secret = b"the combination is 31-41-59"
    path = tmp_path / "s.sqlite"
    with closing(SQLiteStore(path)) as opened:
        opened.add_message(replace(msg(1), body=cbor.encode({"text": secret.decode()})))
        opened.add_message(msg(2))
        assert opened.unsend_message(mid(1))
    for file in tmp_path.iterdir():
        assert secret not in file.read_bytes(), file.name
