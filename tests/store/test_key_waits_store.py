"""Messages waiting for their recipient's prekeys are kept alike in both stores,
bounded, gone with their message, and a store of the previous schema gains
the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus, Direction, StoredMessage, direct_conversation_id
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_KEY_WAITS
from p2pdm.store import MemoryStore, SQLiteStore, Store, schema
from p2pdm.store.key_waits import KeyWait
from tests.store.conftest import ALICE, BOB, CAROL, store_before


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield opened
    opened.close()


def _outgoing(store: Store, to: PeerId, n: int) -> bytes:
    """Store outgoing message ``n`` to ``to`` (queued); its id."""
    message_id = n.to_bytes(16, "big")
    store.add_message(
        StoredMessage(
            id=message_id,
            conversation_id=direct_conversation_id(ALICE, to),
            peer=to,
            direction=Direction.OUT,
            kind="text",
            body=b"\xa1ata",
            sent_at_ms=n,
            stored_at_ms=n,
            status=DeliveryStatus.QUEUED,
        )
    )
    return message_id


def test_waits_are_kept_per_peer_in_the_order_written_and_dropped(store: Store) -> None:
    # Ids and times do not order them (several are written in one millisecond).
    first, second = _outgoing(store, BOB, 9), _outgoing(store, BOB, 1)
    other = _outgoing(store, CAROL, 5)
    store.hold_for_keys(KeyWait(other, CAROL, 10, 900))
    store.hold_for_keys(KeyWait(second, BOB, 10, 1000))
    store.hold_for_keys(KeyWait(first, BOB, 10, 1000))
    assert [w.message_id for w in store.key_waits(BOB)] == [first, second]
    assert store.key_waits(CAROL) == [KeyWait(other, CAROL, 10, 900)]
    assert [w.message_id for w in store.key_waits()] == [first, second, other]
    store.hold_for_keys(KeyWait(first, BOB, 10, 2000))  # replaced, not doubled
    assert [w.expires_at_ms for w in store.key_waits(BOB)] == [2000, 1000]
    assert store.drop_key_wait(first) and not store.drop_key_wait(first)
    assert [w.message_id for w in store.key_waits()] == [second, other]


def test_a_wait_goes_with_its_message(store: Store) -> None:
    message_id = _outgoing(store, BOB, 1)
    store.hold_for_keys(KeyWait(message_id, BOB, 1, 1000))
    assert store.delete_message(message_id)
    assert store.key_waits() == []


def test_waits_are_bounded(store: Store) -> None:
    with store.transaction():
        for n in range(MAX_KEY_WAITS):
            store.hold_for_keys(KeyWait(_outgoing(store, BOB, n), BOB, n, 10**9))
    one_more = _outgoing(store, BOB, MAX_KEY_WAITS)
    with pytest.raises(StoreError, match="wait for their recipients' keys"):
        store.hold_for_keys(KeyWait(one_more, BOB, 0, 10**9))
    store.hold_for_keys(KeyWait(bytes(16), BOB, 0, 1))  # one already kept may change
    assert len(store.key_waits(BOB)) == MAX_KEY_WAITS


def test_a_store_of_the_previous_schema_gains_the_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store_before(path, schema._MIGRATION_KEY_WAITS).close()
    with SQLiteStore(path) as store:
        message_id = _outgoing(store, BOB, 1)
        store.hold_for_keys(KeyWait(message_id, BOB, 1, 1000))
        assert [w.message_id for w in store.key_waits(BOB)] == [message_id]
