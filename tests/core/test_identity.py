"""Identity: libp2p-compatible PeerIDs, domain-separated signatures, safety numbers."""

from __future__ import annotations

import re

import base58
import nacl.exceptions
import nacl.public
import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core.identity import Identity, PeerId, safety_number, verify
from p2pdm.errors import IdentityError, SchemaError, SignatureError

SEEDS = [bytes(32), bytes(range(32)), b"\xff" * 32, bytes([7]) * 32]
seeds = st.binary(min_size=32, max_size=32)

# PeerIDs of other key types, as libp2p prints them.
RSA_PEER = "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"  # sha2-256 multihash
SECP256K1_PEER = "16Uiu2HAkwZoDTzdzZ8d1pnFMzW6nKCK4wzhcBznH833NkggugauE"
CIDV1 = "bafzbeigai3eoy2ccc7ybwjfz5r3rdxqrinwi4rwytly24tdbh6yk7zslrm"


# --- PeerID ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS, ids=["zeros", "counting", "ones", "sevens"])
def test_peer_id_is_libp2p_peer_id(seed: bytes) -> None:
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.peer.id import ID

    expected = ID.from_pubkey(create_new_key_pair(seed).public_key)
    identity = Identity(seed)
    assert identity.peer_id.raw == expected.to_bytes()
    assert str(identity.peer_id) == expected.to_base58()
    assert str(identity.peer_id).startswith("12D3KooW")


def test_other_key_types_are_really_what_we_say() -> None:
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.peer.id import ID

    # The secp256k1 form is libp2p's own; the RSA one is a sha2-256 multihash.
    assert ID.from_pubkey(create_new_key_pair(b"\x01" * 32).public_key).to_base58()[:6] == "16Uiu2"
    assert base58.b58decode(RSA_PEER)[:2] == b"\x12\x20"


@settings(max_examples=50, deadline=None)
@given(seeds)
def test_parse_round_trip(seed: bytes) -> None:
    peer = Identity(seed).peer_id
    assert PeerId.parse(str(peer)) == peer
    assert PeerId.parse(f"  {peer}\n") == peer
    assert PeerId(peer.raw) == peer
    assert PeerId.from_public_key(peer.public_key) == peer
    assert peer.short() == str(peer)[-8:]
    assert str(peer) in repr(peer)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello world",
        "0OIl",  # not in the base58 alphabet
        "12D3KooW",
        "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeS",  # one character short
        "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSBB",  # one too many
        "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB" + "1" * 20,  # too long
        RSA_PEER,
        SECP256K1_PEER,
        CIDV1,
        "12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfé",
    ],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(SchemaError):
        PeerId.parse(text)


def test_parse_refuses_non_text() -> None:
    with pytest.raises(SchemaError):
        PeerId.parse(b"12D3KooW")  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        PeerId.parse(None)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70) | st.text(alphabet=base58.alphabet.decode(), max_size=60))
def test_parse_arbitrary_text_gives_a_peer_id_or_schema_error(text: str) -> None:
    try:
        peer = PeerId.parse(text)
    except SchemaError:
        return
    assert PeerId.parse(str(peer)) == peer


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes(38),
        b"\x00\x24\x08\x02\x12\x20" + bytes(32),
        b"\x00\x24\x08\x01\x12\x20" + bytes(31),
    ],
)
def test_raw_peer_id_must_be_an_ed25519_identity_multihash(raw: bytes) -> None:
    with pytest.raises(SchemaError):
        PeerId(raw)


def test_from_public_key_needs_32_bytes() -> None:
    with pytest.raises(SchemaError):
        PeerId.from_public_key(bytes(31))


def test_peer_ids_compare_and_hash_by_bytes() -> None:
    a, b = Identity(SEEDS[0]).peer_id, Identity(SEEDS[1]).peer_id
    assert a == PeerId(a.raw) and hash(a) == hash(PeerId(a.raw))
    assert a != b
    assert sorted([b, a]) == sorted([a, b])
    assert len({a, b, PeerId(a.raw)}) == 2


# --- identity and keys ----------------------------------------------------------------------


def test_identity_needs_a_32_byte_seed() -> None:
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(IdentityError):
            Identity(bad)
    assert Identity.generate(bytes(32)).peer_id == Identity(bytes(32)).peer_id


