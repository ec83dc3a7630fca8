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
from typing import TYPE_CHECKING, Any, Final, TypeVar

import nacl.exceptions
import nacl.signing

from p2pdm.core import cbor
from p2pdm.core.identity import SIGNATURE_BYTES, Identity, PeerId
from p2pdm.core.wire import PrekeyBundle, X3DHHeader
from p2pdm.errors import PrekeyError, SessionError, SignatureError
from p2pdm.limits import (
    ONE_TIME_PREKEYS_PER_BUNDLE,
    ONE_TIME_PREKEYS_TARGET,
    SIGNED_PREKEY_ROTATION_SECONDS,
)

if TYPE_CHECKING:
    from p2pdm.core.prekey_state import X3DHState

__all__ = ["OwnPrekeys", "strip_identity_secret", "verify_bundle"]

#: Own prekeys: version 1 held the identity seed inside the x3dh state (only
#: read, to migrate it); version 2 holds the identity's public key instead;
#: version 3 also the current signed prekey and its signature, so that the
#: published bundle needs no x3dh state (loaded on first use, see
#: :mod:`p2pdm.core.prekey_state`). Versions 1 and 2 are read and saved again as 3.
_LEGACY_PREKEYS_VERSION: Final = 1
_PUBLIC_KEY_PREKEYS_VERSION: Final = 2
_PREKEYS_VERSION: Final = 3
#: Where the x3dh library keeps the identity key pair in its JSON state.
IDENTITY_FIELD: Final = "identity_key"
X3DH_INFO: Final = b"p2pdm/x3dh/v1"
#: How a signed prekey's signature encodes the key it signs (as python-twomemo).
ED_25519_KEY: Final = b"\x01"
CURVE_25519_KEY: Final = b"\x02"
#: An X25519 public key.
PREKEY_BYTES: Final = 32
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


