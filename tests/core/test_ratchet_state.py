"""The compact session state: the same ratchet as the package's own form, and
stores written in that older form still read."""

from __future__ import annotations

import copy
import hmac
import os
from typing import Any

import doubleratchet
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7
from doubleratchet.recommended import HashFunction as DRHash
from doubleratchet.recommended import (
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_separate_hmacs,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pdm.core import cbor, ratchet_state
from p2pdm.core.identity import Identity
from p2pdm.core.prekeys import run_to_completion
from p2pdm.core.session import (
    _AEAD,
    _DR_CONFIG,
    MAX_SESSIONS_PER_PEER,
    OwnPrekeys,
    PeerSessions,
    _aead_keys,
    _ChainKDF,
    _DHRatchet,
    _pkcs7_pad,
    _pkcs7_unpad,
    _Ratchet,
)
from p2pdm.core.wire import SessionMessage
from p2pdm.errors import DecryptError, SessionError, WireError
from tests.legacy_sessions import legacy_bytes


def _pair() -> tuple[Identity, OwnPrekeys, Identity, OwnPrekeys]:
    a, b = Identity(os.urandom(32)), Identity(os.urandom(32))
    return a, OwnPrekeys.create(a, 0), b, OwnPrekeys.create(b, 0)


def _talk() -> tuple[PeerSessions, PeerSessions, OwnPrekeys, OwnPrekeys]:
    """Alice and Bob after a few round trips, with skipped message keys on
    Bob's side from three chains of Alice's (messages 1, 3, 5 and 6 lost)."""
    _a, oa, b, ob = _pair()
    ab, ba = PeerSessions(b.peer_id), PeerSessions(_a.peer_id)
    ba.decrypt(ob, ab.encrypt(oa, b"0", ob.bundle()))
    lost = [ab.encrypt(oa, b"1")]
    ba.decrypt(ob, ab.encrypt(oa, b"2"))
    ab.decrypt(oa, ba.encrypt(ob, b"answer"))  # a DH ratchet step on both sides
    lost.append(ab.encrypt(oa, b"3"))
    ba.decrypt(ob, ab.encrypt(oa, b"4"))
    ab.decrypt(oa, ba.encrypt(ob, b"again"))
    lost.append(ab.encrypt(oa, b"5"))
    lost.append(ab.encrypt(oa, b"6"))
    ba.decrypt(ob, ab.encrypt(oa, b"7"))
    assert len(lost) == 4
    return ab, ba, oa, ob


def test_compact_form_is_the_packages_state() -> None:
    ab, ba, _, _ = _talk()
    for ratchet in (ab.sessions[0].ratchet, ba.sessions[0].ratchet):
        state = ratchet_state.dump(ratchet)
        # The fast path reads what the package's public model holds.
        assert state == ratchet_state._dump_model(ratchet.model)
        again = ratchet_state.load(_Ratchet, cbor.decode(cbor.encode(state), 1 << 20), _DR_CONFIG)
        assert again.json == ratchet.json
    skipped = ratchet_state.dump(ba.sessions[0].ratchet)[6]
    # Runs of one ratchet key each: keys of three chains were skipped.
    assert len(skipped) == 6 and sum(len(run) for run in skipped[1::2]) == 2 * 4


def test_compact_form_is_smaller() -> None:
    _, ba, _, _ = _talk()
    assert len(ba.to_bytes()) * 2 < len(legacy_bytes(ba))


def test_clone_shares_nothing_that_changes() -> None:
    ab, _, _, _ = _talk()
    dh = ab.sessions[0].ratchet._DoubleRatchet__diffie_hellman_ratchet  # type: ignore[attr-defined]
    twin = copy.deepcopy(dh)
    assert twin.model == dh.model
    before = dh.model
    ratchet = ab.sessions[0].ratchet
    ratchet._DoubleRatchet__diffie_hellman_ratchet = twin  # type: ignore[attr-defined]
    ab.encrypt(OwnPrekeys.create(Identity(os.urandom(32)), 0), b"moves the clone only")
    assert twin.model != before
    assert dh.model == before


def test_lost_messages_still_open_after_a_round_trip_of_the_state() -> None:
    ab, ba, oa, ob = _talk()
    late = ab.encrypt(oa, b"late")
    restored = PeerSessions.from_bytes(ba.peer, ba.to_bytes())
    assert restored.decrypt(ob, late) == b"late"


def test_state_written_before_is_read_and_rewritten_compact() -> None:
    ab, ba, oa, ob = _talk()
    legacy = legacy_bytes(ba)
    upgraded = PeerSessions.from_bytes(ba.peer, legacy)
    assert [s.ratchet.json for s in upgraded.sessions] == [s.ratchet.json for s in ba.sessions]
    assert upgraded.decrypt(ob, ab.encrypt(oa, b"after the upgrade")) == b"after the upgrade"
    ab.decrypt(oa, upgraded.encrypt(ob, b"and back"))
    fields = cbor.decode_map(upgraded.to_bytes(), 1 << 20, "sessions")
    assert fields.integer("v", 0, 9) == 2


def _with_ratchet(ba: PeerSessions, state: Any) -> bytes:
    data = cbor.decode(ba.to_bytes(), 1 << 20)
    data["sessions"][0]["r"] = state
    return cbor.encode(data)


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[:6],  # a field missing
        lambda s: [b"short", *s[1:]],  # a key of the wrong size
        lambda s: [*s[:3], None, *s[4:]],  # no sending chain
        lambda s: [*s[:2], None, *s[3:]],  # no root chain
        lambda s: [*s[:3], [-1, s[3][1]], *s[4:]],  # a negative counter
        lambda s: [*s[:6], [s[6][0], [1]]],  # a skipped key without its key
        lambda s: [*s[:6], [s[6][0], [i for n in range(1001) for i in (n, b"k" * 32)]]],
        lambda s: "not a list",
    ],
)
def test_damaged_compact_state_is_refused(damage: Any) -> None:
    _, ba, _, _ = _talk()
    state = ratchet_state.dump(ba.sessions[0].ratchet)
    with pytest.raises((SessionError, WireError)):
        PeerSessions.from_bytes(ba.peer, _with_ratchet(ba, damage(state)))


