"""Signed p2pdm records in the DHT: how a node publishes its prekey bundle.

How this works: a node puts one record under ``/p2pdm/<PeerID>``: its
prekey bundle, the mailboxes that hold its messages, the profile its
person chose to publish (if any: :mod:`p2pdm.core.profile`), a sequence
number that only grows, and its identity key's signature (domain
``record/v1``). Every p2pdm node registers :func:`validate` and
:func:`select` for the ``p2pdm`` namespace, so a DHT holder refuses records
not signed by the PeerID in their key, and keeps the newest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from p2pdm.core import cbor
from p2pdm.core.identity import SIGNATURE_BYTES, Identity, PeerId, verify
from p2pdm.core.prekeys import verify_bundle
from p2pdm.core.profile import Profile
from p2pdm.core.wire import WIRE_VERSION, PrekeyBundle
from p2pdm.errors import SchemaError, SignatureError, UnsupportedVersion, WireError
from p2pdm.limits import MAX_ADDR_BYTES, MAX_ADDRS, MAX_NODE_RECORD_BYTES

__all__ = ["RECORD_NAMESPACE", "NodeRecord", "record_key", "select", "validate"]

RECORD_NAMESPACE: Final = "p2pdm"
_DOMAIN: Final = "record/v1"
_U63: Final = (1 << 63) - 1
#: Relayed addresses in a record: a node keeps reservations on a couple of
#: relays, each with a few addresses; more is padding, not reachability.
MAX_RELAY_ADDRS: Final = 8
#: Records a :class:`RecordChecker` keeps as checked, by their bytes: the same
#: record reaches a DHT node again and again (a lookup's answers from up to 20
#: holders are the same bytes; a PUT is compared with the copy held), and
#: checking it means decoding it and verifying two signatures. A few dozen
#: cover one lookup's answers and the records asked for most; ~1 KB each
#: without a profile picture (up to MAX_AVATAR_BYTES more with one).
CHECKED_RECORDS: Final = 32


def record_key(peer: PeerId) -> str:
    """The DHT key of ``peer``'s record."""
    return f"/{RECORD_NAMESPACE}/{peer}"


