"""Files over ``/p2pdm/blob/1.0.0`` on an in-memory network: fetch, resume,
refusals, damaged chunks."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio

from p2pdm.api.views import message_json
from p2pdm.core.blob import CHUNK_BYTES
from p2pdm.core.blobwire import BLOB_PROTOCOL, BlobReply, BlobRequest
from p2pdm.core.identity import Identity, PeerId
from p2pdm.node.media_ops import send_media
from p2pdm.node.node import Node
from p2pdm.services.blob import BlobService
from p2pdm.services.dm import Delivery
from p2pdm.store.blob_files import DirBlobFiles
from p2pdm.store.blobs import BlobRecord
from p2pdm.store.memory import MemoryStore
from tests.fakenet import FakeHost, FakeNetwork

FILE = os.urandom(5 * CHUNK_BYTES + 1234)


class Peer:
    def __init__(self, net: FakeNetwork, name: str) -> None:
        self.node = Node(
            Identity(os.urandom(32)), MemoryStore(), now_ms=lambda: int(trio.current_time() * 1000)
        )
        self.node.store.set_setting("name", name)
        self.host: FakeHost = net.host(self.node.peer_id)
        self.delivery = Delivery(self.node, self.host, rng=random.Random(1))
        self.node.on_outbox = self.delivery.wake
        self.blobs = BlobService(self.node, self.host)

    async def start(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.delivery.run)
        await nursery.start(self.blobs.run_fetcher)


World = tuple[FakeNetwork, Peer, Peer, Peer]


@pytest.fixture
async def world(nursery: trio.Nursery) -> AsyncIterator[World]:
    net = FakeNetwork(nursery)
    alice, bob, carol = Peer(net, "alice"), Peer(net, "bob"), Peer(net, "carol")
    for a, b in ((alice, bob), (alice, carol)):
        a.node.add_contact_from_invite(b.node.invite())
        b.node.add_contact_from_invite(a.node.invite())
        # Seen online: files are pulled, not pushed through mailboxes.
        a.node.online.add(b.node.peer_id)
        b.node.online.add(a.node.peer_id)
    for p in (alice, bob, carol):
        await p.start(nursery)
    yield net, alice, bob, carol


async def wait_blob(peer: Peer, blob_id: bytes, *states: str, detail: str = "") -> BlobRecord:
    """The blob once it is in one of ``states`` with ``detail`` in its detail."""
    with trio.fail_after(120):
        while True:
            record = peer.node.store.get_blob(blob_id)
            if record is not None and record.state in states and detail in record.detail:
                return record
            await trio.sleep(0.05)


def plain(peer: Peer, record: BlobRecord) -> bytes:
    return b"".join(peer.node.media.read_plain(record, 0, record.size))


def serve_damaged(sender: Peer, damage: Callable[[int], bool]) -> BlobRecord:
    """FILE added by ``sender``, which serves chunk ``index`` with its last byte
    flipped whenever ``damage(index)`` says so."""
    media = sender.node.media
    honest = media.sealed_chunk

    def serve(record: BlobRecord, index: int) -> bytes:
        data = honest(record, index)
        if damage(index):
            return bytes(data[:-1] + bytes([data[-1] ^ 1]))
        return data

    media.sealed_chunk = serve  # type: ignore[method-assign]
    return media.add_file(FILE, "application/octet-stream", "x.bin")


async def test_a_file_sent_to_a_contact_arrives_checked(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    blob = alice.node.media.add_file(FILE, "application/pdf", "../../report.pdf")
    assert blob.name == "report.pdf"
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id], "the report")
    got = await wait_blob(bob, blob.blob_id, "ready", "failed")
    assert got.state == "ready"
    assert plain(bob, got) == FILE
    assert hashlib.sha256(plain(bob, got)).digest() == got.digest
    # Bob's copy is sealed as it travelled: no plaintext on his disk.
    assert FILE[:64] not in bytes(bob.node.media.files.read(blob.blob_id.hex(), 0, 1 << 30))
    ready = [e for e in bob.node.store.events(0, 100) if e.type.value == "media.ready"]
    assert ready and ready[0].detail == blob.blob_id.hex()


async def ask(host: FakeHost, owner: Peer, blob_id: bytes) -> BlobReply:
    stream = await host.open_stream(owner.node.peer_id, BLOB_PROTOCOL)
    async with stream:
        await stream.write_frame(BlobRequest(blob_id, 0, 4).encode(), 5)
        frame = await stream.read_frame(128, 5)
        assert frame is not None
        return BlobReply.decode(frame)


async def test_only_the_recipient_may_fetch_and_others_learn_nothing(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, carol = world
    blob = alice.node.media.add_file(FILE, "application/octet-stream", "x.bin")
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    await wait_blob(bob, blob.blob_id, "ready")
    refused_known = await ask(carol.host, alice, blob.blob_id)
    refused_unknown = await ask(carol.host, alice, os.urandom(32))
    assert refused_known == refused_unknown == BlobReply(False)
    assert refused_known.encode() == refused_unknown.encode()
    assert (await ask(bob.host, alice, blob.blob_id)) == BlobReply(True, 4)
    # Bob holds a copy now, but he never sent it to anyone: he serves nobody.
    assert (await ask(alice.host, bob, blob.blob_id)) == BlobReply(False)


async def test_a_tampered_chunk_is_refused_and_fetched_again(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    served: list[int] = []

    def tamper_once(index: int) -> bool:
        served.append(index)
        return index == 2 and served.count(2) == 1

    blob = serve_damaged(alice, tamper_once)
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    got = await wait_blob(bob, blob.blob_id, "ready", "failed")
    assert got.state == "ready" and plain(bob, got) == FILE
    assert served.count(2) == 2
    assert served.count(0) == 1  # the transfer went on from the damaged chunk


async def test_a_sender_that_keeps_sending_damage_fails_the_transfer(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    blob = alice.node.media.add_file(FILE, "application/octet-stream", "x.bin")
    files = alice.node.media.files
    files.write_at(
        blob.blob_id.hex(), 10, b"\x00" * 5 + files.read(blob.blob_id.hex(), 15, 1 << 30)
    )
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    got = await wait_blob(bob, blob.blob_id, "failed")
    assert "damaged" in got.detail
    assert bob.node.media.files.length(blob.blob_id.hex()) == 0


async def test_a_transfer_given_up_and_wanted_again_fetches_the_whole_file(
    world: World, autojump_clock: object
) -> None:
    # Chunks 0 and 1 arrive (verified, not yet recorded), then chunk 2 keeps
    # coming damaged: the transfer fails and its file goes. Wanted again from a
    # sender now honest, it starts over rather than after bytes no longer there.
    _, alice, bob, _ = world
    damaging = True
    blob = serve_damaged(alice, lambda index: index == 2 and damaging)
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    got = await wait_blob(bob, blob.blob_id, "failed")
    assert "damaged" in got.detail
    damaging = False
    bob.node.media.want(blob.blob_id)
    got = await wait_blob(bob, blob.blob_id, "ready", "failed")
    assert got.state == "ready" and plain(bob, got) == FILE


async def test_a_broken_transfer_resumes_from_the_last_verified_chunk(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    media = alice.node.media
    honest = media.sealed_chunk
    served: list[int] = []

    def break_once(record: BlobRecord, index: int) -> bytes:
        served.append(index)
        if index == 3 and served.count(3) == 1:
            raise trio.BrokenResourceError("connection cut")
        return honest(record, index)

    media.sealed_chunk = break_once  # type: ignore[method-assign]
    blob = media.add_file(FILE, "application/octet-stream", "x.bin")
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    got = await wait_blob(bob, blob.blob_id, "ready", "failed")
    assert got.state == "ready" and plain(bob, got) == FILE
    assert served == [0, 1, 2, 3, 3, 4, 5]


async def test_an_offline_sender_leaves_the_file_waiting_then_it_comes(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    blob = alice.node.media.add_file(FILE, "application/octet-stream", "x.bin")
    sent = await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    # The first fetch ends (chunks are checked in a worker thread: it takes
    # real time), then the store is put back as if Bob had fetched nothing.
    await wait_blob(bob, blob.blob_id, "ready")
    # Cut Alice off before Bob fetched: he waits, and says why.
    alice.host.online = False
    bob.node.store.set_blob_progress(blob.blob_id, "fetching", 0, "")
    bob.node.media.files.delete(blob.blob_id.hex())
    bob.blobs.wake()
    waiting = await wait_blob(bob, blob.blob_id, "fetching", detail="waiting for alice")
    assert waiting.have == 0
    # The message says so, as the API shows it.
    received = bob.node.store.get_message(sent.id)
    assert received is not None
    shown = message_json(received, "", blobs=bob.node.store.get_blob)
    assert shown["status_detail"] == "waiting for alice to come online to send the file"
    alice.host.online = True
    bob.blobs.wake()
    got = await wait_blob(bob, blob.blob_id, "ready")
    assert plain(bob, got) == FILE


async def test_files_from_strangers_wait_until_asked_for(
    world: World, nursery: trio.Nursery, autojump_clock: object
) -> None:
    net, alice, _, _ = world
    stranger = Peer(net, "mallory")
    await stranger.start(nursery)
    stranger.node.add_contact_from_invite(alice.node.invite())
    blob = stranger.node.media.add_file(b"hello", "text/plain", "hi.txt")
    await send_media(stranger.node, alice.node.peer_id, [blob.blob_id])
    got = await wait_blob(alice, blob.blob_id, "pending")
    assert got.have == 0
    alice.node.media.want(blob.blob_id)
    got = await wait_blob(alice, blob.blob_id, "ready")
    assert plain(alice, got) == b"hello"


async def test_an_upload_no_message_names_is_swept_while_the_node_runs(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    kept = alice.node.media.add_file(b"kept", "text/plain", "k.txt")
    await send_media(alice.node, bob.node.peer_id, [kept.blob_id])
    forgotten = alice.node.media.add_file(b"never sent", "text/plain", "n.txt")
    await trio.sleep(2 * 3600 + 60)
    assert alice.node.store.get_blob(forgotten.blob_id) is None
    assert alice.node.media.files.length(forgotten.blob_id.hex()) == 0
    assert alice.node.store.get_blob(kept.blob_id) is not None


async def wait_gone(peer: Peer, blob_id: bytes) -> None:
    with trio.fail_after(60):
        while True:
            if peer.node.store.get_blob(blob_id) is None:
                return
            await trio.sleep(0.05)


def on_disk(tmp_path: Path, *peers: tuple[Peer, str]) -> None:
    """Keep each peer's blobs in ``tmp_path/<name>/blobs``, as a home does."""
    for peer, name in peers:
        peer.node.media.files = DirBlobFiles(tmp_path / name / "blobs")


