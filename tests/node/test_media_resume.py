"""Hypothesis: chunks arriving in any order, damaged, twice, with crashes that
leave stray bytes behind and forget the progress not yet recorded; the file
still ends whole and exact."""

from __future__ import annotations

import itertools
import os
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from unittest import mock

import pytest
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from p2pdm.core.blob import CHUNK_BYTES, chunk_count, chunk_span
from p2pdm.core.identity import PeerId
from p2pdm.errors import ChunkRejected
from p2pdm.node.media import (
    PROGRESS_COMMIT_CHUNKS,
    PROGRESS_COMMIT_MAX_CHUNKS,
    PROGRESS_COMMIT_MS,
    MediaLibrary,
)
from p2pdm.store.blobs import BlobRecord
from p2pdm.store.memory import MemoryStore

SENDER = PeerId.from_public_key(b"\x07" * 32)

# One step: ("chunk", index, damaged) or ("crash", stray bytes left after the last chunk).
STEP = st.one_of(
    st.tuples(st.just("chunk"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("crash"), st.integers(0, 3000), st.just(False)),
)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 5 * CHUNK_BYTES),
    steps=st.lists(STEP, max_size=30),
    seed=st.integers(0, 2**32 - 1),
)
# A chunk verified in memory, a crash that forgets it, the chunk again: the
# record asked for after it already carries that progress (it was dropped).
@example(
    size=3 * CHUNK_BYTES + 100,
    steps=[("chunk", 0, False), ("crash", 1610, False), ("chunk", 0, False)],
    seed=0,
)
def test_any_arrival_order_and_crash_ends_whole_and_exact(
    size: int, steps: list[tuple[str, int, bool]], seed: int
) -> None:
    # Progress recorded every 2 chunks, so these small files have some recorded
    # and some only in memory when a crash comes.
    with (
        mock.patch("p2pdm.node.media.PROGRESS_COMMIT_CHUNKS", 2),
        mock.patch("p2pdm.node.media.PROGRESS_COMMIT_MS", 0),
    ):
        _arrive(size, steps, random.Random(seed).randbytes)


def _arrive(
    size: int, steps: list[tuple[str, int, bool]], random_bytes: Callable[[int], bytes]
) -> None:
    """Bytes and keys come from ``random_bytes``, so an example replays exactly."""
    data = random_bytes(size)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=random_bytes)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    total = chunk_count(size)
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=random_bytes)
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    name = mine.blob_id.hex()

    def record() -> BlobRecord:
        """The blob as the receiver sees it (its progress may be ahead of the store's)."""
        got = receiver.store.get_blob(mine.blob_id)
        assert got is not None
        return receiver.progress(got)

    for kind, value, damaged in steps:
        current = record()
        if kind == "crash" and current.state == "fetching":
            # What a crash between writing bytes and recording them leaves; the
            # restarted node knows only what its store recorded.
            receiver.files.write_at(name, receiver.files.length(name), random_bytes(value))
            receiver = MediaLibrary(
                receiver.store, receiver.files, now_ms=lambda: 1, random_bytes=random_bytes
            )
            receiver.resume_point(record())
            continue
        if kind == "crash":
            continue
        index = value % total
        chunk = sender.sealed_chunk(mine, index)
        if damaged:
            chunk = chunk[:-1] + bytes([chunk[-1] ^ 1])
        before = current.have
        try:
            after = receiver.accept_chunk(current, index, chunk)
        except ChunkRejected:
            assert record().have == before  # nothing moved
            continue
        assert after.have in (before, before + 1)
        assert after.have <= total
    # Then the pull finishes from where it stands.
    current = record()
    first = receiver.resume_point(current)
    for index in range(first, total):
        current = receiver.accept_chunk(current, index, sender.sealed_chunk(mine, index))
    assert current.state == "ready"
    assert b"".join(receiver.read_plain(current, 0, size)) == data
    assert receiver.files.length(name) == sender.files.length(name)


