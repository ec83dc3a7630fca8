"""This node's prekeys in the ``x3dh`` package's own state.

Imported on first use by :mod:`p2pdm.core.prekeys` (opening or starting a
session, rotating the signed prekey, drawing an invite's one-time prekeys),
not with every node: the ``x3dh`` package brings pydantic with it (its
``migrations`` module), together about 8 MiB, and an idle node only
publishes its signed prekey, which the saved state carries beside the
package's form.
"""

from __future__ import annotations

import json
from typing import Any

import nacl.signing
import x3dh

from p2pdm.core.prekeys import (
    CURVE_25519_KEY,
    ED_25519_KEY,
    IDENTITY_FIELD,
    X3DH_INFO,
)
from p2pdm.errors import SessionError

__all__ = ["X3DHState", "create", "legacy_public_key", "restore"]


def _encode_key(fmt: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
    return (ED_25519_KEY if fmt is x3dh.IdentityKeyFormat.ED_25519 else CURVE_25519_KEY) + pub


class X3DHState(x3dh.BaseState):
    @staticmethod
    def _encode_public_key(key_format: x3dh.IdentityKeyFormat, pub: bytes) -> bytes:
        return _encode_key(key_format, pub)


def create(seed: bytes, one_time: int) -> X3DHState:
    """A new state for the identity with ``seed``, with ``one_time`` one-time prekeys."""
    state = X3DHState.create(
        x3dh.IdentityKeyFormat.ED_25519,
        x3dh.HashFunction.SHA_256,
        X3DH_INFO,
        x3dh.identity_key_pair.IdentityKeyPairSeed(seed),
    )
    state.generate_pre_keys(one_time)
    return state


def _identity_json(seed: bytes) -> dict[str, Any]:
    """The x3dh library's JSON form of an identity key pair given by its seed."""
    pair = x3dh.identity_key_pair.IdentityKeyPairSeed(seed)
    return json.loads(pair.model.model_dump_json())  # type: ignore[no-any-return]


def restore(x3dh_json: dict[str, Any], seed: bytes | None) -> X3DHState:
    """The state from its JSON form; ``seed`` put back as its identity key (None:
    the JSON holds it, as version 1 did). Raises SessionError if it is damaged."""
    whole = dict(x3dh_json)
    if seed is not None:
        whole[IDENTITY_FIELD] = _identity_json(seed)
    try:
        state, _ = X3DHState.from_json(
            whole,
            x3dh.IdentityKeyFormat.ED_25519,
            x3dh.HashFunction.SHA_256,
            X3DH_INFO,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise SessionError(f"own prekeys are damaged: {exc}") from None
    return state


def legacy_public_key(x3dh_json: dict[str, Any]) -> bytes:
    """The identity's public key from a version 1 state (which held the seed)."""
    try:
        pair = x3dh.identity_key_pair.IdentityKeyPair.from_json(x3dh_json[IDENTITY_FIELD])
    except (ValueError, TypeError, KeyError) as exc:
        raise SessionError(f"own prekeys are damaged: {exc}") from None
    if not isinstance(pair, x3dh.identity_key_pair.IdentityKeyPairSeed):
        raise SessionError("own prekeys are damaged: the identity key is not a seed")
    return bytes(nacl.signing.SigningKey(pair.seed).verify_key)
