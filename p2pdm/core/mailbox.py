"""``/p2pdm/mailbox/1.0.0``: store-and-forward for recipients that are offline.

How this works: a client opens a stream to a mailbox node and sends request
frames, one at a time; the mailbox answers each with exactly one reply frame.

* ``deposit`` carries one encoded envelope (§9 of docs/protocol.md). The
  mailbox keeps it for the recipient the envelope names, until the envelope's
  own expiry or its retention limit, whichever is sooner, and answers with a
  ``result`` (``ok`` with the time it holds it until, or a refusal code).
  Anyone may deposit; the mailbox never learns the sender (it is sealed).
* ``challenge`` asks for a fresh random nonce. ``auth`` answers it with the
  recipient's PeerID and a signature by that PeerID's identity key over
  (mailbox PeerID, nonce, recipient PeerID), domain ``mailbox-auth/v1``.
  Binding the mailbox's own PeerID means a challenge relayed from another
  mailbox does not verify here. A nonce is good for one ``auth`` only.
* After a good ``auth``, ``fetch`` lists the recipient's envelopes in the
  order they were deposited (paged by the mailbox's own sequence numbers)
  and ``delete`` removes them by those numbers. Without one, both are
  refused with ``unauthorized``: nobody else can list, read or delete them.

This module only encodes and strictly decodes the frames, signs and checks
the challenge, derives mailbox keys and decides quotas. No I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from p2pdm.core import cbor
from p2pdm.core.identity import SIGNATURE_BYTES, Identity, PeerId, verify
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_FRAME_BYTES

__all__ = [
    "AUTH_DOMAIN",
    "CODES",
    "MAILBOX_PROTOCOL",
    "MAILBOX_SERVICE_KEY",
    "MAX_DELETE_ITEMS",
    "MAX_FETCH_ITEMS",
    "MAX_REPLY_FRAME_BYTES",
    "MAX_REQUEST_FRAME_BYTES",
    "NONCE_BYTES",
    "Auth",
    "ChallengeReply",
    "ChallengeRequest",
    "Delete",
    "Deposit",
    "Envelopes",
    "Fetch",
    "FetchedEnvelope",
    "MailboxLimits",
    "Reply",
    "Request",
    "Result",
    "StoredEnvelope",
    "auth_signature",
    "check_deposit",
    "closest",
    "decode_reply",
    "decode_request",
    "mailbox_key",
    "peer_key",
    "verify_auth",
]

MAILBOX_PROTOCOL: Final = "/p2pdm/mailbox/1.0.0"
#: DHT provider key under which every mailbox node announces itself.
MAILBOX_SERVICE_KEY: Final = b"/p2pdm/mailbox-service/1"
AUTH_DOMAIN: Final = "mailbox-auth/v1"
#: A challenge nonce: 32 random bytes cannot be guessed or repeat by chance.
NONCE_BYTES: Final = 32
#: Envelopes in one fetch reply; with MAX_REPLY_FRAME_BYTES this bounds what
#: either side buffers per reply.
MAX_FETCH_ITEMS: Final = 64
#: Sequence numbers in one delete request (one fetch page, with room to spare).
MAX_DELETE_ITEMS: Final = 256
#: A request frame is at most one envelope plus a few bytes of framing.
MAX_REQUEST_FRAME_BYTES: Final = MAX_FRAME_BYTES + 64
#: A fetch reply packs envelopes up to MAX_FRAME_BYTES in total, plus per-item framing.
MAX_REPLY_FRAME_BYTES: Final = MAX_FRAME_BYTES + 16 * MAX_FETCH_ITEMS + 64
_MAX_DETAIL_BYTES: Final = 200
_MAX_CODE_BYTES: Final = 32
_U63: Final = (1 << 63) - 1

# Result codes. A client treats any code but ``ok`` as a refusal and records it.
OK: Final = "ok"
OVER_QUOTA: Final = "over_quota"  # the recipient's count or byte quota is used up
FULL: Final = "full"  # the mailbox's global quota is used up
TOO_LARGE: Final = "too_large"  # the envelope is over this mailbox's size limit
EXPIRED: Final = "expired"  # the envelope's expiry has passed
BAD_ENVELOPE: Final = "bad_envelope"  # not an envelope, or its recipient cannot receive
BAD_ID: Final = "bad_id"  # the envelope id is not the hash of its content (§9)
UNAUTHORIZED: Final = "unauthorized"  # fetch/delete before a good auth; a bad auth
UNAVAILABLE: Final = "unavailable"  # the mailbox's store failed; try later
CODES: Final = frozenset(
    {OK, OVER_QUOTA, FULL, TOO_LARGE, EXPIRED, BAD_ENVELOPE, BAD_ID, UNAUTHORIZED, UNAVAILABLE}
)


# --- keys ----------------------------------------------------------------------


def mailbox_key(peer: PeerId) -> bytes:
    """The 32-byte DHT key a recipient's mailboxes are chosen by (a hash of its PeerID)."""
    return hashlib.sha256(b"p2pdm/mailbox-key/v1\x00" + peer.raw).digest()


