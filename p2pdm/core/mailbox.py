"""``/p2pdm/mailbox/1.0.0``: store-and-forward for recipients that are offline.

How this works: a client opens a stream to a mailbox node and sends request
frames, one at a time; the mailbox answers each with exactly one reply frame.

* ``deposit`` carries one encoded envelope (§9 of docs/protocol.md). The
  mailbox keeps it for the recipient the envelope names, until the envelope's
  own expiry or its retention limit, whichever is sooner, and answers with a
  ``result`` (``ok`` with the time it holds it until, or a refusal code).
  Anyone may deposit; the mailbox never learns the sender (it is sealed).
  Quotas are fair across depositors (the PeerID of the connection): one
  holds at most a share of a recipient's quota, and once a recipient's
  quota is half used a deposit must carry a proof-of-work ``stamp``
  (:mod:`p2pdm.core.stamp`) over (mailbox, recipient, envelope digest, day);
  a deposit without one is refused ``stamp_required`` with the bits asked.
* ``challenge`` asks for a fresh random nonce. ``auth`` answers it with the
  recipient's PeerID and a signature by that PeerID's identity key over
  (mailbox PeerID, nonce, recipient PeerID), domain ``mailbox-auth/v1``.
  Binding the mailbox's own PeerID means a challenge relayed from another
  mailbox does not verify here. A nonce is good for one ``auth`` only.
* ``/p2pdm/mailbox/1.1.0`` (the same exchange) adds taking a deposit back:
  a ``deposit`` may carry ``wd``, the hash of a random withdraw secret the
  depositor keeps, and ``withdraw`` presents secrets: the mailbox removes
  the envelopes held under their hashes, whoever asks (the secret is the
  proof; the mailbox learns nothing it did not see at the deposit). On
  1.1.0 an unknown request type is answered ``unknown_request``, not
  disconnected, so later requests degrade to an error.
* After a good ``auth``, ``fetch`` lists the recipient's envelopes in the
  order they were deposited (paged by the mailbox's own sequence numbers)
  and ``delete`` removes them by those numbers. Without one, both are
  refused with ``unauthorized``: nobody else can list, read or delete them.

This module only encodes and strictly decodes the frames, signs and checks
the challenge, derives mailbox keys and decides quotas. No I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from p2pdm.core import cbor, stamp
from p2pdm.core.identity import SIGNATURE_BYTES, Identity, PeerId, verify
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_FRAME_BYTES

__all__ = [
    "AUTH_DOMAIN",
    "CODES",
    "MAILBOX_PROTOCOL",
    "MAILBOX_PROTOCOL_WITHDRAW",
    "MAILBOX_SERVICE_KEY",
    "MAX_DELETE_ITEMS",
    "MAX_FETCH_ITEMS",
    "MAX_REPLY_FRAME_BYTES",
    "MAX_REQUEST_FRAME_BYTES",
    "MAX_WITHDRAW_ITEMS",
    "NONCE_BYTES",
    "STAMP_BYTES",
    "STAMP_DOMAIN",
    "WITHDRAW_HASH_BYTES",
    "WITHDRAW_SECRET_BYTES",
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
    "UnknownRequest",
    "Withdraw",
    "auth_signature",
    "check_deposit",
    "closest",
    "decode_reply",
    "decode_request",
    "mailbox_key",
    "mint_stamp",
    "peer_key",
    "stamp_day",
    "stamp_resource",
    "verify_auth",
    "verify_stamp",
    "withdraw_hash",
]

MAILBOX_PROTOCOL: Final = "/p2pdm/mailbox/1.0.0"
#: The same exchange with ``wd`` on deposits, ``withdraw``, and unknown
#: request types answered ``unknown_request``; a client asks for it first and
#: falls back to MAILBOX_PROTOCOL with a mailbox that does not speak it.
MAILBOX_PROTOCOL_WITHDRAW: Final = "/p2pdm/mailbox/1.1.0"
#: A withdraw secret: 32 random-looking bytes cannot be guessed.
WITHDRAW_SECRET_BYTES: Final = 32
#: What a deposit carries of it: BLAKE2b-256 (one-way: the hash gives no secret).
WITHDRAW_HASH_BYTES: Final = 32
_WITHDRAW_PERSON: Final = b"p2pdm-withdraw"
#: Secrets in one withdraw request (a message with its file's 40 chunks fits),
#: so one request costs the mailbox at most this many index look-ups.
MAX_WITHDRAW_ITEMS: Final = 64
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
#: A deposit stamp: the UTC day it was made for (4 bytes, big-endian) and its nonce.
STAMP_BYTES: Final = 4 + stamp.NONCE_BYTES
STAMP_DOMAIN: Final = b"p2pdm/mailbox-stamp/v1\x00"
#: Days a stamp is good for on either side of the mailbox's own day: clocks
#: differ and a deposit may straddle midnight; older stamps are refused, so
#: work cannot be banked for long.
STAMP_DAYS_SKEW: Final = 1
_DAY_MS: Final = 86_400_000
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
OVER_SHARE: Final = "over_share"  # this depositor holds its share of the recipient's quota
STAMP_REQUIRED: Final = "stamp_required"  # deposit again with a stamp of ``bits`` bits
RATE_LIMITED: Final = "rate_limited"  # this depositor deposits too fast; try later
UNKNOWN_REQUEST: Final = "unknown_request"  # 1.1.0: a request type this mailbox does not know
CODES: Final = frozenset(
    {
        OK,
        OVER_QUOTA,
        FULL,
        TOO_LARGE,
        EXPIRED,
        BAD_ENVELOPE,
        BAD_ID,
        UNAUTHORIZED,
        UNAVAILABLE,
        OVER_SHARE,
        STAMP_REQUIRED,
        RATE_LIMITED,
        UNKNOWN_REQUEST,
    }
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


# --- withdraw secrets ------------------------------------------------------------


def withdraw_hash(secret: bytes) -> bytes:
    """What a deposit carries of its withdraw ``secret`` (``wd``)."""
    return hashlib.blake2b(
        secret, digest_size=WITHDRAW_HASH_BYTES, person=_WITHDRAW_PERSON
    ).digest()


# --- deposit stamps --------------------------------------------------------------


def stamp_day(now_ms: int) -> int:
    """The UTC day number (days since the epoch) a stamp made at ``now_ms`` names."""
    return now_ms // _DAY_MS


def stamp_resource(mailbox: PeerId, recipient: PeerId, envelope: bytes, day: int) -> bytes:
    """What a deposit stamp pays for: this envelope, for this recipient, at this mailbox, today."""
    digest = hashlib.sha256(envelope).digest()
    return b"".join(
        (STAMP_DOMAIN, _sized(mailbox.raw), _sized(recipient.raw), digest, day.to_bytes(4, "big"))
    )


def _sized(raw: bytes) -> bytes:
    return len(raw).to_bytes(1, "big") + raw


def mint_stamp(
    mailbox: PeerId, recipient: PeerId, envelope: bytes, now_ms: int, difficulty: int
) -> bytes:
    """A ``STAMP_BYTES`` stamp for depositing ``envelope`` at ``mailbox`` (CPU-bound).

    Raises ValueError for a difficulty outside 0..stamp.MAX_DIFFICULTY.
    """
    day = stamp_day(now_ms)
    nonce = stamp.mint(stamp_resource(mailbox, recipient, envelope, day), difficulty)
    assert nonce is not None  # unbounded tries always end
    return day.to_bytes(4, "big") + nonce


def verify_stamp(
    mailbox: PeerId, recipient: PeerId, envelope: bytes, now_ms: int, token: bytes, difficulty: int
) -> bool:
    """True if ``token`` is a fresh stamp of ``difficulty`` bits for this deposit."""
    if len(token) != STAMP_BYTES:
        return False
    day = int.from_bytes(token[:4], "big")
    if abs(day - stamp_day(now_ms)) > STAMP_DAYS_SKEW:
        return False
    resource = stamp_resource(mailbox, recipient, envelope, day)
    return stamp.verify(resource, token[4:], difficulty)


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
    #: Who deposited it, as a keyed tag only the running mailbox can compute
    #: (for the per-depositor share); empty for envelopes held before tags.
    depositor: bytes = b""
    #: The hash of the depositor's withdraw secret (WITHDRAW_HASH_BYTES), empty
    #: if none was given (``/p2pdm/mailbox/1.0.0``) or two deposits of these
    #: bytes gave different ones: then nobody can withdraw it.
    withdraw: bytes = b""

    @property
    def size(self) -> int:
        return len(self.envelope)


@dataclass(frozen=True, slots=True)
class MailboxLimits:
    """What one mailbox node accepts.

    See ``p2pdm.services.mailbox_server`` for the defaults and their reasons.
    """

    retention_s: int
    max_envelope_bytes: int
    per_recipient_count: int
    per_recipient_bytes: int
    total_count: int
    total_bytes: int
    #: One depositor holds at most 1/depositor_share of a recipient's quota
    #: (count and bytes, at least one envelope); 1: no share limit.
    depositor_share: int = 8
    #: Deposits need a stamp once the recipient's quota is this full (percent).
    stamp_fill_percent: int = 50
    #: The stamp's difficulty in bits (see p2pdm.services.mailbox_server for its cost).
    stamp_bits: int = 16

    def depositor_quota(self) -> tuple[int, int]:
        """(count, bytes) one depositor may hold for one recipient."""
        share = max(1, self.depositor_share)
        count = max(1, math.ceil(self.per_recipient_count / share))
        return count, max(self.max_envelope_bytes, math.ceil(self.per_recipient_bytes / share))

    def needs_stamp(self, recipient_usage: tuple[int, int]) -> bool:
        """True if a deposit for a recipient with this (count, bytes) usage needs a stamp."""
        count, used = recipient_usage
        percent = self.stamp_fill_percent
        return (
            count * 100 >= self.per_recipient_count * percent
            or used * 100 >= self.per_recipient_bytes * percent
        )


def check_deposit(
    limits: MailboxLimits,
    size: int,
    recipient_usage: tuple[int, int],
    total_usage: tuple[int, int],
    depositor_usage: tuple[int, int] = (0, 0),
    *,
    stamped: bool = False,
) -> str:
    """The result code for a deposit of ``size`` bytes given current (count, bytes) usage.

    ``depositor_usage`` is what the same depositor holds for the same
    recipient; ``stamped``: the deposit carries a good stamp.
    """
    if size > limits.max_envelope_bytes:
        return TOO_LARGE
    total_count, total_used = total_usage
    if total_count + 1 > limits.total_count or total_used + size > limits.total_bytes:
        return FULL
    count, used = recipient_usage
    if count + 1 > limits.per_recipient_count or used + size > limits.per_recipient_bytes:
        return OVER_QUOTA
    share_count, share_bytes = limits.depositor_quota()
    if depositor_usage[0] + 1 > share_count or depositor_usage[1] + size > share_bytes:
        return OVER_SHARE
    if not stamped and limits.needs_stamp(recipient_usage):
        return STAMP_REQUIRED
    return OK


# --- requests ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Deposit:
    envelope: bytes
    #: A proof-of-work stamp (STAMP_BYTES), sent only when a mailbox asked for one.
    stamp: bytes | None = None
    #: The withdraw hash (WITHDRAW_HASH_BYTES; MAILBOX_PROTOCOL_WITHDRAW only).
    withdraw: bytes | None = None

    def encode(self) -> bytes:
        fields: dict[str, object] = {"t": "deposit", "env": self.envelope}
        if self.stamp is not None:
            fields["stamp"] = self.stamp
        if self.withdraw is not None:
            fields["wd"] = self.withdraw
        return cbor.encode(fields)


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


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Take back the envelopes deposited under these secrets' hashes."""

    secrets: tuple[bytes, ...]

    def encode(self) -> bytes:
        return cbor.encode({"t": "withdraw", "secrets": list(self.secrets)})


