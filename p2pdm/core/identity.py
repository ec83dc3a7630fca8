"""Node identity: one Ed25519 key pair, its libp2p PeerID, and signatures.

How this works: a 32-byte seed is the whole secret. The Ed25519 key made
from it signs p2pdm data and is also the libp2p host key, so a contact's
address (PeerID ``12D3KooW…``) and the key that signs its messages are one.
A PeerID here is the identity multihash of the protobuf-encoded Ed25519
public key, exactly as libp2p builds it, so a signature can be checked
knowing only a PeerID. Every signature is domain-separated: the signed bytes
start with ``p2pdm/<domain>\\0``, so a signature made for one purpose can
never be replayed as another.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Final

import base58
import nacl.bindings
import nacl.exceptions
import nacl.signing

from p2pdm.errors import IdentityError, SchemaError, SignatureError

__all__ = [
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "Identity",
    "PeerId",
    "safety_number",
    "short_fingerprint",
    "verify",
]

SEED_BYTES: Final = 32
PUBLIC_KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
# protobuf PublicKey{Type: Ed25519 (1), Data: <32 bytes>} as libp2p encodes it.
_PROTO_ED25519_PREFIX: Final = b"\x08\x01\x12\x20"
# multihash "identity" (0x00) of the 36-byte protobuf key.
_MULTIHASH_PREFIX: Final = b"\x00\x24"
_ED25519_PEER_PREFIX: Final = _MULTIHASH_PREFIX + _PROTO_ED25519_PREFIX
PEER_ID_BYTES: Final = len(_ED25519_PEER_PREFIX) + PUBLIC_KEY_BYTES
_PEER_ID_MAX_CHARS: Final = 64
#: PeerIDs whose text form is kept: a node talks to a bounded set of peers,
#: and every log line and store call would otherwise redo the base58.
_TEXT_CACHE_SIZE: Final = 4096
# Signal's numeric fingerprint (version 0): 5200 rounds of SHA-512.
_FINGERPRINT_ROUNDS: Final = 5200


#: PeerIDs whose X25519 form is remembered (every sealed envelope needs the
#: recipient's or the sender's): about one per contact in use.
X25519_CACHE_SIZE: Final = 4096


@functools.lru_cache(maxsize=X25519_CACHE_SIZE)
def _x25519_of(ed25519_public: bytes) -> bytes:
    try:
        return bytes(nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public))
    except nacl.exceptions.RuntimeError:
        raise SchemaError("PeerID key is not a valid Ed25519 point") from None


@dataclass(frozen=True, slots=True, order=True)
class PeerId:
    """A libp2p PeerID of an Ed25519 key; ``str()`` gives the ``12D3KooW…`` form."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != PEER_ID_BYTES or not self.raw.startswith(_ED25519_PEER_PREFIX):
            raise SchemaError("not the PeerID of an Ed25519 key")

    # Written out (the generated ones compare and hash a tuple of the one
    # field): PeerIds are dictionary keys and compared on every message.
    def __eq__(self, other: object) -> bool:
        if type(other) is not PeerId:
            return NotImplemented
        return self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    @classmethod
    def trusted(cls, raw: bytes) -> PeerId:
        """The PeerId of ``raw`` without the check: only for bytes taken from
        a PeerId before (a store's own rows read back), which passed it then."""
        peer = object.__new__(cls)
        object.__setattr__(peer, "raw", raw)
        return peer

    @classmethod
    def from_public_key(cls, public_key: bytes) -> PeerId:
        if len(public_key) != PUBLIC_KEY_BYTES:
            raise SchemaError("an Ed25519 public key is 32 bytes")
        return cls(_MULTIHASH_PREFIX + _PROTO_ED25519_PREFIX + public_key)

    @classmethod
    def parse(cls, text: str) -> PeerId:
        """Parse the base58 form; raises :class:`SchemaError` if it is not an Ed25519 PeerID."""
        if not isinstance(text, str) or not 0 < len(text) <= _PEER_ID_MAX_CHARS:
            raise SchemaError("not a PeerID")
        try:
            raw = base58.b58decode(text.strip())
        except ValueError:
            raise SchemaError(f"not a PeerID: {text[:20]!r}") from None
        return cls(raw)

    @property
    def public_key(self) -> bytes:
        """The Ed25519 public key this PeerID names."""
        return self.raw[-PUBLIC_KEY_BYTES:]

    @property
    def x25519_public_key(self) -> bytes:
        """The X25519 form of the key, for key agreement."""
        return _x25519_of(self.public_key)

    def __str__(self) -> str:
        return _base58(self.raw)

    def __repr__(self) -> str:
        return f"PeerId({self})"

    def short(self) -> str:
        """The last 8 characters, for logs and narrow tables."""
        return str(self)[-8:]


