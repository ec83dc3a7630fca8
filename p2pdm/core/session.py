"""End-to-end sessions: X3DH key agreement, then the Double Ratchet.

How this works: the cryptography is the ``x3dh`` and ``doubleratchet``
packages (the ones OMEMO clients use), configured like python-twomemo:
X25519, HKDF-SHA-256, AES-256-CBC + HMAC-SHA-256. This module only wires
them to p2pdm's identity and wire types and makes their state bytes.

* :class:`OwnPrekeys` — this node's X3DH state: the identity key (the same
  Ed25519 seed as the node key), a signed prekey rotated on a schedule (the
  previous one still accepted for one more period) and one-time prekeys that
  are deleted once used. Its saved bytes never hold the identity seed: only
  the identity file does (encrypted when there is a passphrase); the seed is
  taken out before saving and put back from the loaded identity on restore.
* :class:`PeerSessions` — everything this node holds for one peer: up to
  ``MAX_SESSIONS_PER_PEER`` ratchets, newest first. Both sides may start a
  session at the same moment; keeping a few and promoting whichever last
  decrypted makes them converge without losing a message.

Until a session has decrypted a message from the peer, every message sent on
it repeats the X3DH header, so the peer can open whichever arrives first.

The libraries' methods are coroutines that never suspend; :func:`_run` drives
them to completion so this module needs no event loop. Randomness for keys
comes from the libraries (the OS CSPRNG); time is passed in.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import doubleratchet
import nacl.exceptions
import nacl.signing
import x3dh
from doubleratchet.recommended import (
    HashFunction as DRHash,
)
from doubleratchet.recommended import (
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from p2pdm.core import cbor
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.wire import PrekeyBundle, SessionMessage, X3DHHeader
from p2pdm.errors import (
    DecryptError,
    PrekeyError,
    ReplayError,
    SessionError,
    SignatureError,
)
from p2pdm.limits import (
    MAX_SKIP_PER_MESSAGE,
    MAX_SKIPPED_MESSAGE_KEYS,
    ONE_TIME_PREKEYS_PER_BUNDLE,
    ONE_TIME_PREKEYS_TARGET,
    SIGNED_PREKEY_ROTATION_SECONDS,
)

__all__ = [
    "MAX_SESSIONS_PER_PEER",
    "OwnPrekeys",
    "PeerSessions",
    "strip_identity_secret",
    "verify_bundle",
]

#: Ratchets kept per peer (simultaneous starts, re-installs). Oldest dropped.
MAX_SESSIONS_PER_PEER: Final = 4
_STATE_VERSION: Final = 1
#: Own prekeys: version 1 held the identity seed inside the x3dh state (only
#: read, to migrate it); version 2 holds the identity's public key instead.
_LEGACY_PREKEYS_VERSION: Final = 1
_PREKEYS_VERSION: Final = 2
#: Where the x3dh library keeps the identity key pair in its JSON state.
_IDENTITY_FIELD: Final = "identity_key"
_X3DH_INFO: Final = b"p2pdm/x3dh/v1"
_MAX_STATE_BYTES: Final = 4 << 20

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never awaits anything real, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("session library coroutine suspended unexpectedly")


def _encode_key(fmt: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
    return (b"\x01" if fmt is x3dh.IdentityKeyFormat.ED_25519 else b"\x02") + pub


class _X3DHState(x3dh.BaseState):
    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return _encode_key(key_format, pub)


class _RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"p2pdm/dr/root"


class _ChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256


class _AEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> DRHash:
        return DRHash.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"p2pdm/dr/message"


class _Ratchet(doubleratchet.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: doubleratchet.Header) -> bytes:
        return (
            associated_data
            + header.ratchet_pub
            + header.previous_sending_chain_length.to_bytes(8, "big")
            + header.sending_chain_length.to_bytes(8, "big")
        )


_DR_CONFIG: Final[dict[str, Any]] = {
    "diffie_hellman_ratchet_class": diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet,
    "root_chain_kdf": _RootKDF,
    "message_chain_kdf": _ChainKDF,
    "message_chain_constant": b"\x02\x01",
    "dos_protection_threshold": MAX_SKIP_PER_MESSAGE,
    "max_num_skipped_message_keys": MAX_SKIPPED_MESSAGE_KEYS,
    "aead": _AEAD,
}


def verify_bundle(bundle: PrekeyBundle) -> None:
    """Check the identity key's signature on the signed prekey; raises SignatureError."""
    signed = _encode_key(x3dh.IdentityKeyFormat.CURVE_25519, bundle.signed_prekey)
    try:
        nacl.signing.VerifyKey(bundle.peer.public_key).verify(signed, bundle.signed_prekey_sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        raise SignatureError(
            f"prekey bundle of {bundle.peer.short()} has a bad signature"
        ) from None


def _state_fields(data: bytes, what: str) -> cbor.Fields:
    f = cbor.decode_map(data, _MAX_STATE_BYTES, what)
    if f.integer("v", 0, 1 << 32) != _STATE_VERSION:
        raise SessionError(f"{what}: unknown state version")
    return f


def _identity_json(seed: bytes) -> dict[str, Any]:
    """The x3dh library's JSON form of an identity key pair given by its seed."""
    pair = x3dh.identity_key_pair.IdentityKeyPairSeed(seed)
    return json.loads(pair.model.model_dump_json())  # type: ignore[no-any-return]


def _decode_prekeys(data: bytes) -> tuple[int, dict[str, Any], int, bytes | None]:
    """``(version, x3dh JSON, rotated_at, identity public key or None)``; raises SessionError."""
    f = cbor.decode_map(data, _MAX_STATE_BYTES, "own prekeys")
    version = f.integer("v", 0, 1 << 32)
    if version not in (_LEGACY_PREKEYS_VERSION, _PREKEYS_VERSION):
        raise SessionError("own prekeys: unknown state version")
    try:
        x3dh_json = json.loads(f.blob("x3dh", max_size=_MAX_STATE_BYTES))
    except ValueError as exc:
        raise SessionError(f"own prekeys are damaged: {exc}") from None
    if not isinstance(x3dh_json, dict):
        raise SessionError("own prekeys are damaged: the x3dh state is not a map")
    rotated = f.integer("rotated_at", 0, 1 << 63)
    public_key = None
    if version == _PREKEYS_VERSION:
        public_key = f.blob("ik", size=32)
        if _IDENTITY_FIELD in x3dh_json:
            raise SessionError("own prekeys are damaged: they hold an identity key")
    f.done()
    return version, x3dh_json, rotated, public_key


def _encode_prekeys(x3dh_json: Mapping[str, Any], rotated_at_s: int, public_key: bytes) -> bytes:
    without_secret = {k: v for k, v in x3dh_json.items() if k != _IDENTITY_FIELD}
    return cbor.encode(
        {
            "v": _PREKEYS_VERSION,
            "x3dh": json.dumps(without_secret).encode(),
            "rotated_at": rotated_at_s,
            "ik": public_key,
        }
    )


def strip_identity_secret(data: bytes) -> bytes:
    """Saved own prekeys rewritten without the identity seed (version 2).

    Version 2 bytes come back unchanged. For the store's migration of
    states written before the seed was kept out. Raises SessionError if
    ``data`` is not own prekeys.
    """
    version, x3dh_json, rotated, _ = _decode_prekeys(data)
    if version == _PREKEYS_VERSION:
        return data
    try:
        pair = x3dh.identity_key_pair.IdentityKeyPair.from_json(x3dh_json[_IDENTITY_FIELD])
    except (ValueError, TypeError, KeyError) as exc:
        raise SessionError(f"own prekeys are damaged: {exc}") from None
    if not isinstance(pair, x3dh.identity_key_pair.IdentityKeyPairSeed):
        raise SessionError("own prekeys are damaged: the identity key is not a seed")
    public_key = bytes(nacl.signing.SigningKey(pair.seed).verify_key)
    return _encode_prekeys(x3dh_json, rotated, public_key)


class OwnPrekeys:
    """This node's X3DH keys. Persist :meth:`to_bytes` after every change."""

    def __init__(self, identity: Identity, state: _X3DHState, rotated_at_s: int) -> None:
        self.identity = identity
        self._state = state
        self.rotated_at_s = rotated_at_s
        #: Bumped on every change, so callers persist only when it moved.
        self.version = 0

    @classmethod
    def create(cls, identity: Identity, now_s: int) -> OwnPrekeys:
        state = _X3DHState.create(
            x3dh.IdentityKeyFormat.ED_25519,
            x3dh.HashFunction.SHA_256,
            _X3DH_INFO,
            x3dh.identity_key_pair.IdentityKeyPairSeed(identity.seed),
        )
        state.generate_pre_keys(ONE_TIME_PREKEYS_TARGET)
        return cls(identity, state, now_s)

    @classmethod
    def from_bytes(cls, identity: Identity, data: bytes) -> OwnPrekeys:
        """Restore; raises SessionError if the state is damaged or not this identity's."""
        version, x3dh_json, rotated, public_key = _decode_prekeys(data)
        if version == _PREKEYS_VERSION:
            if public_key != identity.public_key:
                raise SessionError("own prekeys belong to another identity")
            x3dh_json[_IDENTITY_FIELD] = _identity_json(identity.seed)
        try:
            state, _ = _X3DHState.from_json(
                x3dh_json,
                x3dh.IdentityKeyFormat.ED_25519,
                x3dh.HashFunction.SHA_256,
                _X3DH_INFO,
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise SessionError(f"own prekeys are damaged: {exc}") from None
        own = cls(identity, state, rotated)
        if state.bundle.identity_key != identity.public_key:
            raise SessionError("own prekeys belong to another identity")
        return own

    def to_bytes(self) -> bytes:
        """The state to persist: everything but the identity seed."""
        return _encode_prekeys(self._state.json, self.rotated_at_s, self.identity.public_key)

    def bundle(self, one_time: int = ONE_TIME_PREKEYS_PER_BUNDLE) -> PrekeyBundle:
        b = self._state.bundle
        return PrekeyBundle(
            peer=self.identity.peer_id,
            signed_prekey=b.signed_pre_key,
            signed_prekey_sig=b.signed_pre_key_sig,
            one_time_prekeys=tuple(sorted(b.pre_keys))[:one_time],
            created_at_s=self.rotated_at_s,
        )

    def one_time_count(self) -> int:
        return self._state.get_num_visible_pre_keys()

    def maybe_rotate(self, now_s: int) -> bool:
        """Replace the signed prekey if it is older than the rotation period.

        The previous one keeps opening first messages until the next rotation.
        Returns True if anything changed (persist it and republish the bundle).
        """
        if now_s - self.rotated_at_s < SIGNED_PREKEY_ROTATION_SECONDS:
            return False
        self._state.rotate_signed_pre_key()
        self.rotated_at_s = now_s
        self.version += 1
        return True

    def _refill(self) -> None:
        missing = ONE_TIME_PREKEYS_TARGET - self._state.get_num_visible_pre_keys()
        if missing > 0:
            self._state.generate_pre_keys(missing)

    def _agree(self, sender: PeerId, header: X3DHHeader) -> tuple[bytes, bytes, bytes]:
        """Passive X3DH; returns (shared secret, associated data, signed prekey private key).

        Changes nothing: call :meth:`_consume` once the first message decrypted.
        """
        try:
            secret, ad, spk = _run(
                self._state.get_shared_secret_passive(
                    x3dh.Header(
                        identity_key=sender.public_key,
                        ephemeral_key=header.ephemeral_key,
                        signed_pre_key=header.signed_prekey,
                        pre_key=header.one_time_prekey,
                    ),
                    require_pre_key=False,
                )
            )
        except x3dh.KeyAgreementException as exc:
            raise PrekeyError(f"cannot open session from {sender.short()}: {exc}") from None
        return secret, ad, spk.priv

    def _consume(self, one_time_prekey: bytes | None) -> None:
        """Delete a used one-time prekey and top the stock up again."""
        if one_time_prekey is not None:
            self._state.delete_pre_key(one_time_prekey)
            self._refill()
            self.version += 1


@dataclass(slots=True)
class _Ratchet1:
    """One Double Ratchet session with a peer."""

    ratchet: _Ratchet
    associated_data: bytes
    #: Our X3DH header, repeated until the peer has answered on this session.
    pending_header: X3DHHeader | None
    #: The ephemeral key that started it (identifies the session).
    session_id: bytes

    def to_map(self) -> dict[str, Any]:
        h = self.pending_header
        return {
            "dr": json.dumps(self.ratchet.json).encode(),
            "ad": self.associated_data,
            "sid": self.session_id,
            "hdr": None
            if h is None
            else {"ek": h.ephemeral_key, "spk": h.signed_prekey, "opk": h.one_time_prekey},
        }

    @classmethod
    def from_fields(cls, f: cbor.Fields) -> _Ratchet1:
        try:
            ratchet = _Ratchet.from_json(
                json.loads(f.blob("dr", max_size=_MAX_STATE_BYTES)), **_DR_CONFIG
            )
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
        f = _state_fields(data, "sessions")
        items = f.array("sessions", MAX_SESSIONS_PER_PEER)
        f.done()
        sessions = []
        for item in items:
            if not isinstance(item, dict):
                raise SessionError("session state is damaged")
            sessions.append(_Ratchet1.from_fields(cbor.Fields(item, "session")))
        return cls(peer, sessions)

    def to_bytes(self) -> bytes:
        return cbor.encode({"v": _STATE_VERSION, "sessions": [s.to_map() for s in self.sessions]})

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
        encrypted = _run(session.ratchet.encrypt_message(plaintext, session.associated_data))
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
            secret, ad, h = _run(
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
        ratchet, encrypted = _run(
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
            try:
                plaintext = _run(
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
            ratchet, plaintext = _run(
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