def test_unknown_version_refused() -> None:
    _, ba, _, _ = _talk()
    data = cbor.decode(ba.to_bytes(), 1 << 20)
    data["v"] = 3
    with pytest.raises(SessionError, match="unknown state version"):
        PeerSessions.from_bytes(ba.peer, cbor.encode(data))


def test_failed_decryption_leaves_the_state_as_it_was() -> None:
    ab, ba, oa, ob = _talk()
    before = ba.to_bytes()
    message = ab.encrypt(oa, b"x")
    forged = type(message)(
        message.sender,
        message.x3dh,
        os.urandom(32),  # a new ratchet key: the clone takes a DH step, then fails
        message.previous_chain_length,
        message.index,
        message.ciphertext,
    )
    with pytest.raises(DecryptError):
        ba.decrypt(ob, forged)
    assert ba.to_bytes() == before
    assert ba.decrypt(ob, message) == b"x"


# --- the cheaper chain KDF and AEAD: the package's bytes ----------------------


class _PackageChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256


class _PackageAEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"p2pdm/dr/message"


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=1, max_size=3))
def test_chain_kdf_gives_the_packages_bytes(key: bytes, data: bytes) -> None:
    length = 32 * len(data)
    ours = run_to_completion(_ChainKDF.derive(key, data, length))
    assert ours == run_to_completion(_PackageChainKDF.derive(key, data, length))
    with pytest.raises(ValueError):
        run_to_completion(_ChainKDF.derive(key, data, length + 1))


