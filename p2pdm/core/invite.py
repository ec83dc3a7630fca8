"""Invites: a signed, self-contained string that lets someone add you as a contact.

How this works: ``p2pdm:`` followed by the unpadded base64url of a canonical
CBOR map: PeerID, display name, addresses, prekey bundle, expiry, and the
identity key's signature over all of it (domain ``invite/v1``). Everything a
contact needs to send a first message is inside, so adding a contact from an
invite needs no network round trip.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from p2pdm.core import cbor
from p2pdm.core.identity import SIGNATURE_BYTES, Identity, PeerId, verify
from p2pdm.core.prekeys import verify_bundle
from p2pdm.core.wire import WIRE_VERSION, PrekeyBundle
from p2pdm.errors import (
    InviteExpired,
    InviteFormatError,
    InviteSignatureError,
    SignatureError,
    UnsupportedVersion,
    WireError,
)
from p2pdm.limits import (
    INVITE_TTL_SECONDS,
    MAX_ADDR_BYTES,
    MAX_ADDRS,
    MAX_CLOCK_SKEW_SECONDS,
    MAX_INVITE_CHARS,
    MAX_NAME_BYTES,
)

__all__ = ["INVITE_SCHEME", "Invite", "make_invite", "parse_invite"]

INVITE_SCHEME: Final = "p2pdm:"
_DOMAIN: Final = "invite/v1"
_U64: Final = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Invite:
    peer_id: PeerId
    name: str
    addrs: tuple[str, ...]
    bundle: PrekeyBundle
    expires_at_s: int


def _signed_map(
    peer: PeerId, name: str, addrs: Sequence[str], bundle: PrekeyBundle, expires_at_s: int
) -> dict[str, Any]:
    return {
        "v": WIRE_VERSION,
        "peer": peer.raw,
        "name": name,
        "addrs": list(addrs),
        "bundle": bundle.to_map(),
        "exp": expires_at_s,
    }


def make_invite(
    identity: Identity,
    name: str,
    addrs: Sequence[str],
    bundle: PrekeyBundle,
    now_s: int,
    ttl_s: int = INVITE_TTL_SECONDS,
) -> str:
    """A ``p2pdm:`` invite for ``identity``, valid for ``ttl_s`` seconds.

    Addresses too long for :func:`parse_invite` are left out, and only the
    first ``MAX_ADDRS`` kept. Raises ValueError for a foreign bundle or a
    name longer than ``MAX_NAME_BYTES``.
    """
    if bundle.peer != identity.peer_id:
        raise ValueError("the bundle is not this identity's")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ValueError(f"the name is longer than {MAX_NAME_BYTES} bytes")
    addrs = [a for a in addrs if len(a.encode()) <= MAX_ADDR_BYTES][:MAX_ADDRS]
    signed = _signed_map(identity.peer_id, name, addrs, bundle, now_s + ttl_s)
    signature = identity.sign(_DOMAIN, cbor.encode(signed))
    raw = cbor.encode({**signed, "sig": signature})
    return INVITE_SCHEME + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_invite(text: str, now_s: int) -> Invite:
    """Check and decode an invite.

    Raises InviteFormatError (not an invite, truncated, damaged),
    InviteSignatureError (tampered) or InviteExpired.
    """
    text = text.strip()
    if len(text) > MAX_INVITE_CHARS:
        raise InviteFormatError(f"invite is longer than {MAX_INVITE_CHARS} characters")
    if not text.lower().startswith(INVITE_SCHEME):
        raise InviteFormatError("not a p2pdm invite (it should start with 'p2pdm:')")
    payload = text[len(INVITE_SCHEME) :]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    except (binascii.Error, ValueError):
        raise InviteFormatError("invite is truncated or damaged (not valid base64url)") from None
    try:
        f = cbor.decode_map(raw, MAX_INVITE_CHARS, "invite")
        version = f.integer("v", 0, _U64)
        if version != WIRE_VERSION:
            raise UnsupportedVersion(f"invite version {version}")
        peer = PeerId(f.blob("peer", max_size=64))
        name = f.text("name", MAX_NAME_BYTES)
        addrs = f.array("addrs", MAX_ADDRS)
        if any(type(a) is not str or len(a.encode()) > MAX_ADDR_BYTES for a in addrs):
            raise InviteFormatError("invite addresses must be short text strings")
        bundle = PrekeyBundle.from_fields(f.submap("bundle"))
        expires = f.integer("exp", 0, _U64)
        signature = f.blob("sig", size=SIGNATURE_BYTES)
        f.done()
    except UnsupportedVersion as exc:
        raise InviteFormatError(f"invite is from a newer p2pdm ({exc}); upgrade") from None
    except WireError as exc:
        if isinstance(exc, InviteFormatError):
            raise
        raise InviteFormatError(f"invite is truncated or damaged ({exc})") from None
    try:
        verify(
            peer, _DOMAIN, cbor.encode(_signed_map(peer, name, addrs, bundle, expires)), signature
        )
        if bundle.peer != peer:
            raise SignatureError("bundle belongs to another peer")
        verify_bundle(bundle)
    except SignatureError:
        raise InviteSignatureError("invite signature does not match: it was altered") from None
    if expires + MAX_CLOCK_SKEW_SECONDS < now_s:
        raise InviteExpired("invite has expired; ask your contact for a new one (`p2pdm id`)")
    return Invite(peer, name, tuple(addrs), bundle, expires)
