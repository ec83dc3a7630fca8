"""End-to-end sessions: the Double Ratchet on top of X3DH key agreement.

How this works: the cryptography is the ``x3dh`` and ``doubleratchet``
packages (the ones OMEMO clients use), configured like python-twomemo:
X25519, HKDF-SHA-256, AES-256-CBC + HMAC-SHA-256. This module only wires
them to p2pdm's identity and wire types and makes their state bytes.

* :class:`~p2pdm.core.prekeys.OwnPrekeys` (in :mod:`p2pdm.core.prekeys`,
  re-exported here) — this node's X3DH state: identity key, rotated signed
  prekey, one-time prekeys.
* :class:`PeerSessions` — everything this node holds for one peer: up to
  ``MAX_SESSIONS_PER_PEER`` ratchets, newest first. Both sides may start a
  session at the same moment; keeping a few and promoting whichever last
  decrypted makes them converge without losing a message.

Until a session has decrypted a message from the peer, every message sent on
it repeats the X3DH header, so the peer can open whichever arrives first.

The libraries' methods are coroutines that never suspend;
:func:`~p2pdm.core.prekeys.run_to_completion` drives them, so this module
needs no event loop. Randomness for keys
comes from the libraries (the OS CSPRNG); time is passed in.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Final

import cbor2
import doubleratchet
import nacl.bindings
import nacl.exceptions
import nacl.utils
import x3dh
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.padding import PKCS7
from doubleratchet.recommended import (
    HashFunction as DRHash,
)
from doubleratchet.recommended import (
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from p2pdm.core import cbor, ratchet_state
from p2pdm.core.identity import PeerId
from p2pdm.core.prekeys import (
    MAX_STATE_BYTES,
    OwnPrekeys,
    run_to_completion,
    strip_identity_secret,
    verify_bundle,
)
from p2pdm.core.wire import PrekeyBundle, SessionMessage, X3DHHeader
from p2pdm.errors import DecryptError, ReplayError, SessionError
from p2pdm.limits import MAX_SKIP_PER_MESSAGE, MAX_SKIPPED_MESSAGE_KEYS

__all__ = [
    "MAX_SESSIONS_PER_PEER",
    "OwnPrekeys",
    "PeerSessions",
    "strip_identity_secret",
    "verify_bundle",
]

#: Ratchets kept per peer (simultaneous starts, re-installs). Oldest dropped.
MAX_SESSIONS_PER_PEER: Final = 4
#: Session state: version 1 held each ratchet in the ``doubleratchet``
#: package's JSON (only read now, see :mod:`p2pdm.core.ratchet_state`);
#: version 2 holds it in compact form.
_LEGACY_STATE_VERSION: Final = 1
_STATE_VERSION: Final = 2
#: X25519 keys, private and public.
X25519_KEY_BYTES: Final = 32
#: SHA-256's output: the chain KDF's and the message tag's size.
_HASH_BYTES: Final = 32
#: The saved state's bytes up to its array of sessions: the map of two
#: entries, ``"v": 2`` and the key ``"sessions"`` (canonical order), and the
#: CBOR major type of the array, whose length (at most MAX_SESSIONS_PER_PEER,
#: under 24) is added to it.
_STATE_PREFIX: Final = cbor.encode({"v": _STATE_VERSION, "sessions": []})[:-1]
_CBOR_ARRAY: Final = 0x80
#: The AEAD's HKDF info, and its output: AES key, HMAC key, CBC IV (32 + 32 + 16).
_AEAD_INFO: Final = b"p2pdm/dr/message"
_AEAD_KEY_MATERIAL: Final = 80


#: SHA-256 for ``cryptography``'s HMAC and HKDF: one object for every call
#: (it holds no state).
_SHA256: Final = hashes.SHA256()


class _RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"p2pdm/dr/root"


class _ChainKDF(kdf_separate_hmacs.KDF):
    """The package's chain KDF (one HMAC-SHA-256 per byte of the chain constant),
    with one ``cryptography`` HMAC object keyed once and copied for each byte
    instead of a new object (and backend look-up) per HMAC: the same bytes
    (``tests/core/test_ratchet_state.py``) for two thirds of the machine
    instructions of two one-shot HMACs. Two HMACs a message on each side."""

    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @classmethod
    async def derive(cls, key: bytes, data: bytes, length: int) -> bytes:
        if length != len(data) * _HASH_BYTES:
            raise ValueError("the chain KDF derives one hash length per byte of its data")
        keyed = HMAC(key, _SHA256)
        out = []
        for i in range(len(data)):
            one = keyed.copy()
            one.update(data[i : i + 1])
            out.append(one.finalize())
        return b"".join(out)


#: AES's block, the unit of PKCS#7 padding (RFC 5652 §6.3).
_AES_BLOCK: Final = 16


def _aead_keys(key: bytes) -> tuple[bytes, bytes, bytes]:
    """The AEAD's HKDF-SHA-256 (salt: a hash length of zeros, as the package
    uses): AES key, HMAC key, IV. ``cryptography``'s HKDF, as the package's
    ``CryptoProviderImpl.hkdf_derive`` calls it, without its per-call hash
    object and backend look-up."""
    out = HKDF(_SHA256, _AEAD_KEY_MATERIAL, b"\x00" * _HASH_BYTES, _AEAD_INFO).derive(key)
    return out[:32], out[32:64], out[64:]


def _pkcs7_pad(data: bytes) -> bytes:
    """PKCS#7 padding to AES's block, by ``cryptography``'s padder."""
    padder = PKCS7(_AES_BLOCK * 8).padder()
    return padder.update(data) + padder.finalize()