@settings(max_examples=100, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=300),
    st.binary(max_size=120),
)
def test_aead_gives_the_packages_bytes_and_opens_them(
    key: bytes, plaintext: bytes, associated_data: bytes
) -> None:
    # AES-CBC with a derived key and IV is deterministic: the same input, the same bytes.
    ours = run_to_completion(_AEAD.encrypt(plaintext, key, associated_data))
    assert ours == run_to_completion(_PackageAEAD.encrypt(plaintext, key, associated_data))
    assert run_to_completion(_AEAD.decrypt(ours, key, associated_data)) == plaintext
    assert run_to_completion(_PackageAEAD.decrypt(ours, key, associated_data)) == plaintext


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=100), st.integers(min_value=0), st.integers(0, 7))
def test_aead_refuses_what_the_package_refuses(plaintext: bytes, at: int, bit: int) -> None:
    key, ad = os.urandom(32), b"ad"
    sealed = bytearray(run_to_completion(_AEAD.encrypt(plaintext, key, ad)))
    sealed[at % len(sealed)] ^= 1 << bit
    for aead in (_AEAD, _PackageAEAD):
        with pytest.raises(doubleratchet.AuthenticationFailedException):
            run_to_completion(aead.decrypt(bytes(sealed), key, ad))
    for short in (b"", b"x" * 31, bytes(sealed[-32:])):
        with pytest.raises(doubleratchet.AuthenticationFailedException):
            run_to_completion(_AEAD.decrypt(short, key, ad))
    with pytest.raises(doubleratchet.AuthenticationFailedException):
        run_to_completion(_AEAD.decrypt(bytes(sealed), key, ad + b"!"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_padding_is_cryptographys_pkcs7(data: bytes) -> None:
    padder = PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    assert _pkcs7_pad(data) == padded
    assert _pkcs7_unpad(padded) == data


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        # Block-sized ends that look like padding: runs of one byte value.
        st.tuples(st.binary(max_size=32), st.integers(0, 20), st.integers(0, 20)).map(
            lambda t: t[0] + bytes([t[1]]) * t[2]
        ),
    )
)
def test_unpadding_refuses_what_cryptography_refuses(data: bytes) -> None:
    unpadder = PKCS7(128).unpadder()
    try:
        theirs: bytes | None = unpadder.update(data) + unpadder.finalize()
    except ValueError:
        theirs = None
    assert _pkcs7_unpad(data) == theirs


def _tagged(key: bytes, ad: bytes, body: bytes) -> bytes:
    """``body`` (already a whole number of blocks, or not) AES-CBC encrypted
    without padding under ``key``'s derived keys, with a valid tag."""
    aes_key, mac_key, iv = _aead_keys(key)
    if len(body) % 16 == 0:
        aes = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
        body = aes.update(body) + aes.finalize()
    return body + hmac.digest(mac_key, ad + body, "sha256")


@pytest.mark.parametrize(
    "plain",
    [
        b"x" * 15 + b"\x00",  # a count of zero
        b"x" * 15 + b"\x11",  # more than a block
        b"x" * 14 + b"\x01\x02",  # a count its bytes do not repeat
        b"",  # nothing at all
        b"x" * 17,  # not whole blocks: not even decrypted
    ],
)
def test_a_valid_tag_over_bad_padding_is_refused_as_the_package_refuses_it(plain: bytes) -> None:
    key, ad = os.urandom(32), b"ad"
    sealed = _tagged(key, ad, plain)
    for aead in (_AEAD, _PackageAEAD):
        with pytest.raises(doubleratchet.DecryptionFailedException):
            run_to_completion(aead.decrypt(sealed, key, ad))


# --- saving only what changed -------------------------------------------------


def _fresh_bytes(sessions: PeerSessions) -> bytes:
    """The saved state made from scratch, as before sessions remembered their bytes."""
    return cbor.encode({"v": 2, "sessions": [s.to_map() for s in sessions.sessions]})


def test_saved_state_is_the_canonical_encoding_of_all_sessions() -> None:
    ab, ba, _, _ = _talk()
    for sessions in (ab, ba):
        assert sessions.to_bytes() == _fresh_bytes(sessions)
        for s in sessions.sessions:
            assert s.encoded() == cbor.encode(s.to_map())  # the plain encoder, canonical bytes


def test_sessions_not_used_keep_their_bytes_and_used_ones_are_encoded_again() -> None:
    """Four sessions with one peer (re-installs); each message moves one of them,
    and what is saved is always the whole current state."""
    a, oa, b, ob = _pair()
    ba = PeerSessions(a.peer_id)
    senders = []
    for _ in range(MAX_SESSIONS_PER_PEER):
        ab = PeerSessions(b.peer_id)  # Alice re-installed: a new session each time
        ba.decrypt(ob, ab.encrypt(oa, b"hello", ob.bundle()))
        senders.append(ab)
    assert len(ba.sessions) == MAX_SESSIONS_PER_PEER
    saved = ba.to_bytes()
    oldest = ba.sessions[-1]
    untouched = [s.encoded() for s in ba.sessions[:-1]]
    # A message on the oldest session promotes it and moves its ratchet only.
    ba.decrypt(ob, senders[0].encrypt(oa, b"on the first session"))
    assert ba.sessions[0] is oldest
    assert [s.encoded() for s in ba.sessions[1:]] == untouched
    assert ba.to_bytes() != saved
    assert ba.to_bytes() == _fresh_bytes(ba)
    # Read back, the state decrypts on every session.
    restored = PeerSessions.from_bytes(ba.peer, ba.to_bytes())
    for i, ab in enumerate(senders):
        assert restored.decrypt(ob, ab.encrypt(oa, b"%d" % i)) == b"%d" % i
    # A reply clears the X3DH header of its session: saved too.
    reply = ba.encrypt(ob, b"reply")
    assert reply.x3dh is None
    assert ba.to_bytes() == _fresh_bytes(ba)


