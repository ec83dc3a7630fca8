"""The group kinds: ``group_change`` and ``group_msg`` (docs/protocol.md §19.3).

``group_change`` carries a group's change entries (encoded, each verified
later by :mod:`p2pdm.core.groups`, so one bad entry does not sink the
rest) and the sender's heads; ``want`` asks for the entries the sender
lacks. ``group_msg`` wraps a message of another kind (a text, a reaction…)
sent inside a group, with the heads its author saw. Both ride in an inner
message whose ``conv`` is the group id; an older node stores them as
unsupported, so it never shows a group message as a one-to-one one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.errors import SchemaError
from p2pdm.limits import (
    MAX_GROUP_ENTRIES_PER_MESSAGE,
    MAX_GROUP_ENTRY_BYTES,
    MAX_GROUP_PARENTS,
)

__all__ = ["CHANGE_SPEC", "MSG_SPEC", "WRAPPABLE", "GroupChangeBody", "GroupMsgBody"]

#: The kinds a group message may wrap; receipts, typing, timer notices and
#: file chunks stay one-to-one (a group's timer is a change of its log).
WRAPPABLE: Final = frozenset({"text", "media", "location", "react", "edit", "unsend"})
_HASH_BYTES: Final = 32
#: Never stored; the decoder's cap for a body read back all the same.
_MAX_BODY_BYTES: Final = 1 << 20


def _heads(fields: Fields) -> tuple[bytes, ...]:
    raw = fields.array("heads", MAX_GROUP_PARENTS)
    if not raw or any(type(h) is not bytes or len(h) != _HASH_BYTES for h in raw):
        raise SchemaError(f"{fields.what}: heads are 1..{MAX_GROUP_PARENTS} hashes of 32 bytes")
    if list(raw) != sorted(set(raw)):
        raise SchemaError(f"{fields.what}: heads are sorted and distinct")
    return tuple(raw)


@dataclass(frozen=True, slots=True)
class GroupChangeBody:
    heads: tuple[bytes, ...]
    #: Encoded change entries, not yet verified.
    entries: tuple[bytes, ...] = ()
    want: bool = False
    ext: dict[str, Any] | None = None
    kind: Literal["group_change"] = field(default="group_change", init=False)


def decode_change(fields: Fields) -> GroupChangeBody:
    """Raises SchemaError for bad heads, too many or too large entries."""
    heads = _heads(fields)
    raw = fields.array("entries", MAX_GROUP_ENTRIES_PER_MESSAGE)
    if any(type(e) is not bytes or not 0 < len(e) <= MAX_GROUP_ENTRY_BYTES for e in raw):
        raise SchemaError(f"{fields.what}: entries are encoded changes")
    want = fields.boolean("want") if fields.has("want") else False
    ext = decode_ext(fields)
    fields.done()
    return GroupChangeBody(heads, tuple(raw), want, ext)


def encode_change(body: GroupChangeBody) -> dict[str, Any]:
    out: dict[str, Any] = {"heads": list(body.heads), "entries": list(body.entries)}
    if body.want:
        out["want"] = True
    return encode_ext(out, body.ext)


@dataclass(frozen=True, slots=True)
class GroupMsgBody:
    heads: tuple[bytes, ...]
    #: The wrapped message's body (its kind is ``inner.kind``).
    inner: Any
    ext: dict[str, Any] | None = None
    kind: Literal["group_msg"] = field(default="group_msg", init=False)


def decode_msg(fields: Fields) -> GroupMsgBody:
    """Raises SchemaError for bad heads or a wrapped kind a group does not carry."""
    from p2pdm.core.kinds import decode_body  # the registry imports this module

    heads = _heads(fields)
    kind = fields.text("kind", 32, min_chars=1)
    if kind not in WRAPPABLE:
        raise SchemaError(f"{fields.what}: a group message cannot carry a {kind!r}")
    inner = decode_body(kind, fields.submap("body"))
    ext = decode_ext(fields)
    fields.done()
    return GroupMsgBody(heads, inner, ext)


def encode_msg(body: GroupMsgBody) -> dict[str, Any]:
    from p2pdm.core.kinds import encode_body

    out = {"heads": list(body.heads), "kind": body.inner.kind, "body": encode_body(body.inner)}
    return encode_ext(out, body.ext)


CHANGE_SPEC: Final = KindSpec(
    name="group_change",
    body_type=GroupChangeBody,
    decode=decode_change,
    encode=encode_change,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=False,
    # An invitation comes from whoever adds us, contact or not.
    from_strangers=True,
    stored=False,
)

MSG_SPEC: Final = KindSpec(
    name="group_msg",
    body_type=GroupMsgBody,
    decode=decode_msg,
    encode=encode_msg,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=False,
    # Members who are not contacts post in a group this node accepted.
    from_strangers=True,
    stored=False,
)