def peer_key(peer: PeerId) -> bytes:
    """A peer's position in the Kademlia key space: SHA-256 of its raw PeerID, as libp2p does."""
    return hashlib.sha256(peer.raw).digest()


def closest(key: bytes, peers: Iterable[PeerId], count: int) -> list[PeerId]:
    """The ``count`` peers closest to ``key`` by XOR distance, closest first."""

    def distance(peer: PeerId) -> int:
        return int.from_bytes(key, "big") ^ int.from_bytes(peer_key(peer), "big")

    return sorted(set(peers), key=lambda p: (distance(p), p.raw))[:count]


# --- challenge -----------------------------------------------------------------


def _auth_data(mailbox: PeerId, nonce: bytes, recipient: PeerId) -> bytes:
    return cbor.encode({"mailbox": mailbox.raw, "nonce": nonce, "peer": recipient.raw})


def auth_signature(identity: Identity, mailbox: PeerId, nonce: bytes) -> bytes:
    """Sign ``mailbox``'s challenge ``nonce`` as ``identity`` (the recipient)."""
    return identity.sign(AUTH_DOMAIN, _auth_data(mailbox, nonce, identity.peer_id))


def verify_auth(mailbox: PeerId, nonce: bytes, recipient: PeerId, signature: bytes) -> None:
    """Check an answer to ``mailbox``'s challenge; raises SignatureError."""
    verify(recipient, AUTH_DOMAIN, _auth_data(mailbox, nonce, recipient), signature)


# --- what a mailbox keeps and allows --------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredEnvelope:
    """An envelope a mailbox holds: only recipient, size and times are known to it."""

    recipient: PeerId
    envelope_id: bytes
    envelope: bytes
    deposited_at_ms: int
    expires_at_ms: int
    #: The mailbox's own sequence number, assigned by the store; the fetch cursor.
    seq: int = 0

    @property
    def size(self) -> int:
        return len(self.envelope)


@dataclass(frozen=True, slots=True)
class MailboxLimits:
    """What one mailbox node accepts; see ``p2pdm.mailbox`` for the defaults and reasons."""

    retention_s: int
    max_envelope_bytes: int
    per_recipient_count: int
    per_recipient_bytes: int
    total_count: int
    total_bytes: int


def check_deposit(
    limits: MailboxLimits,
    size: int,
    recipient_usage: tuple[int, int],
    total_usage: tuple[int, int],
) -> str:
    """The result code for a deposit of ``size`` bytes given current (count, bytes) usage."""
    if size > limits.max_envelope_bytes:
        return TOO_LARGE
    count, used = recipient_usage
    if count + 1 > limits.per_recipient_count or used + size > limits.per_recipient_bytes:
        return OVER_QUOTA
    total_count, total_used = total_usage
    if total_count + 1 > limits.total_count or total_used + size > limits.total_bytes:
        return FULL
    return OK


# --- requests ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deposit:
    envelope: bytes

    def encode(self) -> bytes:
        return cbor.encode({"t": "deposit", "env": self.envelope})


@dataclass(frozen=True, slots=True)
class ChallengeRequest:
    def encode(self) -> bytes:
        return cbor.encode({"t": "challenge"})


@dataclass(frozen=True, slots=True)
class Auth:
    peer: PeerId
    signature: bytes

    def encode(self) -> bytes:
        return cbor.encode({"t": "auth", "peer": self.peer.raw, "sig": self.signature})