def test_failed_decryption_saves_the_same_state() -> None:
    ab, ba, oa, ob = _talk()
    saved = ba.to_bytes()
    bad = ab.encrypt(oa, b"x")
    with pytest.raises(DecryptError):
        ba.decrypt(
            ob,
            SessionMessage(
                bad.sender,
                bad.x3dh,
                bad.ratchet_key,
                bad.previous_chain_length,
                bad.index,
                bad.ciphertext[:-1] + b"\x00",
            ),
        )
    assert ba.to_bytes() == saved == _fresh_bytes(ba)


# --- X25519 on libsodium: the package's keys and secrets ---------------------

_PACKAGE_DH = diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_x25519_gives_the_packages_keys_and_secrets(priv: bytes, other_priv: bytes) -> None:
    assert _DHRatchet._derive_pub(priv) == _PACKAGE_DH._derive_pub(priv)
    other_pub = _PACKAGE_DH._derive_pub(other_priv)
    assert _DHRatchet._perform_diffie_hellman(priv, other_pub) == (
        _PACKAGE_DH._perform_diffie_hellman(priv, other_pub)
    )
    # Either side's secret is the other's.
    assert _DHRatchet._perform_diffie_hellman(priv, other_pub) == (
        _DHRatchet._perform_diffie_hellman(other_priv, _DHRatchet._derive_pub(priv))
    )


@pytest.mark.parametrize(
    "low_order",
    [
        bytes(32),
        b"\x01" + bytes(31),
        bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    ],
)
def test_x25519_refuses_low_order_keys_as_the_package_does(low_order: bytes) -> None:
    priv = _DHRatchet._generate_priv()
    with pytest.raises(ValueError):
        _PACKAGE_DH._perform_diffie_hellman(priv, low_order)
    with pytest.raises(ValueError):
        _DHRatchet._perform_diffie_hellman(priv, low_order)


def test_generated_ratchet_keys_are_fresh_and_usable() -> None:
    keys = {_DHRatchet._generate_priv() for _ in range(50)}
    assert len(keys) == 50 and all(len(k) == 32 for k in keys)
    for k in list(keys)[:5]:
        assert _DHRatchet._derive_pub(k) == _PACKAGE_DH._derive_pub(k)


def test_conversation_with_the_package_as_shipped_on_the_other_side() -> None:
    """A ratchet on the package's own X25519, chain KDF and AEAD talks to ours
    both ways, through ratchet steps: nothing about the bytes changed."""
    stock = dict(
        _DR_CONFIG,
        diffie_hellman_ratchet_class=_PACKAGE_DH,
        message_chain_kdf=_PackageChainKDF,
        aead=_PackageAEAD,
    )
    secret, ad, bob_priv = os.urandom(32), os.urandom(64), os.urandom(32)
    alice, first = run_to_completion(
        _Ratchet.encrypt_initial_message(
            shared_secret=secret,
            recipient_ratchet_pub=_PACKAGE_DH._derive_pub(bob_priv),
            message=b"first",
            associated_data=ad,
            **_DR_CONFIG,
        )
    )
    bob, got = run_to_completion(
        _Ratchet.decrypt_initial_message(
            shared_secret=secret,
            own_ratchet_priv=bob_priv,
            message=first,
            associated_data=ad,
            **stock,
        )
    )
    assert got == b"first"
    for i in range(6):
        sender, receiver = (alice, bob) if i % 3 else (bob, alice)
        text = b"message %d" % i
        sent = run_to_completion(sender.encrypt_message(text, ad))
        assert run_to_completion(receiver.decrypt_message(sent, ad)) == text
