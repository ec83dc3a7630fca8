"""Sealing: wrap a session message so that only its recipient learns the sender.

How this works: the :class:`~p2pdm.core.wire.SessionMessage` (which names
the sender and may carry an X3DH header) is encrypted with libsodium's sealed
box — an ephemeral X25519 key agreement with the recipient's identity key plus
XSalsa20-Poly1305 — and put in an :class:`~p2pdm.core.wire.Envelope` that
names only the recipient. Relays and mailboxes see recipient, size and
expiry; never sender, session metadata or content.

:func:`open_envelope` undoes it; :func:`check_inner` applies the recipient's
checks to the decrypted inner message.
"""

from __future__ import annotations

import hashlib
from typing import Final

import nacl.bindings
import nacl.exceptions
import nacl.public

from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.wire import Envelope, InnerMessage, SessionMessage
from p2pdm.errors import DecryptError, SignatureError, WrongRecipient

__all__ = ["EPHEMERAL_SECRET_BYTES", "check_inner", "open_envelope", "seal"]

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
    box = nacl.public.SealedBox(nacl.public.PrivateKey(identity.x25519_private_key))
    try:
        plain = box.decrypt(envelope.sealed)
    except (nacl.exceptions.CryptoError, nacl.exceptions.TypeError, nacl.exceptions.ValueError):
        raise DecryptError("envelope could not be opened (not sealed to this node)") from None
    return SessionMessage.decode(plain)


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