def test_identity_repr_does_not_leak_the_seed() -> None:
    identity = Identity(b"\xab" * 32)
    assert "ab" * 4 not in repr(identity).lower()
    assert str(identity.peer_id) in repr(identity)


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_x25519_keys_are_consistent(seed: bytes) -> None:
    identity = Identity(seed)
    public = nacl.public.PrivateKey(identity.x25519_private_key).public_key
    assert bytes(public) == identity.peer_id.x25519_public_key
    assert identity.public_key == identity.peer_id.public_key


def test_x25519_agreement_between_two_identities() -> None:
    a, b = Identity(SEEDS[1]), Identity(SEEDS[2])
    ab = nacl.public.Box(
        nacl.public.PrivateKey(a.x25519_private_key),
        nacl.public.PublicKey(b.peer_id.x25519_public_key),
    )
    ba = nacl.public.Box(
        nacl.public.PrivateKey(b.x25519_private_key),
        nacl.public.PublicKey(a.peer_id.x25519_public_key),
    )
    assert ab.shared_key() == ba.shared_key()


# --- signatures ---------------------------------------------------------------------------------


def test_signature_verifies_in_its_domain() -> None:
    identity = Identity(SEEDS[1])
    sig = identity.sign("msg/v1", b"data")
    assert len(sig) == 64
    verify(identity.peer_id, "msg/v1", b"data", sig)


def test_signed_bytes_are_prefixed_with_the_domain() -> None:
    identity = Identity(SEEDS[1])
    sig = identity.sign("invite/v1", b"data")
    nacl.signing.VerifyKey(identity.public_key).verify(b"p2pdm/invite/v1\x00data", sig)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(identity.public_key).verify(b"data", sig)


@pytest.mark.parametrize(
    ("domain", "other"),
    [("msg/v1", "invite/v1"), ("invite/v1", "msg/v1"), ("msg/v1", "msg/v2"), ("msg/v1", "msg")],
)
def test_signature_in_one_domain_fails_in_another(domain: str, other: str) -> None:
    identity = Identity(SEEDS[1])
    sig = identity.sign(domain, b"data")
    with pytest.raises(SignatureError):
        verify(identity.peer_id, other, b"data", sig)


def test_signature_fails_for_other_data_signer_or_damage() -> None:
    a, b = Identity(SEEDS[1]), Identity(SEEDS[2])
    sig = a.sign("msg/v1", b"data")
    with pytest.raises(SignatureError):
        verify(a.peer_id, "msg/v1", b"date", sig)
    with pytest.raises(SignatureError):
        verify(b.peer_id, "msg/v1", b"data", sig)
    with pytest.raises(SignatureError):
        verify(a.peer_id, "msg/v1", b"data", bytes([sig[0] ^ 1]) + sig[1:])
    for bad_length in (b"", sig[:-1], sig + b"\x00"):
        with pytest.raises(SignatureError):
            verify(a.peer_id, "msg/v1", b"data", bad_length)


def test_signatures_are_deterministic() -> None:
    identity = Identity(SEEDS[3])
    assert identity.sign("msg/v1", b"x") == Identity(SEEDS[3]).sign("msg/v1", b"x")


# --- safety numbers ----------------------------------------------------------------------------

_SAFETY_FORMAT = re.compile(r"\d{5}( \d{5}){11}")


def test_safety_number_format_and_symmetry() -> None:
    a, b = Identity(SEEDS[1]).peer_id, Identity(SEEDS[2]).peer_id
    number = safety_number(a, b)
    assert _SAFETY_FORMAT.fullmatch(number)
    assert len(number.split()) == 12
    assert safety_number(b, a) == number


def test_safety_number_differs_for_different_pairs() -> None:
    a, b, c = (Identity(s).peer_id for s in SEEDS[1:])
    numbers = {safety_number(a, b), safety_number(a, c), safety_number(b, c)}
    assert len(numbers) == 3


def test_safety_number_halves_belong_to_each_party() -> None:
    # Each party contributes 30 digits; a shared contact shows the same half.
    a, b, c = (Identity(s).peer_id for s in SEEDS[1:])
    halves_ab = {safety_number(a, b).replace(" ", "")[i : i + 30] for i in (0, 30)}
    halves_ac = {safety_number(a, c).replace(" ", "")[i : i + 30] for i in (0, 30)}
    assert len(halves_ab & halves_ac) == 1
