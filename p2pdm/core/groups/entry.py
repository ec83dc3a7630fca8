"""A group's change entries: signed, hash-linked records (docs/protocol.md §19.1).

How this works: a :class:`ChangeEntry` is one change to a group (create,
add, remove, leave, rename, photo, promote, demote, timer) signed by its
author with the identity key in domain ``group-change/v1``. It names the
hashes of the changes it follows (``parents``), so a group's entries form a
DAG. :func:`decode_entry` caps the size before parsing, checks every field
against the operation's schema and verifies the signature; :func:`make_entry`
builds and signs one. The group id is the first 16 bytes of the ``create``
entry's hash, so a group has exactly one ``create``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from p2pdm.core import cbor
from p2pdm.core.cbor import Fields
from p2pdm.core.identity import SIGNATURE_BYTES, Identity, PeerId, verify
from p2pdm.errors import SchemaError
from p2pdm.limits import (
    DISAPPEARING_TIMERS_S,
    MAX_GROUP_ENTRY_BYTES,
    MAX_GROUP_MEMBERS,
    MAX_GROUP_NAME_BYTES,
    MAX_GROUP_PARENTS,
    MAX_GROUP_PHOTO_BYTES,
)

__all__ = [
    "ADMIN_OPS",
    "GROUP_ID_BYTES",
    "HASH_BYTES",
    "OPS",
    "ChangeEntry",
    "decode_entry",
    "make_entry",
]

GROUP_ID_BYTES: Final = 16
HASH_BYTES: Final = 32
NONCE_BYTES: Final = 16
_VERSION: Final = 1
_DOMAIN: Final = "group-change/v1"
_PERSON: Final = b"p2pdm-grp-chg-1"
_U64: Final = (1 << 64) - 1

#: Every operation and the fields it carries beyond the common ones.
OPS: Final[dict[str, tuple[str, ...]]] = {
    "create": ("nonce", "name", "members", "timer_s"),
    "add": ("peers",),
    "remove": ("peers",),
    "leave": (),
    "rename": ("name",),
    "photo": ("photo",),
    "promote": ("peers",),
    "demote": ("peers",),
    "timer": ("timer_s",),
}
#: Operations only an admin may make (a ``create`` makes its author one).
ADMIN_OPS: Final = frozenset({"add", "remove", "rename", "photo", "promote", "demote", "timer"})


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    """One signed change; ``hash`` is over its whole encoding, signature included."""

    group: bytes
    author: PeerId
    parents: tuple[bytes, ...]
    ts_ms: int
    op: str
    #: The operation's fields, as decoded (peers as PeerId tuples).
    args: dict[str, Any]
    signature: bytes
    hash: bytes
    encoded: bytes

    @property
    def peers(self) -> tuple[PeerId, ...]:
        """The peers an add/remove/promote/demote names (create: its members)."""
        if self.op == "create":
            return tuple(self.args["members"])
        return tuple(self.args.get("peers", ()))


def _entry_hash(encoded: bytes) -> bytes:
    return hashlib.blake2b(encoded, digest_size=HASH_BYTES, person=_PERSON).digest()


def _wire_args(op: str, args: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key in ("peers", "members"):
            out[key] = [p.raw for p in value]
        elif key == "timer_s" and op == "create" and not value:
            continue  # off: omitted, as in a text body
        else:
            out[key] = value
    return out


def _signed_map(
    group: bytes,
    author: PeerId,
    parents: tuple[bytes, ...],
    ts_ms: int,
    op: str,
    args: dict[str, Any],
) -> dict[str, Any]:
    out = {"v": _VERSION, "author": author.raw, "parents": list(parents), "ts": ts_ms, "op": op}
    if op != "create":
        out["group"] = group
    out.update(_wire_args(op, args))
    return out


def _finish(
    author: PeerId,
    group: bytes | None,
    parents: tuple[bytes, ...],
    ts_ms: int,
    op: str,
    args: dict[str, Any],
    signature: bytes,
) -> ChangeEntry:
    signed = _signed_map(group or b"", author, parents, ts_ms, op, args)
    signed["sig"] = signature
    encoded = cbor.encode(signed)
    digest = _entry_hash(encoded)
    return ChangeEntry(
        group if group is not None else digest[:GROUP_ID_BYTES],
        author,
        parents,
        ts_ms,
        op,
        args,
        signature,
        digest,
        encoded,
    )


def _check_args(op: str, args: dict[str, Any], author: PeerId) -> dict[str, Any]:
    """The operation's fields checked (types already right); raises SchemaError."""
    if set(args) - set(OPS[op]):
        raise SchemaError(f"group change {op}: unknown field(s) {sorted(set(args) - set(OPS[op]))}")
    peers_key = "members" if op == "create" else "peers"
    if peers_key in OPS[op]:
        peers = tuple(args.get(peers_key, ()))
        low = 0 if op == "create" else 1
        if not low <= len(peers) <= MAX_GROUP_MEMBERS - 1 or len(set(peers)) != len(peers):
            raise SchemaError(f"group change {op}: {low}..{MAX_GROUP_MEMBERS - 1} distinct peers")
        if op == "create" and author in peers:
            raise SchemaError("group change create: the author is not listed among the members")
        args[peers_key] = peers
    if "name" in OPS[op]:
        name = args.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SchemaError(f"group change {op}: a name is needed")
        if len(name.encode("utf-8", "surrogatepass")) > MAX_GROUP_NAME_BYTES:
            raise SchemaError(f"a group name is at most {MAX_GROUP_NAME_BYTES} bytes")
    if "timer_s" in OPS[op]:
        timer = args.setdefault("timer_s", 0)
        if type(timer) is not int or timer not in DISAPPEARING_TIMERS_S:
            raise SchemaError(f"group change {op}: timer_s must be one of {DISAPPEARING_TIMERS_S}")
    if op == "photo":
        photo = args.get("photo")
        if photo is not None and (type(photo) is not bytes or len(photo) > MAX_GROUP_PHOTO_BYTES):
            raise SchemaError(f"a group photo is at most {MAX_GROUP_PHOTO_BYTES} bytes")
        args["photo"] = photo
    if op == "create" and (
        type(args.get("nonce")) is not bytes or len(args["nonce"]) != NONCE_BYTES
    ):
        raise SchemaError(f"group change create: a nonce of {NONCE_BYTES} bytes is needed")
    return args


