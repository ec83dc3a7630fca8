"""Proof-of-work stamps (sans-I/O): what is minted verifies, nothing else does, no crashes."""

from __future__ import annotations

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