def test_progress_is_recorded_every_few_chunks_and_a_restart_resumes_there() -> None:
    total = PROGRESS_COMMIT_CHUNKS + 4
    data = os.urandom(total * CHUNK_BYTES - 100)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    ticks = itertools.count(0, PROGRESS_COMMIT_MS)  # half a second a chunk
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: next(ticks), random_bytes=os.urandom)
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    current = replace(mine, source=SENDER, state="fetching", have=0)
    for index in range(PROGRESS_COMMIT_CHUNKS + 1):
        current = receiver.accept_chunk(current, index, sender.sealed_chunk(mine, index))
    stored = receiver.store.get_blob(mine.blob_id)
    assert stored is not None and current.have == PROGRESS_COMMIT_CHUNKS + 1
    assert stored.have == PROGRESS_COMMIT_CHUNKS  # one commit for the first 16 chunks
    assert receiver.resume_point(stored) == PROGRESS_COMMIT_CHUNKS + 1  # this run knows more
    # A restart knows what the store recorded: the chunk after it is cut off, fetched again.
    restarted = MediaLibrary(
        receiver.store, receiver.files, now_ms=lambda: 1, random_bytes=os.urandom
    )
    first = restarted.resume_point(stored)
    assert first == PROGRESS_COMMIT_CHUNKS
    assert restarted.files.length(mine.blob_id.hex()) == chunk_span(mine.size, first)[0]
    current = stored
    for index in range(first, total):
        current = restarted.accept_chunk(current, index, sender.sealed_chunk(mine, index))
    assert current.state == "ready"  # checked by reading the file back (hashes started mid-way)
    assert b"".join(restarted.read_plain(current, 0, len(data))) == data


def test_a_fast_fetch_records_its_progress_twice_a_second_or_every_16_mib() -> None:
    # 16 chunks in under PROGRESS_COMMIT_MS are not recorded yet (a commit is
    # an fsync on the event loop); PROGRESS_COMMIT_MAX_CHUNKS are, whatever
    # the clock: a crash never loses more than that.
    total = PROGRESS_COMMIT_MAX_CHUNKS + 3
    data = os.urandom(total * CHUNK_BYTES)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    now = [0]
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: now[0], random_bytes=os.urandom)
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    current = replace(mine, source=SENDER, state="fetching", have=0)
    recorded: list[int] = []
    for index in range(total):
        current = receiver.accept_chunk(current, index, sender.sealed_chunk(mine, index))
        stored = receiver.store.get_blob(mine.blob_id)
        assert stored is not None
        if not recorded or stored.have != recorded[-1]:
            recorded.append(stored.have)
        if index == PROGRESS_COMMIT_MAX_CHUNKS + 1:
            now[0] += PROGRESS_COMMIT_MS  # half a second later
    assert recorded == [0, PROGRESS_COMMIT_MAX_CHUNKS, total]  # the last: ready
    assert current.state == "ready"


def test_a_fetch_given_up_and_wanted_again_starts_from_the_beginning() -> None:
    # Chunks verified in memory only, then the fetch is given up (its file
    # removed): wanted again, it must not resume after bytes no longer there.
    data = os.urandom(5 * CHUNK_BYTES)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    current = replace(mine, source=SENDER, state="fetching", have=0)
    for index in range(3):
        current = receiver.accept_chunk(current, index, sender.sealed_chunk(mine, index))
    receiver.give_up(mine.blob_id, "damaged chunks")
    assert mine.blob_id.hex() not in receiver.files.names()
    current = receiver.want(mine.blob_id)
    first = receiver.resume_point(current)
    assert first == 0
    for index in range(first, 5):
        current = receiver.accept_chunk(current, index, sender.sealed_chunk(mine, index))
    assert current.state == "ready"
    assert b"".join(receiver.read_plain(current, 0, len(data))) == data


async def test_chunks_checked_off_the_loop_end_whole_and_a_removal_meanwhile_wins() -> None:
    data = os.urandom(3 * CHUNK_BYTES + 7)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    current = replace(mine, source=SENDER, state="fetching", have=0)
    for index in range(chunk_count(len(data))):
        current = await receiver.accept_chunks_off_loop(
            current, index, [sender.sealed_chunk(mine, index)]
        )
    assert current.state == "ready"
    assert b"".join(receiver.read_plain(current, 0, len(data))) == data
    # A fetch given up while a chunk is being written in the worker thread:
    # the write is undone when it ends, and nothing is counted.
    mine = sender.add_file(data[::-1], "application/octet-stream", "g.bin")
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    current = replace(mine, source=SENDER, state="fetching", have=0)
    writing, release = threading.Event(), threading.Event()
    honest = receiver.files.write_chunks

    def slow_write(name: str, offset: int, chunks: Sequence[bytes]) -> None:
        writing.set()
        release.wait(10)
        honest(name, offset, chunks)

    receiver.files.write_chunks = slow_write  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:

        async def accept() -> None:
            nonlocal current
            current = await receiver.accept_chunks_off_loop(
                current, 0, [sender.sealed_chunk(mine, 0)]
            )

        nursery.start_soon(accept)
        await trio.to_thread.run_sync(writing.wait, 10)
        receiver.give_up(mine.blob_id, "given up")
        release.set()
    assert current.state == "failed" and current.have == 0
    assert mine.blob_id.hex() not in receiver.files.names()