def _check_parents(op: str, parents: tuple[bytes, ...]) -> None:
    if op == "create":
        if parents:
            raise SchemaError("group change create: follows nothing")
        return
    if not 1 <= len(parents) <= MAX_GROUP_PARENTS:
        raise SchemaError(f"group change: 1..{MAX_GROUP_PARENTS} parents")
    if list(parents) != sorted(set(parents)):
        raise SchemaError("group change: parents are sorted and distinct")


def make_entry(
    identity: Identity,
    *,
    group: bytes | None,
    parents: tuple[bytes, ...],
    ts_ms: int,
    op: str,
    **args: Any,
) -> ChangeEntry:
    """Build and sign a change (``group`` None for a ``create``); raises SchemaError."""
    if op not in OPS:
        raise SchemaError(f"no group operation {op!r}")
    if (group is None) != (op == "create"):
        raise SchemaError("a create names no group; every other change names one")
    parents = tuple(sorted(set(parents)))
    _check_parents(op, parents)
    args = _check_args(op, dict(args), identity.peer_id)
    signed = _signed_map(group or b"", identity.peer_id, parents, ts_ms, op, args)
    signature = identity.sign(_DOMAIN, cbor.encode(signed))
    return _finish(identity.peer_id, group, parents, ts_ms, op, args, signature)


def _peer_list(f: Fields, key: str) -> tuple[PeerId, ...]:
    raw = f.array(key, MAX_GROUP_MEMBERS)
    if any(type(p) is not bytes for p in raw):
        raise SchemaError(f"{f.what}: {key} are PeerIDs")
    return tuple(PeerId(p) for p in raw)


def decode_entry(data: bytes) -> ChangeEntry:
    """Decode and verify one change; raises WireError subclasses or SignatureError."""
    f = cbor.decode_map(data, MAX_GROUP_ENTRY_BYTES, "group change")
    if f.integer("v", 0, _U64) != _VERSION:
        raise SchemaError("group change: unknown version")
    op = f.text("op", 16, min_chars=1)
    if op not in OPS:
        raise SchemaError(f"group change: unknown operation {op!r}")
    author = PeerId(f.blob("author", max_size=64))
    raw_parents = f.array("parents", MAX_GROUP_PARENTS)
    if any(type(p) is not bytes or len(p) != HASH_BYTES for p in raw_parents):
        raise SchemaError("group change: parents are 32-byte hashes")
    parents = tuple(raw_parents)
    ts_ms = f.integer("ts", 0, _U64)
    group = None if op == "create" else f.blob("group", size=GROUP_ID_BYTES)
    args: dict[str, Any] = {}
    for key in OPS[op]:
        if key in ("peers", "members"):
            args[key] = _peer_list(f, key)
        elif key in ("name",):
            args[key] = f.text(key, MAX_GROUP_NAME_BYTES, min_chars=1)
        elif key == "timer_s":
            if f.has(key):
                args[key] = f.integer(key, 0, max(DISAPPEARING_TIMERS_S))
        elif key == "photo":
            args[key] = f.opt_blob(key, max_size=MAX_GROUP_PHOTO_BYTES)
        elif key == "nonce":
            args[key] = f.blob(key, size=NONCE_BYTES)
    signature = f.blob("sig", size=SIGNATURE_BYTES)
    f.done()
    _check_parents(op, parents)
    args = _check_args(op, args, author)
    signed = _signed_map(group or b"", author, parents, ts_ms, op, args)
    verify(author, _DOMAIN, cbor.encode(signed), signature)
    entry = _finish(author, group, parents, ts_ms, op, args, signature)
    if entry.encoded != data:
        raise SchemaError("group change: not in canonical form")
    return entry
