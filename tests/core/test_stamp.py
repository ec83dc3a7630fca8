"""Proof-of-work stamps (sans-I/O): what is minted verifies, nothing else does, no crashes."""

from __future__ import annotations

import nacl.encoding
import nacl.hash
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core import stamp

resources = st.binary(max_size=200)


@settings(max_examples=50, deadline=None)
@given(resources, st.integers(0, 8))
def test_a_minted_stamp_verifies_at_its_difficulty_and_below(resource: bytes, bits: int) -> None:
    nonce = stamp.mint(resource, bits)
    assert nonce is not None and len(nonce) == stamp.NONCE_BYTES
    assert stamp.work(resource, nonce) >= bits
    assert all(stamp.verify(resource, nonce, b) for b in range(bits + 1))


@settings(max_examples=50, deadline=None)
@given(resources, st.binary(max_size=16), st.integers(-5, 40))
def test_arbitrary_nonces_never_crash_and_verify_only_with_their_work(
    resource: bytes, nonce: bytes, bits: int
) -> None:
    good = stamp.verify(resource, nonce, bits)
    if good:
        assert len(nonce) == stamp.NONCE_BYTES and 0 <= bits <= stamp.work(resource, nonce)


def test_a_stamp_is_bound_to_its_resource() -> None:
    nonce = stamp.mint(b"resource", 12)
    assert nonce is not None and stamp.verify(b"resource", nonce, 12)
    # For any other resource the same nonce is a random hash: 12 bits by chance
    # is 1 in 4096, so among 200 others at most a couple may pass.
    others = sum(stamp.verify(b"resource %d" % i, nonce, 12) for i in range(200))
    assert others <= 2


def test_work_is_counted_in_leading_zero_bits() -> None:
    assert stamp.leading_zero_bits(b"\x00\x00\x80" + bytes(29)) == 16
    assert stamp.leading_zero_bits(b"\x01" + bytes(31)) == 7
    assert stamp.leading_zero_bits(bytes(32)) == 256


def test_minting_gives_up_after_its_tries_and_refuses_silly_difficulties() -> None:
    assert stamp.mint(b"r", 32, max_tries=10) is None
    with pytest.raises(ValueError):
        stamp.mint(b"r", stamp.MAX_DIFFICULTY + 1)
    assert not stamp.verify(b"r", bytes(8), stamp.MAX_DIFFICULTY + 1)


def test_minting_is_deterministic() -> None:
    assert stamp.mint(b"resource", 6) == stamp.mint(b"resource", 6)


def _first_nonce_by_libsodium(resource: bytes, bits: int) -> bytes:
    """The reference: try nonces in order with libsodium's BLAKE2b (PyNaCl),
    counting leading zero bits: what every earlier p2pdm minted."""
    counter = 0
    while True:
        nonce = counter.to_bytes(stamp.NONCE_BYTES, "big")
        digest = nacl.hash.blake2b(
            resource + nonce, digest_size=32, person=stamp.PERSON, encoder=nacl.encoding.RawEncoder
        )
        if stamp.leading_zero_bits(digest) >= bits:
            return nonce
        counter += 1


@settings(max_examples=60, deadline=None)
@given(resources, st.integers(0, 10))
def test_mint_finds_the_same_first_nonce_as_libsodium_blake2b(resource: bytes, bits: int) -> None:
    """Minting copies a hashed state and compares digests as numbers: it must
    find exactly the nonce the plain definition finds, so stamps made by any
    p2pdm (and any other implementation of the definition) agree."""
    assert stamp.mint(resource, bits) == _first_nonce_by_libsodium(resource, bits)


def test_max_tries_bounds_minting_at_every_difficulty() -> None:
    assert stamp.mint(b"r", 0, max_tries=0) is None
    assert stamp.mint(b"r", 0, max_tries=1) == bytes(stamp.NONCE_BYTES)
