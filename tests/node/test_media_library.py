"""The node's files: uploads, the sweep of blobs no message needs, releasing a
message's attachments, and files on disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from p2pdm.core import cbor
from p2pdm.core.blob import CHUNK_BYTES
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.kinds import encode_body
from p2pdm.core.model import DeliveryStatus, Direction, StoredMessage, direct_conversation_id
from p2pdm.errors import MediaRefused, NotFound, StoreError
from p2pdm.limits import MAX_FILE_BYTES
from p2pdm.node.media import UPLOAD_GRACE_MS, MediaLibrary, snippet_of
from p2pdm.node.media_ops import send_media
from p2pdm.node.node import Node
from p2pdm.store.base import Store
from p2pdm.store.blob_files import DirBlobFiles
from p2pdm.store.memory import MemoryStore
from p2pdm.store.sqlite import SQLiteStore
from tests.conftest import deliver
from tests.node.conftest import Clock

PEER = PeerId.from_public_key(b"\x05" * 32)


def library(tmp_path: Path, clock: Clock) -> MediaLibrary:
    return MediaLibrary(
        MemoryStore(), DirBlobFiles(tmp_path / "blobs"), now_ms=clock, random_bytes=os.urandom
    )


def sent(
    media: MediaLibrary, blob_ids: list[bytes], n: int, expires_at_ms: int | None = None
) -> StoredMessage:
    """Store an outgoing media message naming ``blob_ids`` and reference them."""
    body = media.body_for(blob_ids, None)
    message = StoredMessage(
        id=n.to_bytes(16, "big"),
        conversation_id=direct_conversation_id(PeerId.from_public_key(b"\x01" * 32), PEER),
        peer=PEER,
        direction=Direction.OUT,
        kind="media",
        body=cbor.encode(encode_body(body)),
        sent_at_ms=1,
        stored_at_ms=1,
        status=DeliveryStatus.QUEUED,
        expires_at_ms=expires_at_ms,
    )
    stored = media.store.add_message(message)
    media.attach(stored)
    return stored


def test_an_upload_is_sealed_on_disk_under_its_id(tmp_path: Path, clock: Clock) -> None:
    media = library(tmp_path, clock)
    data = os.urandom(2 * CHUNK_BYTES + 5)
    record = media.add_file(data, "application/zip", "../a.zip")
    path = tmp_path / "blobs" / record.blob_id.hex()
    assert path.is_file() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert data[:100] not in path.read_bytes()
    assert b"".join(media.read_plain(record, 0, record.size)) == data
    assert (
        b"".join(media.read_plain(record, CHUNK_BYTES - 2, CHUNK_BYTES + 3))
        == data[CHUNK_BYTES - 2 : CHUNK_BYTES + 3]
    )
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [record.blob_id.hex()]


def test_a_file_over_the_limit_is_refused_and_leaves_nothing(tmp_path: Path, clock: Clock) -> None:
    media = library(tmp_path, clock)
    upload = media.upload("application/octet-stream", "big")
    piece = bytes(1 << 20)
    with pytest.raises(MediaRefused, match="at most 100 MiB"):
        for _ in range(MAX_FILE_BYTES // len(piece) + 1):
            upload.write(piece)
    assert list((tmp_path / "blobs").iterdir()) == []


def test_unsent_uploads_and_unreferenced_blobs_are_swept(tmp_path: Path, clock: Clock) -> None:
    media = library(tmp_path, clock)
    kept = media.add_file(b"kept", "text/plain", "k.txt")
    dropped = media.add_file(b"dropped", "text/plain", "d.txt")
    sent(media, [kept.blob_id], 1)
    assert media.sweep() == 0  # a fresh upload waits for its message
    clock.ms += UPLOAD_GRACE_MS + 1
    assert media.sweep() == 1
    assert media.store.get_blob(dropped.blob_id) is None
    assert not (tmp_path / "blobs" / dropped.blob_id.hex()).exists()
    assert (tmp_path / "blobs" / kept.blob_id.hex()).exists()


def test_releasing_a_message_deletes_blobs_only_it_carried(tmp_path: Path, clock: Clock) -> None:
    media = library(tmp_path, clock)
    shared = media.add_file(b"shared", "text/plain", "s.txt")
    own = media.add_file(b"own", "text/plain", "o.txt")
    first = sent(media, [shared.blob_id, own.blob_id], 1)
    sent(media, [shared.blob_id], 2)
    unsent_yet = media.add_file(b"next", "text/plain", "n.txt")
    assert media.release_attachments(first.id) == 1
    assert media.store.get_blob(own.blob_id) is None
    assert media.store.get_blob(shared.blob_id) is not None
    assert media.store.get_blob(unsent_yet.blob_id) is not None  # not this message's
    with pytest.raises(NotFound):
        media.record(own.blob_id)


def test_start_up_sweeps_unfinished_uploads_and_stray_files(tmp_path: Path, clock: Clock) -> None:
    media = library(tmp_path, clock)
    upload = media.upload("text/plain", "half.txt")
    upload.write(os.urandom(CHUNK_BYTES + 10))  # one chunk sealed to a .part file
    stray = tmp_path / "blobs" / ("ab" * 32)
    stray.write_bytes(b"no row names me")
    media.sweep(startup=True)
    assert list((tmp_path / "blobs").iterdir()) == []


def test_a_reply_quotes_a_files_caption_else_its_names(tmp_path: Path, clock: Clock) -> None:
    media = library(tmp_path, clock)
    one = media.add_file(b"1", "text/plain", "a.txt")
    two = media.add_file(b"2", "text/plain", "../b.txt")
    assert snippet_of(sent(media, [one.blob_id, two.blob_id], 1)) == "a.txt, b.txt"
    body = media.body_for([one.blob_id], "the plan")
    captioned = replace(sent(media, [one.blob_id], 2), body=cbor.encode(encode_body(body)))
    assert snippet_of(captioned) == "the plan"
    assert snippet_of(replace(captioned, body=b"")) is None  # unsent: nothing to quote


def test_an_expired_message_takes_its_files_along(
    tmp_path: Path, clock: Clock, make_store: Callable[[], Store]
) -> None:
    node = Node(Identity(os.urandom(32)), make_store(), now_ms=clock)
    node.media.files = DirBlobFiles(tmp_path / "blobs")
    gone = node.media.add_file(b"for a minute", "text/plain", "m.txt")
    kept = node.media.add_file(b"for good", "text/plain", "g.txt")
    sent(node.media, [gone.blob_id], 1, expires_at_ms=clock.ms + 60_000)
    sent(node.media, [kept.blob_id], 2)
    clock.ms += 60_001
    assert len(node.purge_expired()) == 1
    assert node.store.get_blob(gone.blob_id) is None
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [kept.blob_id.hex()]
    assert node.store.get_blob(kept.blob_id) is not None


def test_a_received_files_rows_commit_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure (a crash) while the files of a received message are recorded
    keeps neither: the envelope is not acknowledged, and its redelivery
    stores both the message and its files."""
    alice = Node(Identity.generate(os.urandom(32)), MemoryStore())
    bob = Node(Identity.generate(os.urandom(32)), SQLiteStore(tmp_path / "bob.sqlite"))
    alice.add_contact_from_invite(bob.invite(), "bob")
    record = alice.media.add_file(b"report" * 100, "text/plain", "r.txt")
    message = alice.messenger.send(
        alice.resolve("bob"), alice.media.body_for([record.blob_id], None)
    ).message
    assert message is not None
    [item] = alice.store.outbox_for(bob.peer_id)

    def crash(blob: object) -> bool:
        raise StoreError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(bob.store, "put_blob", crash)
        with pytest.raises(StoreError):
            bob.messenger.receive(item.envelope)
    assert bob.store.get_message(message.id) is None  # not kept without its files
    assert bob.store.get_blob(record.blob_id) is None
    bob.messenger.reload()
    bob.messenger.receive(item.envelope)  # the sender retries: now both are there
    assert bob.store.get_message(message.id) is not None
    got = bob.store.get_blob(record.blob_id)
    assert got is not None and got.source == alice.peer_id


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_unsending_a_file_drops_its_chunks_still_queued_for_mailboxes(
    tmp_path: Path, kind: str
) -> None:
    """Bob is offline: the file's chunks follow the message into the outbox
    (for his mailboxes). Unsending it takes them back too."""
    store: Store = MemoryStore() if kind == "memory" else SQLiteStore(tmp_path / "a.sqlite")
    alice = Node(Identity.generate(os.urandom(32)), store)
    bob = Node(Identity.generate(os.urandom(32)), MemoryStore())
    alice.add_contact_from_invite(bob.invite(), "bob")
    bob.add_contact_from_invite(alice.invite(), "alice")
    record = alice.media.add_file(os.urandom(3 * CHUNK_BYTES + 5), "text/plain", "r.bin")
    sent = await send_media(alice, bob.peer_id, [record.blob_id])
    queued = alice.store.outbox_for(bob.peer_id)
    assert len(queued) == 1 + 4  # the message and its four chunks
    # One chunk was acknowledged already: its entry (and its link) are gone.
    alice.store.remove_outbox(queued[1].envelope_id)
    alice.unsend(sent.id)
    left = alice.store.outbox_for(bob.peer_id)
    assert len(left) == 1  # only the unsend itself
    assert alice.store.remove_followers_of(sent.id) == 0
    assert alice.store.get_blob(record.blob_id) is None  # and the file
    deliver(alice, bob)
    assert bob.store.get_message(sent.id) is None
