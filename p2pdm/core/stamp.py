"""Proof-of-work stamps: a cost a fresh identity cannot multiply for free.

How this works (hashcash over BLAKE2b): a *resource* is the byte string
being paid for; whoever asks for the work names it so that a stamp is good
for one thing only (the mailbox stamp binds mailbox, recipient, envelope and
day; see ``p2pdm.core.mailbox.stamp_resource``). A stamp is an 8-byte nonce.
It is good for ``difficulty`` bits when

    BLAKE2b-256(resource ‖ nonce, person=b"p2pdm-stamp/v1")

starts with at least ``difficulty`` zero bits. Minting tries nonces
0, 1, 2, … and costs 2**difficulty hashes on average; verifying costs one.
Nothing here knows what the resource means, so other requests (a message
request from a stranger) can reuse it with their own resource.

No I/O and no randomness: minting is deterministic for a resource.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

__all__ = [
    "MAX_DIFFICULTY",
    "NONCE_BYTES",
    "PERSON",
    "leading_zero_bits",
    "mint",
    "verify",
    "work",
]

#: BLAKE2b personalisation: these hashes are stamps and nothing else.
PERSON: Final = b"p2pdm-stamp/v1"
#: A stamp's nonce: 8 bytes hold far more tries than any difficulty needs.
NONCE_BYTES: Final = 8
#: Most bits anyone may ask for: 2**32 hashes is hours of work; beyond it a
#: stamp would only be a way to make a peer burn its CPU.
MAX_DIFFICULTY: Final = 32
_DIGEST_BYTES: Final = 32
_NONCE: Final = struct.Struct(">Q")  # NONCE_BYTES, big-endian: nonce n is n's 8 bytes


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits ``digest`` starts with."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def work(resource: bytes, nonce: bytes) -> int:
    """The bits of work ``nonce`` proves for ``resource``."""
    return leading_zero_bits(_hasher(resource + nonce).digest())


def _hasher(data: bytes) -> hashlib.blake2b:
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES, person=PERSON)


def mint(resource: bytes, difficulty: int, *, max_tries: int | None = None) -> bytes | None:
    """A nonce proving ``difficulty`` bits of work for ``resource``.

    Returns None if ``max_tries`` nonces were tried without success. Raises
    ValueError for a difficulty outside 0..MAX_DIFFICULTY.
    """
    if not 0 <= difficulty <= MAX_DIFFICULTY:
        raise ValueError(f"a stamp's difficulty is 0 to {MAX_DIFFICULTY} bits, not {difficulty}")
    limit = 1 << (NONCE_BYTES * 8) if max_tries is None else max_tries
    if difficulty == 0:
        return _NONCE.pack(0) if limit > 0 else None
    # The resource is hashed once; each try copies that state and adds its
    # nonce. A digest has at least ``difficulty`` leading zero bits exactly
    # when, read as a big-endian number, it is below 2**(256 - difficulty),
    # and equal-length bytes compare as such numbers do.
    fed = _hasher(resource)
    copy = fed.copy
    pack = _NONCE.pack
    below = (1 << (_DIGEST_BYTES * 8 - difficulty)).to_bytes(_DIGEST_BYTES, "big")
    for counter in range(limit):
        tried = copy()
        tried.update(pack(counter))
        if tried.digest() < below:
            return pack(counter)
    return None


def verify(resource: bytes, nonce: bytes, difficulty: int) -> bool:
    """True if ``nonce`` is a stamp of at least ``difficulty`` bits for ``resource``."""
    if len(nonce) != NONCE_BYTES or not 0 <= difficulty <= MAX_DIFFICULTY:
        return False
    return work(resource, nonce) >= difficulty