def _pkcs7_unpad(data: bytes) -> bytes | None:
    """``data`` without its PKCS#7 padding, by ``cryptography``'s unpadder; None
    where it refuses (no padding, or one not made of its count). Only ever run
    on a plaintext whose tag was checked first, so no padding oracle can form."""
    unpadder = PKCS7(_AES_BLOCK * 8).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        return None


class _AEAD(aead_aes_hmac.AEAD):
    """The package's AEAD (HKDF-SHA-256 to an AES-256 key, an HMAC key and an
    IV; AES-256-CBC with PKCS#7; HMAC-SHA-256 over associated data and
    ciphertext, appended), made of the same library calls (``cryptography``'s
    HKDF, AES-CBC and HMAC) called directly, with ``cryptography``'s PKCS#7
    padding and the tag checked in constant time (``HMAC.verify``; the package
    compares with ``!=``). Same bytes as the package's
    (``tests/core/test_ratchet_state.py``)."""

    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return _AEAD_INFO

    @classmethod
    async def encrypt(cls, plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        encryption_key, authentication_key, iv = _aead_keys(key)
        aes = Cipher(algorithms.AES(encryption_key), modes.CBC(iv)).encryptor()
        ciphertext = aes.update(_pkcs7_pad(plaintext)) + aes.finalize()
        tag = HMAC(authentication_key, _SHA256)
        tag.update(associated_data + ciphertext)
        return ciphertext + tag.finalize()

    @classmethod
    async def decrypt(cls, ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        decryption_key, authentication_key, iv = _aead_keys(key)
        body, tag = ciphertext[:-_HASH_BYTES], ciphertext[-_HASH_BYTES:]
        check = HMAC(authentication_key, _SHA256)
        check.update(associated_data + body)
        try:
            check.verify(tag)  # in constant time
        except InvalidSignature:
            raise doubleratchet.AuthenticationFailedException(
                "Authentication tags do not match."
            ) from None
        try:
            aes = Cipher(algorithms.AES(decryption_key), modes.CBC(iv)).decryptor()
            padded = aes.update(body) + aes.finalize()
        except ValueError as exc:
            raise doubleratchet.DecryptionFailedException("Decryption failed.") from exc
        plaintext = _pkcs7_unpad(padded)
        if plaintext is None:
            raise doubleratchet.DecryptionFailedException("Plaintext padded incorrectly.")
        return plaintext


class _Ratchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return (
            associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(8, "big")
            + header.sending_chain_length.to_bytes(8, "big")
        )


#: Own ratchet keys whose public half is remembered (see _DHRatchet): a few
#: per conversation in use at once, so this covers a thousand or more.
DH_PUBLIC_CACHE_SIZE: Final = 4096


@functools.lru_cache(maxsize=DH_PUBLIC_CACHE_SIZE)
def _dh_public(priv: bytes) -> bytes:
    return _x25519_base(priv)


def _x25519_base(priv: bytes) -> bytes:
    try:
        return bytes(nacl.bindings.crypto_scalarmult_base(priv))
    except (nacl.exceptions.RuntimeError, nacl.exceptions.TypeError) as exc:
        raise ValueError(f"X25519 failed: {exc}") from None


class _DHRatchet(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    """The package's X25519 ratchet on libsodium (PyNaCl) instead of the
    ``cryptography`` objects it builds for each operation (about half the
    cost of each X25519; the same function, RFC 7748, so the same keys and
    secrets: ``tests/core/test_ratchet_state.py``), remembering public keys:
    the package derives the public half of its own key again for every
    message it encrypts, though that key changes only once per round trip."""

    @staticmethod
    def _generate_priv() -> bytes:
        # An X25519 private key is 32 random bytes (RFC 7748 §5: the scalar
        # multiplication clamps them); the package's way also derives the
        # public half, which it then throws away.
        return nacl.utils.random(X25519_KEY_BYTES)

    @staticmethod
    def _derive_pub(priv: bytes) -> bytes:
        return _dh_public(priv)

    @staticmethod
    def _perform_diffie_hellman(own_priv: bytes, other_pub: bytes) -> bytes:
        # libsodium refuses a shared secret of zeros (a low-order public key),
        # as the package's OpenSSL call does: a ValueError, a failed decryption.
        try:
            return bytes(nacl.bindings.crypto_scalarmult(own_priv, other_pub))
        except (nacl.exceptions.RuntimeError, nacl.exceptions.TypeError) as exc:
            raise ValueError(f"X25519 failed: {exc}") from None

    def __deepcopy__(self, memo: dict[int, Any]) -> _DHRatchet:
        # The package copies this ratchet before every decryption.
        return ratchet_state.clone(self)  # type: ignore[no-any-return]


_DR_CONFIG: Final[dict[str, Any]] = {
    "diffie_hellman_ratchet_class": _DHRatchet,
    "root_chain_kdf": _RootKDF,
    "message_chain_kdf": _ChainKDF,
    "message_chain_constant": b"\x02\x01",
    "dos_protection_threshold": MAX_SKIP_PER_MESSAGE,
    "max_num_skipped_message_keys": MAX_SKIPPED_MESSAGE_KEYS,
    "aead": _AEAD,
}


def _state_fields(data: bytes, what: str) -> tuple[cbor.Fields, int]:
    f = cbor.decode_map(data, MAX_STATE_BYTES, what)
    version = f.integer("v", 0, 1 << 32)
    if version not in (_LEGACY_STATE_VERSION, _STATE_VERSION):
        raise SessionError(f"{what}: unknown state version")
    return f, version


@dataclass(slots=True)
class _Ratchet1:
    """One Double Ratchet session with a peer."""

    ratchet: _Ratchet
    associated_data: bytes
    #: Our X3DH header, repeated until the peer has answered on this session.
    pending_header: X3DHHeader | None
    #: The ephemeral key that started it (identifies the session).
    session_id: bytes
    #: :meth:`encoded` as last made; None once the session may have changed
    #: (:meth:`touch`), so a peer's sessions not used for a message are not
    #: encoded again when their state is saved.
    _encoded: bytes | None = field(default=None, repr=False, compare=False)

    def touch(self) -> None:
        """Mark the state as changed (before the ratchet is used)."""
        self._encoded = None

    def to_map(self) -> dict[str, Any]:
        # Keys in canonical order (RFC 8949 §4.2.1), so the plain encoder gives
        # canonical bytes (tests/core/test_ratchet_state.py checks it).
        h = self.pending_header
        return {
            "r": ratchet_state.dump(self.ratchet),
            "ad": self.associated_data,
            "hdr": None
            if h is None
            else {"ek": h.ephemeral_key, "opk": h.one_time_prekey, "spk": h.signed_prekey},
            "sid": self.session_id,
        }

    def encoded(self) -> bytes:
        """:meth:`to_map` as canonical CBOR, remembered until :meth:`touch`."""
        data = self._encoded
        if data is None:
            data = self._encoded = cbor2.dumps(self.to_map())
        return data

    @classmethod
    def from_fields(cls, f: cbor.Fields, version: int) -> _Ratchet1:
        try:
            if version == _LEGACY_STATE_VERSION:
                ratchet = _Ratchet.from_json(
                    json.loads(f.blob("dr", max_size=MAX_STATE_BYTES)), **_DR_CONFIG
                )
            else:
                ratchet = ratchet_state.load(_Ratchet, f.array("r", 7), _DR_CONFIG)
        except (ValueError, TypeError, KeyError) as exc:
            raise SessionError(f"session state is damaged: {exc}") from None
        h = f.opt_submap("hdr")
        header = None
        if h is not None:
            header = X3DHHeader(h.blob("ek", 32), h.blob("spk", 32), h.opt_blob("opk", 32))
            h.done()
        r = cls(ratchet, f.blob("ad", max_size=256), header, f.blob("sid", size=32))
        f.done()
        return r


@dataclass(slots=True)
class PeerSessions:
    """The sessions this node holds with one peer; persist :meth:`to_bytes` after each use."""

    peer: PeerId
    sessions: list[_Ratchet1] = field(default_factory=list)

    @classmethod
    def from_bytes(cls, peer: PeerId, data: bytes | None) -> PeerSessions:
        if data is None:
            return cls(peer)
        f, version = _state_fields(data, "sessions")
        items = f.array("sessions", MAX_SESSIONS_PER_PEER)
        f.done()
        sessions = []
        for item in items:
            if not isinstance(item, dict):
                raise SessionError("session state is damaged")
            sessions.append(_Ratchet1.from_fields(cbor.Fields(item, "session"), version))
        return cls(peer, sessions)

    def to_bytes(self) -> bytes:
        """The state to persist: ``{"v": 2, "sessions": [...]}`` in canonical
        CBOR (version 2; :meth:`from_bytes` reads versions 1 and 2). Only the
        sessions used since the last call are encoded again; the map around
        them is written here, the same bytes as ``cbor.encode`` of the whole."""
        sessions = self.sessions
        return (
            _STATE_PREFIX
            + bytes([_CBOR_ARRAY + len(sessions)])
            + b"".join([s.encoded() for s in sessions])
        )

    @property
    def established(self) -> bool:
        return bool(self.sessions)

    def _promote(self, session: _Ratchet1) -> None:
        self.sessions.remove(session)
        self.sessions.insert(0, session)

    def _add(self, session: _Ratchet1) -> None:
        self.sessions.insert(0, session)
        del self.sessions[MAX_SESSIONS_PER_PEER:]

    def encrypt(
        self, own: OwnPrekeys, plaintext: bytes, bundle: PrekeyBundle | None = None
    ) -> SessionMessage:
        """Encrypt for the peer, starting a session from ``bundle`` if there is none.

        Raises SessionError if there is no session and no bundle, SignatureError
        for a bundle with a bad signature.
        """
        if not self.sessions:
            if bundle is None:
                raise SessionError(f"no session with {self.peer.short()} and no prekey bundle")
            return self._start(own, bundle, plaintext)
        session = self.sessions[0]
        session.touch()
        encrypted = run_to_completion(
            session.ratchet.encrypt_message(plaintext, session.associated_data)
        )
        return SessionMessage(
            own.identity.peer_id,
            session.pending_header,
            encrypted.header.ratchet_pub,
            encrypted.header.previous_sending_chain_length,
            encrypted.header.sending_chain_length,
            encrypted.ciphertext,
        )

    def _start(self, own: OwnPrekeys, bundle: PrekeyBundle, plaintext: bytes) -> SessionMessage:
        if bundle.peer != self.peer:
            raise SessionError("prekey bundle is for another peer")
        verify_bundle(bundle)
        try:
            secret, ad, h = run_to_completion(
                own._state.get_shared_secret_active(
                    x3dh.Bundle(
                        identity_key=bundle.peer.public_key,
                        signed_pre_key=bundle.signed_prekey,
                        signed_pre_key_sig=bundle.signed_prekey_sig,
                        pre_keys=frozenset(bundle.one_time_prekeys),
                    ),
                    require_pre_key=False,
                )
            )
        except x3dh.KeyAgreementException as exc:
            raise SessionError(f"cannot start a session with {self.peer.short()}: {exc}") from None
        header = X3DHHeader(h.ephemeral_key, h.signed_pre_key, h.pre_key)
        ratchet, encrypted = run_to_completion(
            _Ratchet.encrypt_initial_message(
                shared_secret=secret,
                recipient_ratchet_pub=bundle.signed_prekey,
                message=plaintext,
                associated_data=ad,
                **_DR_CONFIG,
            )
        )
        self._add(_Ratchet1(ratchet, ad, header, h.ephemeral_key))
        return SessionMessage(
            own.identity.peer_id,
            header,
            encrypted.header.ratchet_pub,
            encrypted.header.previous_sending_chain_length,
            encrypted.header.sending_chain_length,
            encrypted.ciphertext,
        )

    def decrypt(self, own: OwnPrekeys, message: SessionMessage) -> bytes:
        """Decrypt a message from the peer; on failure nothing changes.

        Raises DecryptError (cannot authenticate), ReplayError (key already
        used), PrekeyError (names a prekey we no longer have).
        """
        if message.sender != self.peer:
            raise SessionError("message is from another peer")
        encrypted = doubleratchet.EncryptedMessage(
            header=doubleratchet.Header(
                ratchet_pub=message.ratchet_key,
                previous_sending_chain_length=message.previous_chain_length,
                sending_chain_length=message.index,
            ),
            ciphertext=message.ciphertext,
        )
        header = message.x3dh
        known = None
        if header is not None:
            known = next((s for s in self.sessions if s.session_id == header.ephemeral_key), None)
        if header is not None and known is None:
            return self._accept(own, message, header, encrypted)
        candidates = [known] if known is not None else list(self.sessions)
        duplicate = False
        for session in candidates:
            session.touch()
            try:
                plaintext = run_to_completion(
                    session.ratchet.decrypt_message(encrypted, session.associated_data)
                )
            except doubleratchet.DuplicateMessageException:
                duplicate = True
                continue
            except (
                doubleratchet.AuthenticationFailedException,
                doubleratchet.DecryptionFailedException,
                doubleratchet.DoSProtectionException,
                ValueError,
            ):
                continue
            session.pending_header = None
            self._promote(session)
            return plaintext
        if duplicate:
            raise ReplayError(f"message from {self.peer.short()} was already decrypted")
        raise DecryptError(f"cannot decrypt message from {self.peer.short()}")

    def _accept(
        self,
        own: OwnPrekeys,
        message: SessionMessage,
        header: X3DHHeader,
        encrypted: doubleratchet.EncryptedMessage,
    ) -> bytes:
        secret, ad, spk_priv = own._agree(message.sender, header)
        try:
            ratchet, plaintext = run_to_completion(
                _Ratchet.decrypt_initial_message(
                    shared_secret=secret,
                    own_ratchet_priv=spk_priv,
                    message=encrypted,
                    associated_data=ad,
                    **_DR_CONFIG,
                )
            )
        except (
            doubleratchet.AuthenticationFailedException,
            doubleratchet.DecryptionFailedException,
            doubleratchet.DoSProtectionException,
            ValueError,
        ):
            raise DecryptError(f"cannot decrypt first message from {self.peer.short()}") from None
        own._consume(header.one_time_prekey)
        self._add(_Ratchet1(ratchet, ad, None, header.ephemeral_key))
        return plaintext
