"""Hypothesis: chunks arriving in any order, damaged, twice, with crashes that
leave stray bytes behind; the file still ends whole and exact."""

from __future__ import annotations

import os
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core.blob import CHUNK_BYTES, chunk_count
from p2pdm.core.identity import PeerId
from p2pdm.errors import ChunkRejected
from p2pdm.node.media import MediaLibrary
from p2pdm.store.blobs import BlobRecord
from p2pdm.store.memory import MemoryStore

SENDER = PeerId.from_public_key(b"\x07" * 32)

# One step: ("chunk", index, damaged) or ("crash", stray bytes left after the last chunk).
STEP = st.one_of(
    st.tuples(st.just("chunk"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("crash"), st.integers(0, 3000), st.just(False)),
)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 5 * CHUNK_BYTES), steps=st.lists(STEP, max_size=30))
def test_any_arrival_order_and_crash_ends_whole_and_exact(
    size: int, steps: list[tuple[str, int, bool]]
) -> None:
    data = os.urandom(size)
    sender = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    mine = sender.add_file(data, "application/octet-stream", "f.bin")
    total = chunk_count(size)
    receiver = MediaLibrary(MemoryStore(), now_ms=lambda: 1, random_bytes=os.urandom)
    receiver.store.put_blob(replace(mine, source=SENDER, state="fetching", have=0))
    name = mine.blob_id.hex()

    def record() -> BlobRecord:
        got = receiver.store.get_blob(mine.blob_id)
        assert got is not None
        return got

    for kind, value, damaged in steps:
        current = record()
        if kind == "crash" and current.state == "fetching":
            # What a crash between writing bytes and recording them leaves.
            receiver.files.write_at(name, receiver.files.length(name), os.urandom(value))
            receiver.resume_point(current)
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
