"""p2pdm wire types: what crosses the network, and their strict decoders.

How this works: three layers, so that only the recipient learns who sent a
message (normative spec: ``docs/protocol.md``).

1. :class:`InnerMessage` — the plaintext a person sends: id, sender,
   recipient, conversation, timestamp, kind and body, signed by the sender's
   identity key over the canonical CBOR of every other field.
2. :class:`SessionMessage` — the inner message encrypted by the Double
   Ratchet session with the recipient, plus the X3DH header while the session
   is new, plus the sender's PeerID. It is sealed (anonymous public-key
   encryption to the recipient's X25519 key), so relays never see it.
3. :class:`Envelope` — what travels and what a mailbox holds: version,
   recipient, envelope id, expiry and the sealed bytes. No sender field.
   The envelope id is a hash of the other three (:func:`envelope_id`), so
   nobody can pass other bytes off under an id they have seen; decoding
   does not check it (old envelopes keep decoding), :meth:`Envelope.check_id`
   does.

Each type decodes through one function that checks the size cap first, then
every field's type and length, and raises a :class:`~p2pdm.errors.WireError`
subclass for anything else. Bodies decode through the registry of message
kinds (:mod:`p2pdm.core.kinds`); kinds this version does not know decode as
:class:`UnknownBody`, so later kinds (reaction, edit, media, group…) need no
format change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Final

from p2pdm.core import cbor, stamp
from p2pdm.core.cbor import Fields
from p2pdm.core.identity import SIGNATURE_BYTES, Identity, PeerId, verify
from p2pdm.core.kinds import (
    MAX_KIND_BYTES,
    Body,
    ReceiptBody,
    TextBody,
    UnknownBody,
    decode_body,
    encode_body,
)
from p2pdm.errors import EnvelopeIdMismatch, SchemaError, UnsupportedVersion
from p2pdm.limits import MAX_CONTROL_FRAME_BYTES, MAX_FRAME_BYTES

__all__ = [
    "KEY_BYTES",
    "MAX_KIND_BYTES",
    "REQUEST_STAMP_BYTES",
    "WIRE_VERSION",
    "Body",
    "Envelope",
    "InnerMessage",
    "PrekeyBundle",
    "ReceiptBody",
    "SessionMessage",
    "TextBody",
    "UnknownBody",
    "X3DHHeader",
    "decode_body",
    "encode_body",
    "envelope_id",
]

WIRE_VERSION: Final = 1
ID_BYTES: Final = 16
KEY_BYTES: Final = 32
#: A request stamp: the UTC day it was made for (4 bytes) and its nonce.
REQUEST_STAMP_BYTES: Final = 4 + stamp.NONCE_BYTES
#: A bundle carries at most this many one-time prekeys.
MAX_BUNDLE_ONE_TIME_PREKEYS: Final = 16
#: Largest sealed payload an envelope may carry: the frame cap minus headers.
MAX_SEALED_BYTES: Final = MAX_FRAME_BYTES - 512
_U64: Final = (1 << 64) - 1
_MSG_DOMAIN: Final = "msg/v1"
#: BLAKE2b personalisation of envelope ids (15 ASCII bytes, zero-padded to 16).
_ENVELOPE_ID_PERSON: Final = b"p2pdm-env-id-v1"


def _peer(fields: Fields, key: str) -> PeerId:
    raw = fields.blob(key, max_size=64)
    try:
        return PeerId(raw)
    except SchemaError:
        raise SchemaError(f"{fields.what}: field {key!r} is not an Ed25519 PeerID") from None


def _check_version(fields: Fields) -> None:
    if not fields.has("v"):
        raise SchemaError(f"{fields.what}: missing field 'v'")
    version = fields.integer("v", 0, _U64)
    if version != WIRE_VERSION:
        raise UnsupportedVersion(
            f"{fields.what}: version {version} (this node speaks {WIRE_VERSION})"
        )


# --- bodies ----------------------------------------------------------------
# Each kind's body, decoder and encoder live in p2pdm.core.kinds; this module
# only dispatches through its registry.


def _body_kind(body: Body) -> str:
    return body.kind


# --- inner message -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InnerMessage:
    """A signed message from one person to another (layer 1)."""

    id: bytes
    sender: PeerId
    recipient: PeerId
    conversation: bytes
    sent_at_ms: int
    body: Body
    signature: bytes
    #: :meth:`body_bytes` and :meth:`encode` once made: the sender signs,
    #: sends and stores the same body, the receiver checks its signature and
    #: stores it, so each is encoded once. Not fields of the message (not
    #: compared, not copied by ``dataclasses.replace``).
    _body_cbor: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def kind(self) -> str:
        return _body_kind(self.body)

    @staticmethod
    def _signed_map(
        id: bytes,
        sender: PeerId,
        recipient: PeerId,
        conversation: bytes,
        sent_at_ms: int,
        body: Body,
        body_cbor: bytes,
    ) -> dict[str, Any]:
        # Keys in canonical order (shorter first, then bytewise), so that
        # encoding the map need not reorder it.
        return {
            "v": WIRE_VERSION,
            "id": id,
            "to": recipient.raw,
            "ts": sent_at_ms,
            "body": cbor.Encoded(body_cbor),
            "conv": conversation,
            "from": sender.raw,
            "kind": _body_kind(body),
        }

    @classmethod
    def create(
        cls,
        identity: Identity,
        *,
        id: bytes,
        recipient: PeerId,
        conversation: bytes,
        sent_at_ms: int,
        body: Body,
    ) -> InnerMessage:
        """Build and sign a message from ``identity``."""
        if len(id) != ID_BYTES or len(conversation) != ID_BYTES:
            raise SchemaError("message and conversation ids are 16 bytes")
        body_cbor = _body_cbor(body)
        signed = cls._signed_map(
            id, identity.peer_id, recipient, conversation, sent_at_ms, body, body_cbor
        )
        signature = identity.sign(_MSG_DOMAIN, cbor.encode(signed))
        msg = cls(id, identity.peer_id, recipient, conversation, sent_at_ms, body, signature)
        object.__setattr__(msg, "_body_cbor", body_cbor)
        return msg

    def with_body(self, body: Body) -> InnerMessage:
        """This message with another body (what is kept of it: its signature
        is over the body it was sent with). Cheaper than ``dataclasses.replace``."""
        return InnerMessage(
            self.id,
            self.sender,
            self.recipient,
            self.conversation,
            self.sent_at_ms,
            body,
            self.signature,
        )

    def body_bytes(self) -> bytes:
        """The body as canonical CBOR, as the store keeps it."""
        data = self._body_cbor
        if data is None:
            data = _body_cbor(self.body)
            object.__setattr__(self, "_body_cbor", data)
        return data

    def encode(self) -> bytes:
        data = self._encoded
        if data is None:
            # The signed map with "sig", in canonical order.
            data = cbor.encode(
                {
                    "v": WIRE_VERSION,
                    "id": self.id,
                    "to": self.recipient.raw,
                    "ts": self.sent_at_ms,
                    "sig": self.signature,
                    "body": cbor.Encoded(self.body_bytes()),
                    "conv": self.conversation,
                    "from": self.sender.raw,
                    "kind": _body_kind(self.body),
                }
            )
            object.__setattr__(self, "_encoded", data)
        return data

    @classmethod
    def decode(cls, data: bytes) -> InnerMessage:
        """Decode and verify the sender's signature.

        Raises WireError subclasses for bad bytes and SignatureError for a bad signature.
        """
        f = cbor.decode_map(data, MAX_FRAME_BYTES, "message")
        _check_version(f)
        msg_id = f.blob("id", size=ID_BYTES)
        sender = _peer(f, "from")
        recipient = _peer(f, "to")
        conversation = f.blob("conv", size=ID_BYTES)
        sent_at_ms = f.integer("ts", 0, _U64)
        kind = f.text("kind", MAX_KIND_BYTES, min_chars=1)
        body = decode_body(kind, f.submap("body"))
        signature = f.blob("sig", size=SIGNATURE_BYTES)
        f.done()
        msg = cls(msg_id, sender, recipient, conversation, sent_at_ms, body, signature)
        body_cbor = _body_cbor(body)
        signed = cls._signed_map(
            msg_id, sender, recipient, conversation, sent_at_ms, body, body_cbor
        )
        verify(sender, _MSG_DOMAIN, cbor.encode(signed), signature)
        object.__setattr__(msg, "_body_cbor", body_cbor)
        return msg


def _body_cbor(body: Body) -> bytes:
    return cbor.encode(encode_body(body))


# --- prekey bundle ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrekeyBundle:
    """The public keys another node needs to start a session with ``peer`` while it is offline.

    ``signed_prekey_sig`` is the identity key's signature over the signed
    prekey (checked by :mod:`p2pdm.core.session`).
    """

    peer: PeerId
    signed_prekey: bytes
    signed_prekey_sig: bytes
    one_time_prekeys: tuple[bytes, ...]
    created_at_s: int

    def to_map(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "peer": self.peer.raw,
            "spk": self.signed_prekey,
            "spk_sig": self.signed_prekey_sig,
            "opks": list(self.one_time_prekeys),
            "ts": self.created_at_s,
        }

    def encode(self) -> bytes:
        return cbor.encode(self.to_map())

    @classmethod
    def from_fields(cls, f: Fields) -> PrekeyBundle:
        _check_version(f)
        peer = _peer(f, "peer")
        spk = f.blob("spk", size=KEY_BYTES)
        sig = f.blob("spk_sig", size=SIGNATURE_BYTES)
        opks = f.array("opks", MAX_BUNDLE_ONE_TIME_PREKEYS)
        if any(type(k) is not bytes or len(k) != KEY_BYTES for k in opks):
            raise SchemaError(f"{f.what}: one-time prekeys are 32 bytes each")
        if len(set(opks)) != len(opks):
            raise SchemaError(f"{f.what}: repeated one-time prekey")
        created = f.integer("ts", 0, _U64)
        f.done()
        return cls(peer, spk, sig, tuple(opks), created)

    @classmethod
    def decode(cls, data: bytes) -> PrekeyBundle:
        return cls.from_fields(cbor.decode_map(data, MAX_CONTROL_FRAME_BYTES, "prekey bundle"))


# --- session message -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class X3DHHeader:
    """Sent with every message until the recipient has answered on the session."""

    ephemeral_key: bytes
    signed_prekey: bytes
    one_time_prekey: bytes | None


@dataclass(frozen=True, slots=True)
class SessionMessage:
    """A Double Ratchet ciphertext of an encoded :class:`InnerMessage` (layer 2)."""

    sender: PeerId
    x3dh: X3DHHeader | None
    ratchet_key: bytes
    previous_chain_length: int
    index: int
    ciphertext: bytes

    def encode(self) -> bytes:
        # Keys in canonical order, so that encoding the map need not reorder it.
        out: dict[str, Any] = {
            "n": self.index,
            "v": WIRE_VERSION,
            "ct": self.ciphertext,
            "dh": self.ratchet_key,
            "pn": self.previous_chain_length,
            "from": self.sender.raw,
        }
        if self.x3dh is not None:
            out["x3dh"] = {
                "ek": self.x3dh.ephemeral_key,
                "opk": self.x3dh.one_time_prekey,
                "spk": self.x3dh.signed_prekey,
            }
        return cbor.encode(out)

    @classmethod
    def decode(cls, data: bytes) -> SessionMessage:
        f = cbor.decode_map(data, MAX_SEALED_BYTES, "session message")
        _check_version(f)
        sender = _peer(f, "from")
        header = None
        h = f.opt_submap("x3dh")
        if h is not None:
            header = X3DHHeader(
                h.blob("ek", size=KEY_BYTES),
                h.blob("spk", size=KEY_BYTES),
                h.opt_blob("opk", size=KEY_BYTES),
            )
            h.done()
        msg = cls(
            sender,
            header,
            f.blob("dh", size=KEY_BYTES),
            f.integer("pn", 0, _U64),
            f.integer("n", 0, _U64),
            f.blob("ct", max_size=MAX_SEALED_BYTES),
        )
        f.done()
        return msg


# --- envelope --------------------------------------------------------------------


def envelope_id(recipient: PeerId, expires_at_s: int, sealed: bytes) -> bytes:
    """The id an envelope with this content must carry (docs/protocol.md §9).

    BLAKE2b-128, personalised ``p2pdm-env-id-v1``, of
    ``u8(len(to)) || to || u64be(exp) || box``: the box is last, so the
    input splits one way only. Raises SchemaError for an expiry over 64 bits.
    """
    if not 0 <= expires_at_s <= _U64:
        raise SchemaError("envelope expiry must fit in 64 bits")
    raw = recipient.raw
    return hashlib.blake2b(
        b"".join((bytes((len(raw),)), raw, expires_at_s.to_bytes(8, "big"), sealed)),
        digest_size=ID_BYTES,
        person=_ENVELOPE_ID_PERSON,
    ).digest()


@dataclass(frozen=True, slots=True)
class Envelope:
    """What travels between nodes and what a mailbox holds (layer 3). No sender."""

    recipient: PeerId
    id: bytes
    expires_at_s: int
    sealed: bytes

    @classmethod
    def create(cls, recipient: PeerId, expires_at_s: int, sealed: bytes) -> Envelope:
        """An envelope with its content-bound id."""
        return cls(recipient, envelope_id(recipient, expires_at_s, sealed), expires_at_s, sealed)

    def check_id(self) -> None:
        """Raise EnvelopeIdMismatch unless ``id`` is the hash of the content."""
        if self.id != envelope_id(self.recipient, self.expires_at_s, self.sealed):
            raise EnvelopeIdMismatch(
                "envelope id does not match its content (forged, damaged, or made by an "
                "older p2pdm)"
            )

    def encode(self) -> bytes:
        return cbor.encode(
            {  # in canonical order
                "v": WIRE_VERSION,
                "id": self.id,
                "to": self.recipient.raw,
                "box": self.sealed,
                "exp": self.expires_at_s,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Envelope:
        f = cbor.decode_map(data, MAX_FRAME_BYTES, "envelope")
        _check_version(f)
        env = cls(
            _peer(f, "to"),
            f.blob("id", size=ID_BYTES),
            f.integer("exp", 0, _U64),
            f.blob("box", max_size=MAX_SEALED_BYTES),
        )
        f.done()
        return env
