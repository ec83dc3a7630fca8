"""Messages sent one at a time, their commits lone and so on the event loop
(SQLite stores on disk, ``synchronous=FULL``): the sender's message is
committed before its frame reaches the recipient, the recipient's before
it acks and before it publishes, as with the commits in worker threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import trio

from p2pdm.core.dm import Ack
from p2pdm.core.model import DeliveryStatus, OutboxItem
from p2pdm.node import offloop
from tests.fakenet import FakeNetwork
from tests.services.conftest import wait_status
from tests.services.test_dm_commit_thread import Peer

#: The gap of these tests, and the pause between two sends (past it).
GAP_S = 0.05
PAUSE_S = GAP_S * 2
MESSAGES = 5


def _ids_in_file(path: Path) -> set[bytes]:
    """The messages committed in ``path``, as another connection sees them."""
    with sqlite3.connect(path) as other:
        return {row[0] for row in other.execute("SELECT id FROM messages")}


@pytest.fixture
async def pair(
    nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Peer, Peer]]:
    monkeypatch.setattr(offloop, "LONE_COMMIT_GAP_SECONDS", GAP_S)
    net = FakeNetwork(nursery)
    alice, bob = Peer(net, tmp_path, "alice"), Peer(net, tmp_path, "bob")
    alice.node.add_contact_from_invite(bob.node.invite())
    bob.node.add_contact_from_invite(alice.node.invite())
    for p in (alice, bob):
        await nursery.start(p.delivery.run)
        await nursery.start(p.node.batcher.run)
    yield alice, bob
    for p in (alice, bob):
        p.store.close()


async def test_messages_alone_are_committed_on_the_loop_before_they_move_on(
    pair: tuple[Peer, Peer],
) -> None:
    alice, bob = pair
    #: Alice's committed messages, as her file held them when Bob took each burst.
    at_bob: list[set[bytes]] = []
    grouped = bob.delivery.receiver._accept_grouped

    def accept_grouped(*args: object) -> object:
        at_bob.append(_ids_in_file(alice.path))
        return grouped(*args)  # type: ignore[arg-type]

    bob.delivery.receiver._accept_grouped = accept_grouped  # type: ignore[method-assign,assignment]
    acked: list[bytes] = []
    original = alice.delivery.book.acked

    def checked(
        items: Sequence[tuple[OutboxItem, Ack]],
        sent: Sequence[OutboxItem] = (),
        original: Callable[..., None] = original,
    ) -> None:
        for item, ack in items:
            assert ack.result == "ok"
            assert item.message_id in _ids_in_file(bob.path)  # committed before its ack
            acked.append(item.message_id)
        original(items, sent)

    alice.delivery.book.acked = checked  # type: ignore[method-assign,assignment]
    sent: list[bytes] = []
    for n in range(MESSAGES):
        message = await alice.node.send(bob.node.peer_id, f"alone {n}")
        sent.append(message.id)
        await wait_status(alice.node, message.id.hex(), DeliveryStatus.DELIVERED)
        await trio.sleep(PAUSE_S)
    assert acked == sent
    # Each envelope reached Bob once it was in Alice's file.
    got = [r.inner.id for r in bob.received]
    assert got == sent and len(at_bob) == MESSAGES
    for message_id, committed_then in zip(sent, at_bob, strict=True):
        assert message_id in committed_then
    # The messages' commits were lone: on the loop, on both sides.
    main = threading.get_ident()
    assert alice.connection.commits.count(main) >= MESSAGES
    assert bob.connection.commits.count(main) >= MESSAGES
    assert alice.connection.overlaps == 0 and bob.connection.overlaps == 0