@dataclass(frozen=True, slots=True)
class Fetch:
    #: Return envelopes with a sequence number above this (0: from the start).
    after: int = 0

    def encode(self) -> bytes:
        return cbor.encode({"t": "fetch", "after": self.after})


@dataclass(frozen=True, slots=True)
class Delete:
    seqs: tuple[int, ...]

    def encode(self) -> bytes:
        return cbor.encode({"t": "delete", "seqs": list(self.seqs)})


Request = Deposit | ChallengeRequest | Auth | Fetch | Delete


def decode_request(data: bytes) -> Request:
    """Decode one client frame; raises a WireError subclass for anything else."""
    f = cbor.decode_map(data, MAX_REQUEST_FRAME_BYTES, "mailbox request")
    kind = f.text("t", 16)
    request: Request
    if kind == "deposit":
        request = Deposit(f.blob("env", max_size=MAX_FRAME_BYTES))
    elif kind == "challenge":
        request = ChallengeRequest()
    elif kind == "auth":
        request = Auth(PeerId(f.blob("peer", max_size=64)), f.blob("sig", size=SIGNATURE_BYTES))
    elif kind == "fetch":
        request = Fetch(f.integer("after", 0, _U63))
    elif kind == "delete":
        seqs = f.array("seqs", MAX_DELETE_ITEMS)
        if not seqs or any(type(s) is not int or not 0 < s <= _U63 for s in seqs):
            raise SchemaError("mailbox request: 'seqs' must be 1 or more positive integers")
        request = Delete(tuple(seqs))
    else:
        raise SchemaError(f"mailbox request: unknown type {kind[:16]!r}")
    f.done()
    return request


# --- replies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChallengeReply:
    nonce: bytes

    def encode(self) -> bytes:
        return cbor.encode({"t": "challenge", "nonce": self.nonce})


@dataclass(frozen=True, slots=True)
class Result:
    """The answer to deposit, auth and delete (and to a refused fetch)."""

    code: str
    detail: str = ""
    #: For a deposit: held until then (seconds since the epoch); otherwise 0.
    until_s: int = 0
    #: For a delete: how many envelopes were removed; otherwise 0.
    count: int = 0

    @property
    def ok(self) -> bool:
        return self.code == OK

    def encode(self) -> bytes:
        return cbor.encode(
            {
                "t": "result",
                "code": self.code,
                "detail": self.detail[:_MAX_DETAIL_BYTES],
                "until": self.until_s,
                "n": self.count,
            }
        )


@dataclass(frozen=True, slots=True)
class FetchedEnvelope:
    seq: int
    envelope: bytes


@dataclass(frozen=True, slots=True)
class Envelopes:
    """One page of a fetch; ``more`` if the recipient holds envelopes beyond it."""

    items: tuple[FetchedEnvelope, ...]
    more: bool

    def encode(self) -> bytes:
        items = [{"n": i.seq, "env": i.envelope} for i in self.items]
        return cbor.encode({"t": "envelopes", "items": items, "more": self.more})


Reply = ChallengeReply | Result | Envelopes


def decode_reply(data: bytes) -> Reply:
    """Decode one mailbox frame; raises a WireError subclass for anything else."""
    f = cbor.decode_map(data, MAX_REPLY_FRAME_BYTES, "mailbox reply")
    kind = f.text("t", 16)
    reply: Reply
    if kind == "challenge":
        reply = ChallengeReply(f.blob("nonce", size=NONCE_BYTES))
    elif kind == "result":
        code = f.text("code", _MAX_CODE_BYTES, min_chars=1)
        detail = f.text("detail", _MAX_DETAIL_BYTES)
        reply = Result(code, detail, f.integer("until", 0, _U63), f.integer("n", 0, _U63))
    elif kind == "envelopes":
        items = []
        for i, raw in enumerate(f.array("items", MAX_FETCH_ITEMS)):
            if type(raw) is not dict:
                raise SchemaError(f"mailbox reply: item {i} must be a map")
            item = cbor.Fields(raw, f"mailbox reply item {i}")
            items.append(
                FetchedEnvelope(
                    item.integer("n", 1, _U63), item.blob("env", max_size=MAX_FRAME_BYTES)
                )
            )
            item.done()
        reply = Envelopes(tuple(items), f.boolean("more"))
    else:
        raise SchemaError(f"mailbox reply: unknown type {kind[:16]!r}")
    f.done()
    return reply