@dataclass(frozen=True, slots=True)
class UnknownRequest:
    """A request type this mailbox does not know (1.1.0 answers it, 1.0.0 disconnects)."""

    kind: str

    def encode(self) -> bytes:
        return cbor.encode({"t": self.kind})


Request = Deposit | ChallengeRequest | Auth | Fetch | Delete | Withdraw | UnknownRequest


def decode_request(data: bytes, *, withdraw: bool = False) -> Request:
    """Decode one client frame; raises a WireError subclass for anything else.

    ``withdraw``: the stream speaks MAILBOX_PROTOCOL_WITHDRAW (``wd`` and
    ``withdraw`` allowed; an unknown type is an UnknownRequest, its other
    fields unread)."""
    f = cbor.decode_map(data, MAX_REQUEST_FRAME_BYTES, "mailbox request")
    kind = f.text("t", 16)
    request: Request
    if kind == "deposit":
        envelope = f.blob("env", max_size=MAX_FRAME_BYTES)
        token = f.blob("stamp", size=STAMP_BYTES) if f.has("stamp") else None
        wd = f.blob("wd", size=WITHDRAW_HASH_BYTES) if withdraw and f.has("wd") else None
        request = Deposit(envelope, token, wd)
    elif withdraw and kind == "withdraw":
        secrets = f.array("secrets", MAX_WITHDRAW_ITEMS)
        if not secrets or any(
            type(s) is not bytes or len(s) != WITHDRAW_SECRET_BYTES for s in secrets
        ):
            raise SchemaError(
                f"mailbox request: 'secrets' must be 1 to {MAX_WITHDRAW_ITEMS} "
                f"byte strings of {WITHDRAW_SECRET_BYTES} bytes"
            )
        request = Withdraw(tuple(secrets))
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
    elif withdraw and kind not in _KNOWN_REQUESTS:
        return UnknownRequest(kind[:16])
    else:
        raise SchemaError(f"mailbox request: unknown type {kind[:16]!r}")
    f.done()
    return request


_KNOWN_REQUESTS: Final = frozenset({"deposit", "challenge", "auth", "fetch", "delete", "withdraw"})


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
    #: For ``stamp_required``: the stamp difficulty asked for; otherwise 0
    #: (and absent on the wire, which older clients decode).
    bits: int = 0

    @property
    def ok(self) -> bool:
        return self.code == OK

    def encode(self) -> bytes:
        fields: dict[str, object] = {
            "t": "result",
            "code": self.code,
            "detail": self.detail[:_MAX_DETAIL_BYTES],
            "until": self.until_s,
            "n": self.count,
        }
        if self.bits:
            fields["bits"] = self.bits
        return cbor.encode(fields)


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
        until, count = f.integer("until", 0, _U63), f.integer("n", 0, _U63)
        bits = f.integer("bits", 1, stamp.MAX_DIFFICULTY) if f.has("bits") else 0
        reply = Result(code, detail, until, count, bits)
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