async def test_unsend_removes_the_blob_on_both_sides(
    world: World, tmp_path: Path, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    on_disk(tmp_path, (alice, "alice"), (bob, "bob"))
    blob = alice.node.media.add_file(FILE, "application/pdf", "report.pdf")
    kept = alice.node.media.add_file(b"another", "text/plain", "kept.txt")
    sent = await send_media(alice.node, bob.node.peer_id, [blob.blob_id], "the report")
    other = await send_media(alice.node, bob.node.peer_id, [kept.blob_id])
    await wait_blob(bob, blob.blob_id, "ready")
    await wait_blob(bob, kept.blob_id, "ready")
    assert (tmp_path / "bob" / "blobs" / blob.blob_id.hex()).exists()

    alice.node.unsend(sent.id)
    # Alice's copy goes at once; Bob's when her unsend arrives.
    assert alice.node.store.get_blob(blob.blob_id) is None
    assert not (tmp_path / "alice" / "blobs" / blob.blob_id.hex()).exists()
    await wait_gone(bob, blob.blob_id)
    assert not (tmp_path / "bob" / "blobs" / blob.blob_id.hex()).exists()
    assert await ask(bob.host, alice, blob.blob_id) == BlobReply(False)
    received = bob.node.store.get_message(sent.id)
    assert received is not None and received.unsent
    shown = message_json(received, "", blobs=bob.node.store.get_blob)
    assert (shown["unsent"], shown["media"], shown["text"]) == (True, None, None)
    # The file of the other message stays on both sides.
    for peer, name in ((alice, "alice"), (bob, "bob")):
        assert peer.node.store.get_blob(kept.blob_id) is not None
        assert (tmp_path / name / "blobs" / kept.blob_id.hex()).exists()
    assert bob.node.store.get_message(other.id) is not None


async def test_deleting_for_oneself_removes_only_ones_own_copy(
    world: World, tmp_path: Path, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    on_disk(tmp_path, (alice, "alice"), (bob, "bob"))
    blob = alice.node.media.add_file(b"a photo, say", "text/plain", "p.txt")
    sent = await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    await wait_blob(bob, blob.blob_id, "ready")
    bob.node.delete_for_me(sent.id)
    assert bob.node.store.get_blob(blob.blob_id) is None
    assert list((tmp_path / "bob" / "blobs").iterdir()) == []
    assert alice.node.store.get_blob(blob.blob_id) is not None  # hers stays: nothing is sent
    alice.node.delete_conversation(sent.conversation_id)
    assert alice.node.store.get_blob(blob.blob_id) is None
    assert list((tmp_path / "alice" / "blobs").iterdir()) == []


async def test_a_blocked_peer_is_served_nothing_and_asked_nothing(
    world: World, autojump_clock: object
) -> None:
    _, alice, bob, _ = world
    blob = alice.node.media.add_file(FILE, "application/octet-stream", "x.bin")
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    await wait_blob(bob, blob.blob_id, "ready")
    alice.node.block(bob.node.peer_id)
    # A file sent before the block is no longer served: the answer of an unknown blob.
    assert (await ask(bob.host, alice, blob.blob_id)) == BlobReply(False)
    alice.node.unblock(bob.node.peer_id)
    assert (await ask(bob.host, alice, blob.blob_id)) == BlobReply(True, 4)
    # A file to fetch from a peer blocked meanwhile is not asked for.
    bob.node.block(alice.node.peer_id)
    bob.node.store.set_blob_progress(blob.blob_id, "fetching", 0, "")
    bob.node.media.files.delete(blob.blob_id.hex())
    bob.blobs.wake()
    await trio.sleep(60)
    record = bob.node.store.get_blob(blob.blob_id)
    assert record is not None and record.state == "fetching" and record.have == 0
    bob.node.unblock(alice.node.peer_id)
    bob.blobs.wake()
    assert plain(bob, await wait_blob(bob, blob.blob_id, "ready")) == FILE


async def test_a_sender_that_stops_serving_midway_fails_the_file_after_what_came(
    world: World, autojump_clock: object
) -> None:
    # 20 chunks: two windows asked for at once; the second is refused (the
    # sender no longer has the file). The first window's chunks are kept.
    _, alice, bob, _ = world
    data = os.urandom(20 * CHUNK_BYTES)
    blob = alice.node.media.add_file(data, "application/octet-stream", "big.bin")
    honest = alice.blobs._servable
    asked: list[bytes] = []

    def first_only(blob_id: bytes, peer: PeerId) -> BlobRecord | None:
        asked.append(blob_id)
        return honest(blob_id, peer) if len(asked) == 1 else None

    alice.blobs._servable = first_only  # type: ignore[method-assign]
    await send_media(alice.node, bob.node.peer_id, [blob.blob_id])
    got = await wait_blob(bob, blob.blob_id, "failed")
    assert got.detail == "the sender no longer has this file"
    assert got.have == 16 and len(asked) == 2
    failed = [e for e in bob.node.store.events(0, 100) if e.type.value == "media.failed"]
    assert failed and failed[0].detail.startswith(blob.blob_id.hex())
