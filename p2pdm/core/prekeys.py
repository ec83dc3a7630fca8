"""This node's X3DH prekeys: the keys others use to open a session with it.

How this works: :class:`OwnPrekeys` is this node's state in the ``x3dh``
package (configured like python-twomemo: X25519, HKDF-SHA-256): the identity
key (the same Ed25519 seed as the node key), a signed prekey rotated on a
schedule (the previous one still accepted for one more period) and one-time
prekeys that are deleted once used. Its saved bytes never hold the identity
seed: only the identity file does (encrypted when there is a passphrase);
the seed is taken out before saving and put back from the loaded identity on
restore. :func:`verify_bundle` checks another node's published bundle.

The library's methods are coroutines that never suspend;
:func:`run_to_completion` drives them, so this module needs no event loop.
Randomness for keys comes from the library (the OS CSPRNG); time is passed in.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Mapping
from typing import Any, Final, TypeVar

import nacl.exceptions
import nacl.signing
import x3dh

from p2pdm.core import cbor
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.wire import PrekeyBundle, X3DHHeader
from p2pdm.errors import PrekeyError, SessionError, SignatureError
from p2pdm.limits import (
    ONE_TIME_PREKEYS_PER_BUNDLE,
    ONE_TIME_PREKEYS_TARGET,
    SIGNED_PREKEY_ROTATION_SECONDS,
)

__all__ = ["OwnPrekeys", "strip_identity_secret", "verify_bundle"]

#: Own prekeys: version 1 held the identity seed inside the x3dh state (only
#: read, to migrate it); version 2 holds the identity's public key instead.
_LEGACY_PREKEYS_VERSION: Final = 1
_PREKEYS_VERSION: Final = 2
#: Where the x3dh library keeps the identity key pair in its JSON state.
_IDENTITY_FIELD: Final = "identity_key"
_X3DH_INFO: Final = b"p2pdm/x3dh/v1"
#: Largest saved key state we parse (prekeys, or one peer's sessions).
MAX_STATE_BYTES: Final = 4 << 20

T = TypeVar("T")


def run_to_completion(coro: Coroutine[Any, Any, T]) -> T:
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


def verify_bundle(bundle: PrekeyBundle) -> None:
    """Check the identity key's signature on the signed prekey; raises SignatureError."""
    signed = _encode_key(x3dh.IdentityKeyFormat.CURVE_25519, bundle.signed_prekey)
    try:
        nacl.signing.VerifyKey(bundle.peer.public_key).verify(signed, bundle.signed_prekey_sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        raise SignatureError(
            f"prekey bundle of {bundle.peer.short()} has a bad signature"
        ) from None


def _identity_json(seed: bytes) -> dict[str, Any]:
    """The x3dh library's JSON form of an identity key pair given by its seed."""
    pair = x3dh.identity_key_pair.IdentityKeyPairSeed(seed)
    return json.loads(pair.model.model_dump_json())  # type: ignore[no-any-return]


def _decode_prekeys(data: bytes) -> tuple[int, dict[str, Any], int, bytes | None]:
    """``(version, x3dh JSON, rotated_at, identity public key or None)``; raises SessionError."""
    f = cbor.decode_map(data, MAX_STATE_BYTES, "own prekeys")
    version = f.integer("v", 0, 1 << 32)
    if version not in (_LEGACY_PREKEYS_VERSION, _PREKEYS_VERSION):
        raise SessionError("own prekeys: unknown state version")
    try:
        x3dh_json = json.loads(f.blob("x3dh", max_size=MAX_STATE_BYTES))
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
            secret, ad, spk = run_to_completion(
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
