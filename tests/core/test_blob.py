"""Sealing files into chunks, and checking them one by one on the way back."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core.blob import (
    CHUNK_BYTES,
    MAC_BYTES,
    BlobSealer,
    check_chunk,
    chunk_count,
    chunk_span,
    open_chunk,
    seal_all,
    seal_chunk,
    sealed_size,
)
from p2pdm.errors import ChunkRejected

KEY = bytes(range(32))
OTHER_KEY = bytes(32)


def _seal(data: bytes, pieces: list[int] | None = None) -> tuple[list[bytes], bytes, bytes]:
    sealer = BlobSealer(KEY)
    chunks: list[bytes] = []
    at = 0
    for n in pieces or []:
        chunks += sealer.feed(data[at : at + n])
        at += n
    chunks += sealer.feed(data[at:])
    last, sealed = sealer.finish()
    chunks.append(last)
    return chunks, sealed.blob_id, sealed.digest


def test_sizes_and_spans_follow_the_chunking() -> None:
    assert chunk_count(0) == 1
    assert chunk_count(CHUNK_BYTES) == 1
    assert chunk_count(CHUNK_BYTES + 1) == 2
    assert sealed_size(0) == MAC_BYTES
    assert chunk_span(CHUNK_BYTES + 5, 1) == (CHUNK_BYTES + MAC_BYTES, 5 + MAC_BYTES)
    with pytest.raises(ValueError):
        chunk_span(10, 1)


def test_an_empty_file_is_one_empty_chunk() -> None:
    chunks, blob_id, digest = _seal(b"")
    assert len(chunks) == 1
    assert open_chunk(KEY, 0, 0, chunks[0]) == b""
    assert blob_id == hashlib.sha256(chunks[0]).digest()
    assert digest == hashlib.sha256(b"").digest()


def test_a_tampered_chunk_is_rejected() -> None:
    data = bytes(range(256)) * 2000
    chunks, _, _ = _seal(data)
    bad = bytearray(chunks[0])
    bad[40] ^= 1
    with pytest.raises(ChunkRejected, match="authentication"):
        open_chunk(KEY, len(data), 0, bytes(bad))


def test_without_the_direct_binding_chunks_open_and_refuse_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a PyNaCl without its cffi module: PyNaCl's public call does the check
    import p2pdm.core.blob as blob

    data = bytes(range(256)) * 2000
    chunks, _, _ = _seal(data)
    monkeypatch.setattr(blob, "_sodium", None)
    opened = b"".join(open_chunk(KEY, len(data), i, c) for i, c in enumerate(chunks))
    assert opened == data
    bad = bytearray(chunks[1])
    bad[-1] ^= 1
    with pytest.raises(ChunkRejected, match="authentication"):
        check_chunk(KEY, len(data), 1, bytes(bad))


def test_a_chunk_moved_to_another_place_or_file_is_rejected() -> None:
    data = b"a" * (3 * CHUNK_BYTES)
    chunks, _, _ = _seal(data)
    with pytest.raises(ChunkRejected):
        open_chunk(KEY, len(data), 1, chunks[0])
    with pytest.raises(ChunkRejected):
        open_chunk(OTHER_KEY, len(data), 0, chunks[0])


def test_a_file_cut_short_fails_on_its_new_last_chunk() -> None:
    data = b"b" * (2 * CHUNK_BYTES)
    chunks, _, _ = _seal(data)
    # Claimed to be one chunk long: chunk 0 was sealed as "not last".
    with pytest.raises(ChunkRejected):
        open_chunk(KEY, CHUNK_BYTES, 0, chunks[0])


def test_a_chunk_of_the_wrong_length_is_rejected_before_decrypting() -> None:
    with pytest.raises(ChunkRejected, match="expected"):
        open_chunk(KEY, 100, 0, b"x" * 10)
    with pytest.raises(ChunkRejected):
        open_chunk(KEY, 100, 5, b"x" * 10)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 3 * CHUNK_BYTES + 7),
    pieces=st.lists(st.integers(0, CHUNK_BYTES + 3), max_size=6),
    order=st.randoms(use_true_random=False),
    cut=st.integers(0, 4),
)
def test_any_cut_points_and_chunk_order_give_back_the_file(
    size: int, pieces: list[int], order: object, cut: int
) -> None:
    """However the plaintext is fed in, and in whatever order the chunks come
    back (a resumed transfer starts anywhere), the file is rebuilt exactly."""
    data = hashlib.shake_256(size.to_bytes(4, "big")).digest(size)
    chunks, blob_id, digest = _seal(data, pieces)
    assert len(chunks) == chunk_count(size)
    assert b"".join(chunks) == b"".join(seal_all(KEY, [data]))
    assert len(b"".join(chunks)) == sealed_size(size)
    assert blob_id == hashlib.sha256(b"".join(chunks)).digest()
    indexes = list(range(len(chunks)))
    order.shuffle(indexes)  # type: ignore[attr-defined]
    # A transfer broken after `cut` chunks resumes from the first one missing.
    have: dict[int, bytes] = {}
    for i in indexes[: min(cut, len(indexes))]:
        have[i] = open_chunk(KEY, size, i, chunks[i])
    for i in indexes:
        if i not in have:
            have[i] = open_chunk(KEY, size, i, chunks[i])
    rebuilt = b"".join(have[i] for i in range(len(chunks)))
    assert rebuilt == data
    assert hashlib.sha256(rebuilt).digest() == digest


def test_a_chunk_over_the_size_cannot_be_sealed() -> None:
    with pytest.raises(ValueError):
        seal_chunk(KEY, 0, True, b"x" * (CHUNK_BYTES + 1))


@given(
    data=st.binary(max_size=3 * 1024),
    flip=st.integers(0, 2**20),
    key_size=st.sampled_from([0, 16, 31, 33, 64]),
)
def test_checking_a_chunk_agrees_with_opening_it(data: bytes, flip: int, key_size: int) -> None:
    # check_chunk (the recipient's check, opened straight into a buffer by
    # libsodium) accepts exactly what opens, from bytes or a view, and
    # refuses a flipped bit, the wrong key and a key of the wrong size.
    sealed = seal_chunk(KEY, 0, True, data)
    assert open_chunk(KEY, len(data), 0, memoryview(sealed)) == data
    check_chunk(KEY, len(data), 0, sealed)
    bad = bytearray(sealed)
    bad[flip % len(bad)] ^= 1 << (flip % 8)
    for chunk, key in ((bytes(bad), KEY), (sealed, OTHER_KEY), (sealed, bytes(key_size))):
        with pytest.raises(ChunkRejected):
            check_chunk(key, len(data), 0, chunk)
        with pytest.raises(ChunkRejected):
            open_chunk(key, len(data), 0, chunk)