@settings(max_examples=25, deadline=None)
@given(
    runs=st.lists(st.integers(1, 6), min_size=1, max_size=12),
    bad=st.one_of(st.none(), st.integers(0, 2 * PROGRESS_COMMIT_CHUNKS + 2)),
)
def test_runs_of_chunks_written_at_once_stop_at_a_tampered_one(
    runs: list[int], bad: int | None
) -> None:
    # The fetcher hands the worker thread runs of chunks: each chunk is still
    # checked before it is written; a tampered one stops the run there (the
    # ones before it are written and counted, nothing after it), and the
    # progress recorded in the store (with its event, one commit) is a point
    # a restart resumes from.
    total = 2 * PROGRESS_COMMIT_CHUNKS + 3
    data = os.urandom(total * CHUNK_BYTES - 11)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    current = replace(mine, source=SENDER, state="fetching", have=0)
    noted: list[int] = []

    def on_progress(record: BlobRecord) -> None:
        stored = receiver.store.get_blob(record.blob_id)
        assert stored is not None and stored.have == record.have  # in the same transaction
        noted.append(record.have)

    def chunk(index: int) -> bytes:
        sealed = sender.sealed_chunk(mine, index)
        if index == bad:
            return sealed[:-1] + bytes([sealed[-1] ^ 1])
        return sealed

    async def pull() -> BlobRecord:
        nonlocal current
        first = 0
        for size in runs:
            if first >= total:
                break
            run = [chunk(i) for i in range(first, min(total, first + size))]
            try:
                current = await receiver.accept_chunks_off_loop(current, first, run, on_progress)
            except ChunkRejected:
                assert bad is not None and first <= bad < first + size
                # The chunks of the run before the tampered one are counted.
                stored = receiver.store.get_blob(mine.blob_id)
                assert stored is not None
                current = receiver.progress(stored)
                assert current.have == bad
                return current
            assert bad is None or not first <= bad < first + size
            first += len(run)
            assert current.have == first
        return current

    with mock.patch("p2pdm.node.media.PROGRESS_COMMIT_MS", 0):
        current = trio.run(pull)
    name = mine.blob_id.hex()
    assert all(b - a >= PROGRESS_COMMIT_CHUNKS for a, b in zip([0, *noted], noted, strict=False))
    if current.state == "ready":
        assert b"".join(receiver.read_plain(current, 0, len(data))) == data
        return
    # What is on disk is exactly the chunks verified (nothing of a tampered one).
    assert receiver.files.length(name) == chunk_span(mine.size, current.have)[0]
    # A restart resumes from what the store recorded and ends whole.
    stored = receiver.store.get_blob(mine.blob_id)
    assert stored is not None and stored.have == (noted[-1] if noted else 0)
    restarted = MediaLibrary(
        receiver.store, receiver.files, now_ms=lambda: 1, random_bytes=os.urandom
    )
    first = restarted.resume_point(stored)
    assert first == stored.have
    assert restarted.files.length(name) == chunk_span(mine.size, first)[0]
    current = stored
    for index in range(first, total):
        current = restarted.accept_chunk(current, index, sender.sealed_chunk(mine, index))
    assert current.state == "ready"
    assert b"".join(restarted.read_plain(current, 0, len(data))) == data


@pytest.mark.parametrize("resumed", [False, True])
def test_chunks_that_each_authenticate_under_another_blob_id_fail_the_file(
    resumed: bool,
) -> None:
    # A sender naming its file by someone else's blob id (so that its bytes
    # would be kept under that id): every chunk opens under the key it gave,
    # but the whole does not hash to the id, so the file fails and goes; on
    # a fetch followed from chunk 0 and on one resumed after a restart alike.
    data = os.urandom(3 * CHUNK_BYTES + 5)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    claimed = replace(mine, blob_id=bytes(32), source=SENDER, state="fetching", have=0)
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    receiver.store.put_blob(claimed)
    current = claimed
    for index in range(chunk_count(len(data))):
        if resumed and index == 2:
            receiver.store.set_blob_progress(claimed.blob_id, "fetching", 2, "")
            receiver = MediaLibrary(
                receiver.store, receiver.files, now_ms=lambda: 1, random_bytes=os.urandom
            )
            current = receiver.store.get_blob(claimed.blob_id) or current
            assert receiver.resume_point(current) == 2
        current = receiver.accept_chunk(current, index, sender.sealed_chunk(mine, index))
    assert current.state == "failed" and "does not match" in current.detail
    assert claimed.blob_id.hex() not in receiver.files.names()