@dataclass(frozen=True, slots=True)
class NodeRecord:
    peer: PeerId
    seq: int
    bundle: PrekeyBundle
    #: Mailbox nodes that hold this node's envelopes (multiaddrs), newest first.
    mailboxes: tuple[str, ...] = ()
    #: The profile its person published; None (no ``profile`` field) if none.
    profile: Profile | None = None

    #: Relayed addresses (``…/p2p/<relay>/p2p-circuit/p2p/<peer>``) where this
    #: node holds a reservation: how a node behind NAT is reached. Optional on
    #: the wire: absent when empty, so records without it keep their bytes.
    relays: tuple[str, ...] = ()

    def _signed_map(self) -> dict[str, Any]:
        signed: dict[str, Any] = {
            "v": WIRE_VERSION,
            "peer": self.peer.raw,
            "seq": self.seq,
            "bundle": self.bundle.to_map(),
            "mailboxes": list(self.mailboxes),
        }
        if self.profile is not None and not self.profile.empty:
            signed["profile"] = self.profile.to_map()
        if self.relays:
            signed["relays"] = list(self.relays)
        return signed

    def content_digest(self) -> bytes:
        """A digest of what the record says, its ``seq`` aside: two publications
        with the same digest tell the network nothing new."""
        content = {k: v for k, v in self._signed_map().items() if k != "seq"}
        return hashlib.blake2b(cbor.encode(content), digest_size=16).digest()

    def sign(self, identity: Identity) -> bytes:
        """Encode and sign; ``identity`` must be the record's peer."""
        if identity.peer_id != self.peer:
            raise ValueError("a record is signed by the peer it names")
        signed = self._signed_map()
        return cbor.encode({**signed, "sig": identity.sign(_DOMAIN, cbor.encode(signed))})

    @classmethod
    def decode(cls, data: bytes) -> NodeRecord:
        """Decode and verify; raises WireError or SignatureError subclasses."""
        f = cbor.decode_map(data, MAX_NODE_RECORD_BYTES, "node record")
        version = f.integer("v", 0, _U63)
        if version != WIRE_VERSION:
            raise UnsupportedVersion(f"node record version {version}")
        peer = PeerId(f.blob("peer", max_size=64))
        seq = f.integer("seq", 0, _U63)
        bundle = PrekeyBundle.from_fields(f.submap("bundle"))
        mailboxes = f.array("mailboxes", MAX_ADDRS)
        if any(type(m) is not str or len(m.encode()) > MAX_ADDR_BYTES for m in mailboxes):
            raise SchemaError("node record: mailboxes must be short multiaddr strings")
        profile_fields = f.opt_submap("profile")
        profile = None if profile_fields is None else Profile.from_fields(profile_fields)
        relays = f.array("relays", MAX_RELAY_ADDRS) if f.has("relays") else []
        if not relays and f.has("relays"):
            raise SchemaError("node record: relays is left out when empty")
        circuit = f"/p2p-circuit/p2p/{peer}"
        if any(type(r) is not str or len(r.encode()) > MAX_ADDR_BYTES for r in relays) or not all(
            r.endswith(circuit) for r in relays
        ):
            raise SchemaError("node record: relays must be short circuit addresses of its peer")
        signature = f.blob("sig", size=SIGNATURE_BYTES)
        f.done()
        record = cls(peer, seq, bundle, tuple(mailboxes), profile, tuple(relays))
        verify(peer, _DOMAIN, cbor.encode(record._signed_map()), signature)
        if bundle.peer != peer:
            raise SignatureError("node record carries another peer's bundle")
        verify_bundle(bundle)
        return record


def validate(key: str, value: bytes) -> NodeRecord:
    """Check a record found under ``key``; raises WireError or SignatureError."""
    prefix = f"/{RECORD_NAMESPACE}/"
    if not key.startswith(prefix):
        raise SchemaError(f"not a p2pdm record key: {key[:80]!r}")
    named = PeerId.parse(key[len(prefix) :])
    record = NodeRecord.decode(value)
    if record.peer != named:
        raise SignatureError("record is signed by another peer than its key names")
    return record


def select(
    key: str,
    values: Sequence[bytes],
    check: Callable[[str, bytes], NodeRecord] = validate,
) -> int:
    """Index of the newest valid record among ``values`` (highest seq); raises if none is valid.

    ``check`` validates one value (:func:`validate`, or a node's
    :meth:`RecordChecker.validate`)."""
    best, best_seq = -1, -1
    for i, value in enumerate(values):
        try:
            seq = check(key, value).seq
        except (WireError, SignatureError):
            continue
        if seq > best_seq:
            best, best_seq = i, seq
    if best < 0:
        raise SchemaError("no valid record")
    return best


class RecordChecker:
    """:func:`validate` and :func:`select` for one DHT node, remembering the last
    CHECKED_RECORDS records found valid (same answers: a record's bytes are
    valid under its key or not, whenever they are checked)."""

    def __init__(self) -> None:
        self._valid: dict[tuple[str, bytes], NodeRecord] = {}

    def validate(self, key: str, value: bytes) -> NodeRecord:
        """As :func:`validate`."""
        entry = (key, value)
        record = self._valid.pop(entry, None)
        if record is None:
            record = validate(key, value)  # raises for a bad one: not kept
            if len(self._valid) >= CHECKED_RECORDS:
                del self._valid[next(iter(self._valid))]  # the least recent
        self._valid[entry] = record  # most recent last
        return record

    def select(self, key: str, values: Sequence[bytes]) -> int:
        """As :func:`select`."""
        return select(key, values, self.validate)
