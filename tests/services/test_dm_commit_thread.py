"""Direct delivery with the commits in a worker thread (SQLite stores on disk,
``synchronous=FULL``, real threads): every message stored once and acked
only after its commit; a commit failing in the thread stores nothing and
loses nothing; a task cancelled while its commit runs leaves it committed
and published, and the loop goes on meanwhile."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest
import trio
import trio.lowlevel

from p2pdm.core.dm import Ack
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus, Direction, OutboxItem
from p2pdm.node.messenger import Received
from p2pdm.node.node import Node
from p2pdm.services.dm import Delivery
from p2pdm.store.sqlite import SQLiteStore
from tests.fakenet import FakeHost, FakeNetwork
from tests.services.conftest import wait_status
from tests.store.test_commit_later import WAIT_S, Connection


class Peer:
    def __init__(self, net: FakeNetwork, home: Path, name: str) -> None:
        self.path = home / f"{name}.sqlite"
        self.store = SQLiteStore(self.path)  # synchronous=FULL, the node's default
        self.store._db._db = Connection(self.store._db._db)  # type: ignore[assignment]
        self.node = Node(Identity(os.urandom(32)), self.store)
        self.node.store.set_setting("name", name)
        self.host: FakeHost = net.host(self.node.peer_id)
        self.delivery = Delivery(self.node, self.host, rng=random.Random(1))
        self.node.on_outbox = self.delivery.wake
        self.received: list[Received] = []
        self.node.on_received = self.received.append

    @property
    def connection(self) -> Connection:
        return self.store._db._db  # type: ignore[return-value]

    def stored_in_file(self, message_id: bytes) -> bool:
        """Whether the message is committed, as another connection sees it."""
        with sqlite3.connect(self.path) as other:
            row = other.execute("SELECT 1 FROM messages WHERE id = ?", (message_id,))
            return row.fetchone() is not None


@pytest.fixture
async def peers(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[list[Peer]]:
    net = FakeNetwork(nursery)
    everyone = [Peer(net, tmp_path, name) for name in ("alice", "bob", "carol")]
    for a in everyone:
        for b in everyone:
            if a is not b:
                a.node.add_contact_from_invite(b.node.invite())
    for p in everyone:
        await nursery.start(p.delivery.run)
        await nursery.start(p.node.batcher.run)
    yield everyone
    for p in everyone:
        p.store.close()


async def _delivered(peer: Peer, ids: Sequence[bytes]) -> None:
    for message_id in ids:
        await wait_status(peer.node, message_id.hex(), DeliveryStatus.DELIVERED)


async def test_concurrent_bursts_are_stored_once_and_acked_only_once_committed(
    peers: list[Peer],
) -> None:
    alice, bob, carol = peers
    acks_seen: list[bytes] = []
    holders = {alice.node.peer_id: alice, bob.node.peer_id: bob, carol.node.peer_id: carol}
    for sender in peers:
        original = sender.delivery.book.acked

        def checked(
            acked: Sequence[tuple[OutboxItem, Ack]],
            sent: Sequence[OutboxItem] = (),
            original: Callable[..., None] = original,
        ) -> None:
            for item, ack in acked:
                if ack.result == "ok":
                    # The recipient committed it before it acked it.
                    assert holders[item.recipient].stored_in_file(item.message_id)
                    acks_seen.append(item.message_id)
            original(acked, sent)

        sender.delivery.book.acked = checked  # type: ignore[method-assign]
    sent: dict[str, list[bytes]] = {"alice": [], "bob": [], "carol": []}

    async def send_many(who: str, frm: Peer, to: Peer) -> None:
        for n in range(25):
            sent[who].append((await frm.node.send(to.node.peer_id, f"{who} {n}")).id)
            if n % 5 == 0:
                await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as senders:
        senders.start_soon(send_many, "alice", alice, bob)
        senders.start_soon(send_many, "carol", carol, bob)
        senders.start_soon(send_many, "bob", bob, alice)
    await _delivered(alice, sent["alice"])
    await _delivered(carol, sent["carol"])
    await _delivered(bob, sent["bob"])
    for who, frm, to in (("alice", alice, bob), ("carol", carol, bob), ("bob", bob, alice)):
        got = to.node.messages(frm.node.peer_id, limit=100).messages
        assert sorted(m.id for m in got if m.direction is Direction.IN) == sorted(sent[who])
    all_sent = [i for ids in sent.values() for i in ids]
    assert sorted(acks_seen) == sorted(all_sent)
    # The commits ran in worker threads, and never beside another use of the connection.
    main = threading.get_ident()
    for p in peers:
        assert any(ident != main for ident in p.connection.commits)
        assert p.connection.overlaps == 0


async def test_a_commit_failing_in_its_thread_stores_nothing_and_loses_nothing(
    peers: list[Peer],
) -> None:
    alice, bob, _ = peers
    bob.host.online = False  # the envelopes stay in alice's outbox: handed over by hand
    for n in range(4):
        await alice.node.send(bob.node.peer_id, f"m{n}")
    envelopes = [item.envelope for item in alice.store.outbox_for(bob.node.peer_id)]
    receiver = bob.delivery.receiver
    bob.connection.fail = 1
    answers = await receiver.accept_all_off_loop(envelopes, alice.node.peer_id, "direct")
    assert [a[:2] for a in answers] == [("retry", "store unavailable")] * 4
    assert bob.connection.commits[-1] != threading.get_ident()  # it failed in the thread
    assert not bob.node.messages(alice.node.peer_id).messages and bob.received == []
    # Their retry is stored, and what follows decrypts: the sessions were put back.
    answers = await receiver.accept_all_off_loop(envelopes, alice.node.peer_id, "direct")
    assert [a[:2] for a in answers] == [("ok", "")] * 4
    await alice.node.send(bob.node.peer_id, "after")
    later = alice.store.outbox_for(bob.node.peer_id)[-1].envelope
    assert [a[:2] for a in await receiver.accept_all_off_loop([later], None, "direct")] == [
        ("ok", "")
    ]
    assert len(bob.node.messages(alice.node.peer_id).messages) == 5
    assert len(bob.received) == 5


async def test_cancelled_while_its_commit_runs_the_burst_is_committed_and_published(
    peers: list[Peer],
) -> None:
    alice, bob, _ = peers
    bob.host.online = False
    for n in range(3):
        await alice.node.send(bob.node.peer_id, f"m{n}")
    envelopes = [item.envelope for item in alice.store.outbox_for(bob.node.peer_id)]
    bob.connection.entered.clear()
    bob.connection.go_on = threading.Event()
    ticks = 0
    with trio.CancelScope() as scope:

        async def accept() -> None:
            await bob.delivery.receiver.accept_all_off_loop(envelopes, alice.node.peer_id, "direct")
            await trio.sleep_forever()  # never reached: cancelled before

        async with trio.open_nursery() as nursery:
            nursery.start_soon(accept)
            with trio.fail_after(WAIT_S):
                await trio.to_thread.run_sync(bob.connection.entered.wait)
            # The COMMIT waits in its thread; the loop goes on meanwhile.
            for _ in range(5):
                await trio.lowlevel.checkpoint()
                ticks += 1
            scope.cancel()
            assert bob.received == []  # not published before its commit returned
            bob.connection.go_on.set()
    assert scope.cancelled_caught and ticks == 5
    bob.connection.go_on = None
    assert not bob.store._db._connection().in_transaction
    assert all(bob.stored_in_file(r.inner.id) for r in bob.received)
    assert len(bob.received) == 3  # published although the task was cancelled
    assert len(bob.node.messages(alice.node.peer_id).messages) == 3
