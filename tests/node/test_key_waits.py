"""Messages to a peer added by PeerID whose prekeys are not found yet: kept
``queued`` with a note that says why, looked up again with backoff, sent in
order once found, failed with a reason after the envelope lifetime, and kept
across a restart (p2pdm.node.key_waits). Virtual time: the 14 days run in
well under a second."""

from __future__ import annotations

import os
from pathlib import Path

import trio
import trio.testing

from p2pdm.core.blob import CHUNK_BYTES
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import BlobChunkBody
from p2pdm.core.model import DeliveryStatus
from p2pdm.core.wire import PrekeyBundle
from p2pdm.limits import KEY_WAIT_TTL_MS
from p2pdm.node.batch_send import SendItem, Sent
from p2pdm.node.key_waits import (
    KEY_LOOKUP_FIRST_S,
    KEY_LOOKUP_MAX_INTERVAL_S,
    LookupSchedule,
    key_lookup_loop,
)
from p2pdm.node.media_ops import send_location, send_media
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.node.requests import BLOCKED_NOTE
from p2pdm.store import MemoryStore, SQLiteStore
from p2pdm.store.base import Store
from tests.node.conftest import chunks_for, flush

EPOCH_MS = 1_700_000_000_000


def _virtual_ms() -> int:
    """Wall time as the node sees it: follows trio's (mock) clock."""
    return EPOCH_MS + int(trio.current_time() * 1000)


class Directory:
    """A DHT that finds the peers published in it, counting the lookups."""

    def __init__(self) -> None:
        self.published: dict[PeerId, PrekeyBundle] = {}
        self.lookups = 0

    async def fetch(self, peer: PeerId) -> PrekeyBundle | None:
        self.lookups += 1
        await trio.sleep(0.1)  # a lookup takes a while
        return self.published.get(peer)


def _node(name: str, store: Store, directory: Directory | None = None) -> Node:
    node = Node(Identity(os.urandom(32)), store, now_ms=_virtual_ms)
    node.update_settings({"name": name})
    if directory is not None:
        node.fetch_bundle = directory.fetch
    return node


def _started(identity: Identity, store: Store, directory: Directory) -> Node:
    """``identity``'s node on ``store`` (again, after a restart), looking up in ``directory``."""
    node = Node(identity, store, now_ms=_virtual_ms)
    node.fetch_bundle = directory.fetch
    return node


async def _status(node: Node, message_id: bytes) -> tuple[DeliveryStatus, str]:
    message, _ = node.message(message_id.hex())
    return message.status, node.status_detail(message)


async def test_messages_wait_for_keys_and_go_in_order_once_found(
    autojump_clock: trio.testing.MockClock,
) -> None:
    directory = Directory()
    alice, bob = _node("alice", MemoryStore(), directory), _node("bob", MemoryStore())
    alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
    first = await alice.send(bob.peer_id, "are you there yet?")
    second = await alice.send(bob.peer_id, "second")
    assert directory.lookups == 1  # the second waits behind the first: no lookup of its own
    assert first.status is second.status is DeliveryStatus.QUEUED
    assert alice.store.outbox_for(bob.peer_id) == []
    status, detail = await _status(alice, first.id)
    assert detail.startswith("waiting for bob's keys: bob is not found in the network yet since ")
    assert detail.endswith(" UTC")  # "; next try 13:15 UTC"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(key_lookup_loop, alice)
        await trio.sleep(KEY_LOOKUP_FIRST_S * 3 + 1)
        assert 2 <= directory.lookups <= 3  # backing off: 5 s, then 10 s
        assert alice.store.outbox_for(bob.peer_id) == []
        directory.published[bob.peer_id] = bob.messenger.bundle(0)  # as in the DHT record
        await trio.sleep(KEY_LOOKUP_FIRST_S * 8)
        nursery.cancel_scope.cancel()
    assert alice.store.key_waits() == []
    queued = alice.store.outbox_for(bob.peer_id)  # in the order delivery takes them
    assert [i.message_id for i in queued] == [first.id, second.id]
    status, detail = await _status(alice, first.id)
    assert (status, detail.split(" since ")[0]) == (
        DeliveryStatus.QUEUED,
        "bob's keys found; sending",
    )
    flush(alice, bob)
    got = {message_text(m): m.sent_at_ms for m in bob.messages(alice.peer_id).messages}
    assert got == {"are you there yet?": first.sent_at_ms, "second": second.sent_at_ms}
    third = await alice.send(bob.peer_id, "third goes at once")  # nothing waits now
    assert [i.message_id for i in alice.store.outbox_for(bob.peer_id)] == [third.id]


