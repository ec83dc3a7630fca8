"""What every message kind is made of: its spec, and the shared ``ext`` rule.

How this works: a kind is one :class:`KindSpec` — its name, its frozen body
type, a strict decoder from a :class:`~p2pdm.core.cbor.Fields` map ending in
``Fields.done()``, an encoder back to the CBOR map, and four flags saying
what an accepted message of the kind does (see docs/protocol.md §6):

- ``shown``: it appears in the conversation;
- ``targets``: it points at earlier messages (``target_ids`` names them);
- ``from_strangers``: a stranger may send it (else it is accepted, not kept);
- ``stored``: it is kept in the message store under its id.

Every known kind's body may carry ``ext``, a map of optional extension
fields a newer version adds without a wire version bump. This version
checks its shape and bounds, keeps it (it is signed, and stored with the
body) and otherwise ignores it. :class:`UnknownBody` holds a kind this
version does not know, as decoded CBOR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

from p2pdm.core import cbor
from p2pdm.core.cbor import Fields
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_EXT_BYTES, MAX_EXT_FIELDS, MAX_EXT_KEY_BYTES

__all__ = [
    "EXT_FIELD",
    "MAX_KIND_BYTES",
    "Body",
    "KindSpec",
    "UnknownBody",
    "decode_ext",
    "encode_ext",
]

#: The reserved body field that holds extension fields.
EXT_FIELD: Final = "ext"
#: Longest kind name on the wire, in UTF-8 bytes: a short word, not data.
MAX_KIND_BYTES: Final = 32


class Body(Protocol):
    """A decoded message body: it knows the kind it belongs to."""

    @property
    def kind(self) -> str: ...


B = TypeVar("B")


def _no_targets(body: Any) -> tuple[bytes, ...]:
    return ()


@dataclass(frozen=True, slots=True)
class KindSpec(Generic[B]):
    """One message kind: its body type, decoder, encoder and flags."""

    name: str
    body_type: type[B]
    #: Reads the body map; raises SchemaError for anything off the schema.
    decode: Callable[[Fields], B]
    #: The body's CBOR map (without its kind).
    encode: Callable[[B], dict[str, Any]]
    #: Largest canonical body this kind can have: the cap before parsing a
    #: stored body (the wire path is capped by the frame).
    max_body_bytes: int
    shown: bool
    targets: bool
    from_strangers: bool
    stored: bool
    #: The earlier messages a targeting kind points at.
    target_ids: Callable[[B], tuple[bytes, ...]] = field(default=_no_targets)

    def __post_init__(self) -> None:
        # The store keeps a message in its conversation or not at all: a kind
        # stored but hidden (an edit kept to apply later) needs a store change first.
        if self.shown != self.stored:
            raise ValueError(f"kind {self.name!r}: a kind is shown if and only if it is stored")
        if len(self.name.encode()) > MAX_KIND_BYTES or not self.name:
            raise ValueError(f"kind {self.name!r}: a name is 1..{MAX_KIND_BYTES} bytes")

    def decode_bytes(self, data: bytes) -> B:
        """Decode a stored body; raises WireError (size first, then schema)."""
        return self.decode(cbor.decode_map(data, self.max_body_bytes, f"{self.name} body"))


@dataclass(frozen=True, slots=True)
class UnknownBody:
    """A kind this version does not understand, kept as decoded CBOR."""

    kind: str
    fields: dict[str, Any]


def decode_ext(fields: Fields) -> dict[str, Any] | None:
    """The body's optional ``ext`` map, checked; raises SchemaError.

    Absent or null is none; present, it is a non-empty map of at most
    MAX_EXT_FIELDS text keys of 1..MAX_EXT_KEY_BYTES bytes, whose canonical
    encoding is at most MAX_EXT_BYTES. Values may be anything the CBOR
    subset allows; this version does not read them.
    """
    ext = fields.opt_submap(EXT_FIELD)
    if ext is None:
        return None
    raw = ext.raw()
    what = f"{fields.what}.{EXT_FIELD}"
    if not raw or len(raw) > MAX_EXT_FIELDS:
        raise SchemaError(f"{what}: must hold 1..{MAX_EXT_FIELDS} fields (omit it when empty)")
    for key in raw:
        if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_EXT_KEY_BYTES:
            raise SchemaError(f"{what}: keys are 1..{MAX_EXT_KEY_BYTES} bytes of UTF-8")
    if len(cbor.encode(raw)) > MAX_EXT_BYTES:
        raise SchemaError(f"{what}: more than {MAX_EXT_BYTES} bytes")
    return dict(raw)


def encode_ext(out: dict[str, Any], ext: dict[str, Any] | None) -> dict[str, Any]:
    """``out`` with ``ext`` added when there is one (an absent ext is omitted)."""
    if ext is not None:
        out[EXT_FIELD] = dict(ext)
    return out
