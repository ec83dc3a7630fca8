"""Encrypted blobs: how a file is cut, sealed, named and checked (docs/protocol.md §17).

How this works: the sender draws a fresh 32-byte key for each file and cuts
the plaintext into chunks of CHUNK_BYTES (the last one shorter; an empty
file is one empty chunk). Chunk ``i`` is sealed with libsodium's secretbox
(XSalsa20-Poly1305) under that key and the nonce :func:`chunk_nonce`
``(i, last)``: the chunk index as 8 bytes big-endian, one byte that is 1
on the last chunk only, then zeros. The key is never reused for another
file, so every nonce is used once; binding the index and the last-chunk
flag into the nonce makes a chunk moved to another place, a file cut short
or grown fail authentication. The sealed blob is the sealed chunks one after
another (each MAC_BYTES longer than its plaintext); its id is the SHA-256
of those bytes, and the plaintext's SHA-256 is its digest. A recipient
knows (from the message) id, key, size and digest: it checks each chunk's
MAC before writing it, and the id once the last chunk is in. That fixes
the plaintext too (secretbox is deterministic: one key, nonce and
plaintext give one sealed chunk, and only that one opens), so the digest
needs no hashing of its own on receipt.

Everything here is pure: no files, no clock, randomness comes in as bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from nacl.bindings import crypto_secretbox as _seal
from nacl.bindings import crypto_secretbox_MACBYTES, crypto_secretbox_NONCEBYTES
from nacl.bindings import crypto_secretbox_open as _open
from nacl.exceptions import CryptoError

try:  # libsodium through cffi: PyNaCl's own binding, not a promised interface
    from nacl import _sodium
except ImportError:  # a PyNaCl without it: its public, copying call below
    _sodium = None

from p2pdm.errors import ChunkRejected

__all__ = [
    "BLOB_ID_BYTES",
    "BLOB_KEY_BYTES",
    "CHUNK_BYTES",
    "DIGEST_BYTES",
    "MAC_BYTES",
    "BlobSealer",
    "Sealed",
    "check_chunk",
    "chunk_count",
    "chunk_nonce",
    "chunk_span",
    "open_chunk",
    "seal_chunk",
    "sealed_size",
]

#: Plaintext bytes per chunk: a chunk (plus its MAC and frame header) fits a
#: frame of the 1 MiB cap four times over, is the unit a transfer resumes
#: from, and keeps the buffers of a transfer to a few chunks.
CHUNK_BYTES: Final = 256 << 10
#: Bytes the MAC adds to each sealed chunk.
MAC_BYTES: Final = crypto_secretbox_MACBYTES
#: A blob key: one per file, never reused.
BLOB_KEY_BYTES: Final = 32
#: A blob id: the SHA-256 of the sealed blob.
BLOB_ID_BYTES: Final = 32
#: A plaintext digest: its SHA-256.
DIGEST_BYTES: Final = 32


def chunk_count(size: int) -> int:
    """How many chunks a plaintext of ``size`` bytes is cut into (at least one)."""
    if size < 0:
        raise ValueError("a size is not negative")
    return max(1, -(-size // CHUNK_BYTES))


def sealed_size(size: int) -> int:
    """Bytes of the sealed blob of a ``size``-byte plaintext."""
    return size + chunk_count(size) * MAC_BYTES


def chunk_span(size: int, index: int) -> tuple[int, int]:
    """``(offset, length)`` of sealed chunk ``index`` in the sealed blob of a
    ``size``-byte plaintext; raises ValueError past the last chunk."""
    count = chunk_count(size)
    if not 0 <= index < count:
        raise ValueError(f"chunk {index} is outside 0..{count - 1}")
    plain = min(CHUNK_BYTES, size - index * CHUNK_BYTES)
    return index * (CHUNK_BYTES + MAC_BYTES), plain + MAC_BYTES


def chunk_nonce(index: int, last: bool) -> bytes:
    """The nonce of chunk ``index`` (see the module docstring)."""
    head = index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")
    return head + bytes(crypto_secretbox_NONCEBYTES - len(head))


def seal_chunk(key: bytes, index: int, last: bool, plaintext: bytes) -> bytes:
    """Chunk ``index`` sealed under ``key``: ciphertext with its MAC in front."""
    if len(plaintext) > CHUNK_BYTES:
        raise ValueError(f"a chunk is at most {CHUNK_BYTES} bytes")
    return _seal(plaintext, chunk_nonce(index, last), key)


def _open_into(key: bytes, size: int, index: int, sealed: bytes | memoryview) -> bytearray:
    try:
        _, length = chunk_span(size, index)
    except ValueError as exc:
        raise ChunkRejected(str(exc)) from None
    if len(sealed) != length:
        raise ChunkRejected(f"chunk {index} is {len(sealed)} bytes, {length} expected")
    if len(key) != BLOB_KEY_BYTES:  # from a peer's message: no chunk opens under it
        raise ChunkRejected(f"a blob key is {BLOB_KEY_BYTES} bytes, not {len(key)}")
    last = index == chunk_count(size) - 1
    nonce = chunk_nonce(index, last)
    if _sodium is None:
        try:
            return bytearray(_open(bytes(sealed), nonce, key))
        except CryptoError:
            raise ChunkRejected(f"chunk {index} failed authentication") from None
    plain = bytearray(length - MAC_BYTES)
    # libsodium's own "easy" form (MAC then ciphertext, as a chunk is
    # sealed), straight into ``plain``, without the GIL: PyNaCl's
    # crypto_secretbox_open pads and copies the input and the output with
    # the GIL held, three times the cost of the opening itself, and a
    # recipient opens every chunk of every file in a worker thread.
    failed = _sodium.lib.crypto_secretbox_open_easy(
        _sodium.ffi.from_buffer(plain),
        _sodium.ffi.from_buffer(sealed),
        len(sealed),
        nonce,
        key,
    )
    if failed:
        raise ChunkRejected(f"chunk {index} failed authentication")
    return plain


def open_chunk(key: bytes, size: int, index: int, sealed: bytes | memoryview) -> bytes:
    """The plaintext of sealed chunk ``index`` of a ``size``-byte file.

    Raises ChunkRejected when the chunk has the wrong length for its place or
    fails authentication (tampered, from another place or another file).
    """
    return bytes(_open_into(key, size, index, sealed))


def check_chunk(key: bytes, size: int, index: int, sealed: bytes | memoryview) -> None:
    """:func:`open_chunk` for its check only (the plaintext is not copied out)."""
    _open_into(key, size, index, sealed)


@dataclass(frozen=True, slots=True)
class Sealed:
    """What sealing a whole file gave: the facts its message carries."""

    blob_id: bytes
    digest: bytes
    size: int


class BlobSealer:
    """Seals a file chunk by chunk as it streams in; :meth:`finish` names it.

    Feed the plaintext in any pieces with :meth:`feed`; it gives back the
    sealed chunks completed so far. The last chunk is only sealed by
    :meth:`finish` (only then is it known to be the last).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != BLOB_KEY_BYTES:
            raise ValueError(f"a blob key is {BLOB_KEY_BYTES} bytes")
        self._key = key
        self._pending = bytearray()
        self._index = 0
        self._size = 0
        self._id = hashlib.sha256()
        self._digest = hashlib.sha256()

    @property
    def size(self) -> int:
        """Plaintext bytes fed so far."""
        return self._size

    def _emit(self, plaintext: bytes, last: bool) -> bytes:
        sealed = seal_chunk(self._key, self._index, last, plaintext)
        self._index += 1
        self._id.update(sealed)
        return sealed

    def feed(self, data: bytes) -> list[bytes]:
        """Take more plaintext; the sealed chunks it completed (keeps one chunk back)."""
        self._size += len(data)
        self._digest.update(data)
        self._pending += data
        out = []
        # Hold back a full chunk until more comes: it may be the last.
        while len(self._pending) > CHUNK_BYTES:
            out.append(self._emit(bytes(self._pending[:CHUNK_BYTES]), last=False))
            del self._pending[:CHUNK_BYTES]
        return out

    def finish(self) -> tuple[bytes, Sealed]:
        """The last sealed chunk, and the file's id, digest and size."""
        last = self._emit(bytes(self._pending), last=True)
        self._pending.clear()
        return last, Sealed(self._id.digest(), self._digest.digest(), self._size)


def seal_all(key: bytes, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Every sealed chunk of the plaintext given in ``chunks`` (any pieces)."""
    sealer = BlobSealer(key)
    for piece in chunks:
        yield from sealer.feed(piece)
    yield sealer.finish()[0]