async def test_a_peer_never_found_fails_its_messages_with_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    directory = Directory()
    alice = _node("alice", MemoryStore(), directory)
    nobody = Identity(os.urandom(32)).peer_id
    alice.add_contact_by_peer_id(str(nobody), "ghost")
    sent = await alice.send(nobody, "hello?")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(key_lookup_loop, alice)
        await trio.sleep(KEY_WAIT_TTL_MS / 1000 - 60)
        assert (await _status(alice, sent.id))[0] is DeliveryStatus.QUEUED
        await trio.sleep(120)
        nursery.cancel_scope.cancel()
    status, detail = await _status(alice, sent.id)
    assert status is DeliveryStatus.FAILED
    assert detail == (
        "ghost was not found in the network in 14 days, so it was never sent; "
        "add ghost from an invite and send it again"
    )
    assert alice.store.key_waits() == [] and nobody not in alice.key_lookups
    # Bounded: one lookup per KEY_LOOKUP_MAX_INTERVAL_S at most, once backed off.
    assert directory.lookups <= KEY_WAIT_TTL_MS // 1000 // KEY_LOOKUP_MAX_INTERVAL_S + 10
    history = alice.message(sent.id.hex())[1]
    assert [h.status for h in history][-1] is DeliveryStatus.FAILED


