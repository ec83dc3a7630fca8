"""Sealing: wrap a session message so that only its recipient learns the sender.

How this works: the :class:`~p2pdm.core.wire.SessionMessage` (which names
the sender and may carry an X3DH header) is encrypted with libsodium's sealed
box — an ephemeral X25519 key agreement with the recipient's identity key plus
XSalsa20-Poly1305 — and put in an :class:`~p2pdm.core.wire.Envelope` that
names only the recipient. Relays and mailboxes see recipient, size and
expiry; never sender, session metadata or content.

:func:`open_envelope` undoes it; :func:`check_inner` applies the recipient's
checks to the decrypted inner message. :func:`open_ahead` decodes and opens
an envelope before its turn, keeping a failure to be raised at its turn: it
needs nothing but the identity, so a receiver runs it in a worker thread
(libsodium releases the GIL) while the session work stays in order.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.public

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.wire import Envelope, InnerMessage, SessionMessage
from p2pdm.errors import DecryptError, P2PDMError, SignatureError, WrongRecipient

__all__ = ["EPHEMERAL_SECRET_BYTES", "Opened", "check_inner", "open_ahead", "open_envelope", "seal"]

#: The sealed box's one-time X25519 secret key, and its nonce.
EPHEMERAL_SECRET_BYTES: Final = 32
SEAL_NONCE_BYTES: Final = 24


def seal(
    recipient: PeerId,
    message: SessionMessage,
    expires_at_s: int,
    ephemeral_secret: bytes | None = None,
) -> Envelope:
    """Seal ``message`` for ``recipient`` into an envelope (its id is the hash of the box).

    ``ephemeral_secret`` (32 random bytes) is the sealed box's one-time X25519
    key, so that the caller's randomness decides the bytes, and the envelope
    id with them (seeded in simulations); None lets libsodium draw it.
    """
    recipient_key = recipient.x25519_public_key
    plain = message.encode()
    if ephemeral_secret is None:
        box = bytes(nacl.public.SealedBox(nacl.public.PublicKey(recipient_key)).encrypt(plain))
    else:
        # crypto_box_seal, spelled out: epk || crypto_box(m, nonce, recipient, esk)
        # with nonce = BLAKE2b-192(epk || recipient), as libsodium does.
        epk = nacl.bindings.crypto_scalarmult_base(ephemeral_secret)
        nonce = hashlib.blake2b(epk + recipient_key, digest_size=SEAL_NONCE_BYTES).digest()
        box = epk + nacl.bindings.crypto_box(plain, nonce, recipient_key, ephemeral_secret)
    return Envelope.create(recipient, expires_at_s, box)


def open_envelope(identity: Identity, envelope: Envelope) -> SessionMessage:
    """Open an envelope addressed to ``identity``.

    Raises WrongRecipient, DecryptError (not sealed to us or damaged) or a
    WireError subclass (the content does not decode).
    """
    if envelope.recipient != identity.peer_id:
        raise WrongRecipient(f"envelope is for {envelope.recipient.short()}, not for this node")
    box = _sealed_box(identity.x25519_private_key)
    try:
        plain = box.decrypt(envelope.sealed)
    except (nacl.exceptions.CryptoError, nacl.exceptions.TypeError, nacl.exceptions.ValueError):
        raise DecryptError("envelope could not be opened (not sealed to this node)") from None
    return SessionMessage.decode(plain)


#: Own identities whose sealed box is kept: making one derives the public key
#: (a scalar multiplication), once per identity instead of per envelope.
_SEALED_BOXES: Final = 4


@functools.lru_cache(maxsize=_SEALED_BOXES)
def _sealed_box(x25519_private_key: bytes) -> nacl.public.SealedBox[nacl.public.PrivateKey]:
    return nacl.public.SealedBox(nacl.public.PrivateKey(x25519_private_key))


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope decoded and opened by :func:`open_ahead`."""

    envelope: Envelope
    outer: SessionMessage | None
    #: Why it could not be opened, to raise when its turn comes.
    error: P2PDMError | None

    def session_message(self) -> SessionMessage:
        """What :func:`open_envelope` gave, or raise what it raised."""
        if self.error is not None:
            raise self.error
        assert self.outer is not None
        return self.outer


def open_ahead(identity: Identity, data: bytes) -> Opened:
    """Decode an encoded envelope and open it, keeping a failure to open.

    Raises a WireError subclass if ``data`` is not an envelope (the first
    check a receiver makes).
    """
    envelope = Envelope.decode(data)
    try:
        return Opened(envelope, open_envelope(identity, envelope), None)
    except P2PDMError as exc:
        return Opened(envelope, None, exc)


def check_inner(identity: Identity, outer: SessionMessage, plaintext: bytes) -> InnerMessage:
    """Decode a decrypted inner message and check it belongs to this session.

    The signature is checked by :meth:`InnerMessage.decode`. Raises
    SignatureError if the signer is not the session's peer, WrongRecipient
    if it names another recipient.
    """
    inner = InnerMessage.decode(plaintext)
    if inner.sender != outer.sender:
        raise SignatureError("message is signed by another peer than the session's")
    if inner.recipient != identity.peer_id:
        raise WrongRecipient(f"message is for {inner.recipient.short()}, not for this node")
    return inner
