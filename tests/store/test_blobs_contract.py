"""Blob rows and references behave alike in both stores."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from p2pdm.core.model import Direction
from p2pdm.errors import NotFound
from p2pdm.store import MemoryStore, SQLiteStore, Store
from p2pdm.store.blobs import BlobRecord
from tests.store.conftest import ALICE, BOB
from tests.store.test_contract import msg


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield opened
    opened.close()


def blob(n: int, *, at_ms: int = 100, source: Any = None) -> BlobRecord:
    return BlobRecord(
        blob_id=bytes([n]) * 32,
        key=b"k" * 32,
        size=10,
        digest=b"d" * 32,
        mime="image/png",
        name="a.png",
        source=source,
        state="local" if source is None else "pending",
        have=0,
        created_at_ms=at_ms,
        width=3,
        waveform=b"\x00\x07",
    )


def test_blobs_are_added_once_and_track_progress(store: Store) -> None:
    assert store.put_blob(blob(1))
    assert not store.put_blob(blob(1))
    assert store.get_blob(blob(1).blob_id) == blob(1)
    store.set_blob_progress(blob(1).blob_id, "fetching", 3, "cut")
    got = store.get_blob(blob(1).blob_id)
    assert got is not None and (got.state, got.have, got.detail) == ("fetching", 3, "cut")
    with pytest.raises(NotFound):
        store.set_blob_progress(b"\x09" * 32, "ready", 1, "")


def test_only_peers_a_message_of_ours_carried_the_blob_to_may_fetch_it(store: Store) -> None:
    store.put_blob(blob(1))
    store.add_message(msg(1, ALICE, direction=Direction.OUT))
    store.add_message(msg(2, BOB))  # an incoming message from Bob names it
    store.add_blob_ref(blob(1).blob_id, msg(1).id, ALICE)
    store.add_blob_ref(blob(1).blob_id, msg(2).id, BOB)
    assert store.blob_shared_with(blob(1).blob_id, ALICE)
    assert not store.blob_shared_with(blob(1).blob_id, BOB)
    assert not store.blob_shared_with(blob(2).blob_id, ALICE)
    assert store.blobs_of_message(msg(1).id) == [blob(1).blob_id]


def test_a_blob_no_message_references_is_garbage_once_old_enough(store: Store) -> None:
    store.put_blob(blob(1))
    store.put_blob(blob(2))
    store.add_message(msg(1, ALICE, direction=Direction.OUT))
    store.add_blob_ref(blob(1).blob_id, msg(1).id, ALICE)
    assert store.unreferenced_blobs(200) == [blob(2).blob_id]
    assert store.unreferenced_blobs(50) == []  # a fresh upload not sent yet stays
    assert store.release_message_blobs(msg(1).id) == 1
    # A blob a message carried is garbage as soon as none does, however fresh.
    assert store.unreferenced_blobs(50) == [blob(1).blob_id]
    assert sorted(store.unreferenced_blobs(200)) == [blob(1).blob_id, blob(2).blob_id]
    assert store.delete_blob(blob(1).blob_id)
    assert store.get_blob(blob(1).blob_id) is None
    assert not store.delete_blob(blob(1).blob_id)


def test_blobs_to_fetch_are_those_from_peers_not_yet_whole(store: Store) -> None:
    store.put_blob(blob(1))
    store.put_blob(blob(2, source=ALICE, at_ms=5))
    store.put_blob(blob(3, source=ALICE, at_ms=1))
    store.set_blob_progress(blob(2).blob_id, "ready", 1, "")
    store.set_blob_progress(blob(3).blob_id, "fetching", 0, "")
    assert [b.blob_id for b in store.blobs_to_fetch()] == [blob(3).blob_id]


def test_a_transaction_that_fails_leaves_no_blob(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.put_blob(blob(1))
        raise RuntimeError("boom")
    assert store.get_blob(blob(1).blob_id) is None


@pytest.mark.parametrize("goes", ["unsent", "erased", "deleted", "conversation deleted"])
def test_a_message_that_goes_releases_its_blobs_with_its_body(store: Store, goes: str) -> None:
    """Unsent, erased (expired) or deleted: its references go in the same
    transaction; another conversation's blob stays referenced."""
    for n, peer in ((1, ALICE), (2, BOB)):
        store.put_blob(blob(n))
        store.add_message(msg(n, peer, direction=Direction.OUT))
        store.add_blob_ref(blob(n).blob_id, msg(n).id, peer)
    gone = msg(1).id
    if goes == "unsent":
        assert store.unsend_message(gone)
    elif goes == "erased":
        assert store.erase_message_body(gone)
    elif goes == "deleted":
        assert store.delete_message(gone)
    else:
        assert store.delete_conversation(msg(1).conversation_id) == 1
    assert store.blobs_of_message(gone) == []
    assert not store.blob_shared_with(blob(1).blob_id, ALICE)
    assert store.unreferenced_blobs(0) == [blob(1).blob_id]
    assert store.blob_shared_with(blob(2).blob_id, BOB)