async def test_waiting_messages_survive_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    directory = Directory()
    identity = Identity(os.urandom(32))
    alice = _started(identity, SQLiteStore(tmp_path / "a.db"), directory)
    bob = _node("bob", MemoryStore())
    alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
    sent = await alice.send(bob.peer_id, "kept while I was off")
    alice.store.close()

    alice = _started(identity, SQLiteStore(tmp_path / "a.db"), directory)
    assert bob.peer_id in alice.key_lookups  # due at once after the restart
    directory.published[bob.peer_id] = bob.messenger.bundle(0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(key_lookup_loop, alice)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [i.message_id for i in alice.store.outbox_for(bob.peer_id)] == [sent.id]
    flush(alice, bob)
    assert [message_text(m) for m in bob.messages(alice.peer_id).messages] == [
        "kept while I was off"
    ]
    alice.store.close()


async def test_a_batch_sends_to_found_peers_and_keeps_the_others_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    directory = Directory()
    alice, bob = _node("alice", MemoryStore(), directory), _node("bob", MemoryStore())
    carol = _node("carol", MemoryStore())
    alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
    alice.add_contact_from_invite(carol.invite(), "carol")
    results = await alice.submit_many(
        [SendItem(bob.peer_id, "to bob"), SendItem(carol.peer_id, "to carol")]
    )
    assert all(isinstance(r, Sent) for r in results)
    assert [w.peer for w in alice.store.key_waits()] == [bob.peer_id]
    assert len(alice.store.outbox_for(carol.peer_id)) == 1
    assert directory.lookups == 1  # carol's bundle came with her invite


async def test_an_invite_sends_what_waited_at_the_next_round(
    autojump_clock: trio.testing.MockClock,
) -> None:
    directory = Directory()
    alice, bob = _node("alice", MemoryStore(), directory), _node("bob", MemoryStore())
    alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
    sent = await alice.send(bob.peer_id, "hi")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(key_lookup_loop, alice)
        await trio.sleep(KEY_LOOKUP_MAX_INTERVAL_S)  # backed off to the longest pause
        lookups = directory.lookups
        alice.add_contact_from_invite(bob.invite(), "bob")
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert directory.lookups == lookups  # the invite's bundle: no lookup needed
    assert [i.message_id for i in alice.store.outbox_for(bob.peer_id)] == [sent.id]


def test_the_schedule_backs_off_to_its_cap_and_ends_at_expiry() -> None:
    schedule, peer = LookupSchedule(), Identity(os.urandom(32)).peer_id
    schedule.add(peer, 0, expires_at_ms=10**9)
    assert schedule.due(0) == [peer]
    gaps = []
    now = 0
    for _ in range(12):
        schedule.missed(peer, now)
        at = schedule.next_at(peer)
        assert at is not None
        gaps.append((at - now) // 1000)
        now = at
    assert gaps[:4] == [KEY_LOOKUP_FIRST_S * 2**i for i in range(4)]
    assert max(gaps) == KEY_LOOKUP_MAX_INTERVAL_S == gaps[-1]
    schedule.add(peer, now, expires_at_ms=now - 1)  # a sooner expiry wins
    assert schedule.next_at(peer) == now - 1
    schedule.done(peer)
    assert schedule.due(10**12) == [] and schedule.soonest() is None


async def test_a_message_from_the_peer_sends_what_waited_and_a_block_fails_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    directory = Directory()
    alice, bob = _node("alice", MemoryStore(), directory), _node("bob", MemoryStore())
    carol = _node("carol", MemoryStore())
    for peer, name in ((bob, "bob"), (carol, "carol")):
        alice.add_contact_by_peer_id(str(peer.peer_id), name)
    to_bob = await alice.send(bob.peer_id, "hi bob")
    to_carol = await alice.send(carol.peer_id, "hi carol")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(key_lookup_loop, alice)
        await trio.sleep(KEY_LOOKUP_MAX_INTERVAL_S)  # backed off to the longest pause
        lookups = directory.lookups
        # Bob, who has Alice's invite, writes first: his session is Alice's way to him.
        bob.add_contact_from_invite(alice.invite(), "alice")
        [envelope] = bob.store.outbox_for(alice.peer_id) or [
            bob.messenger.send_text(alice.peer_id, "hi alice").outbox
        ]
        alice.on_received(alice.messenger.receive(envelope.envelope))
        await trio.sleep(1)
        assert [i.message_id for i in alice.store.outbox_for(bob.peer_id)] == [to_bob.id]
        alice.block(carol.peer_id)  # what waits for her keys fails with the block
        status, detail = await _status(alice, to_carol.id)
        assert status is DeliveryStatus.FAILED and detail == BLOCKED_NOTE
        assert alice.store.key_waits(carol.peer_id) == []
        await trio.sleep(KEY_LOOKUP_MAX_INTERVAL_S)
        nursery.cancel_scope.cancel()
    assert directory.lookups == lookups  # neither needed a lookup (Bob's came at once)
    assert [i.message_id for i in alice.store.outbox_for(bob.peer_id)] == [to_bob.id]
    flush(alice, bob)
    assert "hi bob" in [message_text(m) for m in bob.messages(alice.peer_id).messages]
    assert (await _status(alice, to_carol.id))[0] is DeliveryStatus.FAILED


async def test_a_file_and_a_place_wait_for_keys_and_the_file_follows_once_found(
    autojump_clock: trio.testing.MockClock,
) -> None:
    directory = Directory()
    alice, bob = _node("alice", MemoryStore(), directory), _node("bob", MemoryStore())
    alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
    bob.add_contact_from_invite(alice.invite(), "alice")  # he takes her files at once
    data = os.urandom(CHUNK_BYTES + 5)  # two chunks: small enough to follow into mailboxes
    record = alice.media.add_file(data, "text/plain", "notes.txt")
    photo = await send_media(alice, bob.peer_id, [record.blob_id], "the notes")
    place = await send_location(alice, bob.peer_id, 52.37, 4.89, label="here")
    assert photo.status is place.status is DeliveryStatus.QUEUED
    assert directory.lookups == 1  # the place waits behind the file: no lookup of its own
    assert alice.store.outbox_for(bob.peer_id) == []
    _, detail = await _status(alice, photo.id)
    assert detail.startswith("waiting for bob's keys")
    # The file is recorded as going to Bob from the start: not swept as unused.
    assert alice.store.blobs_of_message(photo.id) == [record.blob_id]
    assert alice.store.blob_shared_with(record.blob_id, bob.peer_id)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(key_lookup_loop, alice)
        await trio.sleep(KEY_LOOKUP_FIRST_S + 1)
        directory.published[bob.peer_id] = bob.messenger.bundle(0)
        await trio.sleep(KEY_LOOKUP_FIRST_S * 4)
        nursery.cancel_scope.cancel()
    assert alice.store.key_waits() == []
    queued = alice.store.outbox_for(bob.peer_id)
    assert queued[0].message_id == photo.id  # the message first, its chunks after it
    assert chunks_for(alice, bob) == [(record.blob_id, 0), (record.blob_id, 1)]
    assert queued[-1].message_id == place.id
    for item in queued:  # as Bob's receiver takes them from his mailboxes
        received = bob.messenger.receive(item.envelope)
        if isinstance(received.inner.body, BlobChunkBody):
            bob.media.accept_pushed(received.sender, received.inner.body)
    got = {m.kind: m for m in bob.messages(alice.peer_id).messages}
    assert {kind: m.sent_at_ms for kind, m in got.items()} == {
        "media": photo.sent_at_ms,
        "location": place.sent_at_ms,
    }
    fetched = bob.store.get_blob(record.blob_id)
    assert fetched is not None and fetched.state == "ready"  # the pushed chunks made it whole
    assert b"".join(bob.media.read_plain(fetched, 0, fetched.size)) == data


async def test_a_file_to_a_peer_never_found_fails_and_its_upload_can_go(
    autojump_clock: trio.testing.MockClock,
) -> None:
    directory = Directory()
    alice, bob = _node("alice", MemoryStore(), directory), _node("bob", MemoryStore())
    alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
    record = alice.media.add_file(os.urandom(100), "text/plain", "a.txt")
    photo = await send_media(alice, bob.peer_id, [record.blob_id])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(key_lookup_loop, alice)
        await trio.sleep(KEY_WAIT_TTL_MS / 1000 + KEY_LOOKUP_MAX_INTERVAL_S + 1)
        nursery.cancel_scope.cancel()
    status, detail = await _status(alice, photo.id)
    assert status is DeliveryStatus.FAILED
    assert "was not found in the network in 14 days" in detail
    assert alice.store.outbox_for(bob.peer_id) == []
    assert alice.store.key_waits() == []