@functools.lru_cache(maxsize=_TEXT_CACHE_SIZE)
def _base58(raw: bytes) -> str:
    return base58.b58encode(raw).decode("ascii")


def _signed_bytes(domain: str, data: bytes) -> bytes:
    return b"p2pdm/" + domain.encode("ascii") + b"\x00" + data


def verify(peer: PeerId, domain: str, data: bytes, signature: bytes) -> None:
    """Check ``peer``'s ``signature`` over ``data`` in ``domain``; raises SignatureError.

    libsodium's ``crypto_sign_open``, called as ``VerifyKey.verify`` calls it
    (signature, then message), without a key object per check: a PeerID's
    key is always 32 bytes."""
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError("a signature is 64 bytes")
    try:
        nacl.bindings.crypto_sign_open(signature + _signed_bytes(domain, data), peer.public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        raise SignatureError(f"bad {domain} signature from {peer.short()}") from None


class Identity:
    """The node's key pair. Holds the secret seed; never logged or repr'd."""

    __slots__ = ("_secret_key", "_signing_key", "_x25519_private_key", "peer_id", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise IdentityError("an identity seed is 32 bytes")
        self.seed = bytes(seed)
        self._signing_key = nacl.signing.SigningKey(self.seed)
        public_key, secret_key = nacl.bindings.crypto_sign_seed_keypair(self.seed)
        self.peer_id = PeerId.from_public_key(public_key)
        # libsodium's form of the secret key, for signing without PyNaCl's
        # signed-message object per signature.
        self._secret_key: bytes = secret_key
        self._x25519_private_key: bytes | None = None

    @classmethod
    def generate(cls, random_bytes: bytes) -> Identity:
        """Make an identity from 32 bytes of fresh randomness supplied by the caller."""
        return cls(random_bytes)

    @property
    def public_key(self) -> bytes:
        return self.peer_id.public_key

    @property
    def x25519_private_key(self) -> bytes:
        """The X25519 form of the secret key (libsodium's ed25519→curve25519).

        Made once (a SHA-512 and, in PyNaCl, a scalar multiplication for its
        public half): every envelope this node opens needs it.
        """
        key = self._x25519_private_key
        if key is None:
            key = self._x25519_private_key = bytes(self._signing_key.to_curve25519_private_key())
        return key

    def sign(self, domain: str, data: bytes) -> bytes:
        """Sign ``data`` for ``domain`` (e.g. ``"msg/v1"``); returns the 64-byte signature.

        libsodium's ``crypto_sign``, as ``SigningKey.sign`` calls it."""
        return nacl.bindings.crypto_sign(_signed_bytes(domain, data), self._secret_key)[
            :SIGNATURE_BYTES
        ]

    def __repr__(self) -> str:
        return f"Identity({self.peer_id})"


def _fingerprint_digits(peer: PeerId) -> str:
    key = peer.public_key
    digest = hashlib.sha512(b"\x00\x00" + key + peer.raw).digest()
    for _ in range(_FINGERPRINT_ROUNDS):
        digest = hashlib.sha512(digest + key).digest()
    return "".join(
        f"{int.from_bytes(digest[i : i + 5], 'big') % 100_000:05d}" for i in range(0, 30, 5)
    )


def short_fingerprint(peer: PeerId) -> str:
    """The first ten digits of ``peer``'s half of every safety number it is part of
    (``12345 67890``): the same in the safety number shown with any contact of it."""
    digits = _fingerprint_digits(peer)
    return f"{digits[:5]} {digits[5:10]}"


def safety_number(a: PeerId, b: PeerId) -> str:
    """The 60-digit safety number of two identities, the same on both sides.

    Signal's numeric fingerprint: 30 digits per party, the lower one first,
    shown as twelve groups of five.
    """
    digits = "".join(sorted((_fingerprint_digits(a), _fingerprint_digits(b))))
    return " ".join(digits[i : i + 5] for i in range(0, 60, 5))