def _signed_prekey_ok(identity_key: bytes, signed_prekey: bytes, signature: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(identity_key).verify(CURVE_25519_KEY + signed_prekey, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return False
    return True


def verify_bundle(bundle: PrekeyBundle) -> None:
    """Check the identity key's signature on the signed prekey; raises SignatureError."""
    if not _signed_prekey_ok(
        bundle.peer.public_key, bundle.signed_prekey, bundle.signed_prekey_sig
    ):
        raise SignatureError(f"prekey bundle of {bundle.peer.short()} has a bad signature")


class _Saved:
    """Decoded saved prekeys (any version), before the x3dh state is built."""

    def __init__(self, data: bytes) -> None:
        f = cbor.decode_map(data, MAX_STATE_BYTES, "own prekeys")
        self.version = f.integer("v", 0, 1 << 32)
        if self.version not in (
            _LEGACY_PREKEYS_VERSION,
            _PUBLIC_KEY_PREKEYS_VERSION,
            _PREKEYS_VERSION,
        ):
            raise SessionError("own prekeys: unknown state version")
        try:
            x3dh_json = json.loads(f.blob("x3dh", max_size=MAX_STATE_BYTES))
        except ValueError as exc:
            raise SessionError(f"own prekeys are damaged: {exc}") from None
        if not isinstance(x3dh_json, dict):
            raise SessionError("own prekeys are damaged: the x3dh state is not a map")
        self.x3dh_json: dict[str, Any] = x3dh_json
        self.rotated_at_s = f.integer("rotated_at", 0, 1 << 63)
        self.public_key: bytes | None = None
        self.signed: tuple[bytes, bytes] | None = None
        if self.version != _LEGACY_PREKEYS_VERSION:
            self.public_key = f.blob("ik", size=32)
            if IDENTITY_FIELD in x3dh_json:
                raise SessionError("own prekeys are damaged: they hold an identity key")
        if self.version == _PREKEYS_VERSION:
            self.signed = (
                f.blob("spk", size=PREKEY_BYTES),
                f.blob("spk_sig", size=SIGNATURE_BYTES),
            )
        f.done()


def _encode_prekeys(
    x3dh_json: Mapping[str, Any],
    rotated_at_s: int,
    public_key: bytes,
    signed: tuple[bytes, bytes],
) -> bytes:
    without_secret = {k: v for k, v in x3dh_json.items() if k != IDENTITY_FIELD}
    return cbor.encode(
        {
            "v": _PREKEYS_VERSION,
            "x3dh": json.dumps(without_secret).encode(),
            "rotated_at": rotated_at_s,
            "ik": public_key,
            "spk": signed[0],
            "spk_sig": signed[1],
        }
    )


def strip_identity_secret(data: bytes) -> bytes:
    """Saved own prekeys rewritten without the identity seed (version 2).

    Later versions come back unchanged. For the store's migration of
    states written before the seed was kept out. Raises SessionError if
    ``data`` is not own prekeys.
    """
    saved = _Saved(data)
    if saved.version != _LEGACY_PREKEYS_VERSION:
        return data
    from p2pdm.core import prekey_state  # x3dh: see that module

    public_key = prekey_state.legacy_public_key(saved.x3dh_json)
    without_secret = {k: v for k, v in saved.x3dh_json.items() if k != IDENTITY_FIELD}
    return cbor.encode(
        {
            "v": _PUBLIC_KEY_PREKEYS_VERSION,
            "x3dh": json.dumps(without_secret).encode(),
            "rotated_at": saved.rotated_at_s,
            "ik": public_key,
        }
    )


class OwnPrekeys:
    """This node's X3DH keys. Persist :meth:`to_bytes` after every change.

    Restored from version 3 bytes, the x3dh state is built on its first use
    (an incoming or outgoing first message, a rotation that is due, an
    invite's one-time prekeys), not on start: the bundle a node publishes
    needs only the signed prekey saved beside it.
    """

    def __init__(
        self,
        identity: Identity,
        rotated_at_s: int,
        *,
        state: X3DHState | None = None,
        saved: tuple[dict[str, Any], tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.identity = identity
        self.rotated_at_s = rotated_at_s
        #: The x3dh state, once built.
        self._loaded = state
        #: Until then: its JSON form (without the identity) and the current
        #: signed prekey with its signature.
        self._saved = saved
        #: Bumped on every change, so callers persist only when it moved.
        self.version = 0
        #: The x3dh state's public bundle and the :attr:`version` it is of:
        #: x3dh derives every public key (~100 one-time prekeys) anew at each
        #: ask, and every invite and record publication asks.
        self._public: tuple[int, Any] | None = None
        #: Restored from an older version: save it again (as version 3).
        self.outdated = False

    @property
    def _state(self) -> X3DHState:
        """The x3dh state, built from the saved JSON on first use."""
        if self._loaded is None:
            assert self._saved is not None
            from p2pdm.core import prekey_state  # x3dh: see that module

            x3dh_json, signed = self._saved
            state = prekey_state.restore(x3dh_json, self.identity.seed)
            b = state.bundle
            if b.identity_key != self.identity.public_key:
                raise SessionError("own prekeys belong to another identity")
            if (b.signed_pre_key, b.signed_pre_key_sig) != signed:
                raise SessionError("own prekeys are damaged: the signed prekey is not the state's")
            self._loaded, self._saved = state, None
        return self._loaded

    def check(self) -> None:
        """Build the x3dh state now; raises SessionError if it is damaged."""
        _ = self._state

    def _signed(self) -> tuple[bytes, bytes]:
        """The current signed prekey and its signature."""
        if self._loaded is None:
            assert self._saved is not None
            return self._saved[1]
        b = self._public_bundle()
        return b.signed_pre_key, b.signed_pre_key_sig

    def _public_bundle(self) -> Any:
        """The x3dh state's bundle (public keys), derived once per :attr:`version`."""
        state = self._state
        if self._public is None or self._public[0] != self.version:
            self._public = (self.version, state.bundle)
        return self._public[1]

    @classmethod
    def create(cls, identity: Identity, now_s: int) -> OwnPrekeys:
        from p2pdm.core import prekey_state  # x3dh: see that module

        return cls(
            identity, now_s, state=prekey_state.create(identity.seed, ONE_TIME_PREKEYS_TARGET)
        )

    @classmethod
    def from_bytes(cls, identity: Identity, data: bytes) -> OwnPrekeys:
        """Restore; raises SessionError if the state is damaged or not this identity's."""
        saved = _Saved(data)
        if saved.version != _LEGACY_PREKEYS_VERSION and saved.public_key != identity.public_key:
            raise SessionError("own prekeys belong to another identity")
        if saved.signed is not None:
            if not _signed_prekey_ok(identity.public_key, *saved.signed):
                raise SessionError("own prekeys are damaged: the signed prekey's signature is bad")
            return cls(identity, saved.rotated_at_s, saved=(saved.x3dh_json, saved.signed))
        from p2pdm.core import prekey_state  # x3dh: see that module

        legacy = saved.version == _LEGACY_PREKEYS_VERSION
        state = prekey_state.restore(saved.x3dh_json, None if legacy else identity.seed)
        if state.bundle.identity_key != identity.public_key:
            raise SessionError("own prekeys belong to another identity")
        own = cls(identity, saved.rotated_at_s, state=state)
        own.outdated = True
        return own

    def to_bytes(self) -> bytes:
        """The state to persist: everything but the identity seed."""
        if self._loaded is not None:
            x3dh_json = self._loaded.json
        else:
            assert self._saved is not None
            x3dh_json = self._saved[0]
        return _encode_prekeys(
            x3dh_json, self.rotated_at_s, self.identity.public_key, self._signed()
        )

    def bundle(self, one_time: int = ONE_TIME_PREKEYS_PER_BUNDLE) -> PrekeyBundle:
        signed_prekey, signature = self._signed()
        return PrekeyBundle(
            peer=self.identity.peer_id,
            signed_prekey=signed_prekey,
            signed_prekey_sig=signature,
            one_time_prekeys=tuple(sorted(self._public_bundle().pre_keys))[:one_time]
            if one_time > 0
            else (),
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
        state = self._state
        import x3dh  # loaded with the state

        try:
            secret, ad, spk = run_to_completion(
                state.get_shared_secret_passive(
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
