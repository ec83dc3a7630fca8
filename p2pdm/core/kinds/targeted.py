"""What the kinds that act on one earlier message share (``react``, ``edit``,
``unsend``): a ``target`` message id, the kind's own fields, optional ``ext``.

How this works: :func:`targeting_spec` builds the kind's :class:`KindSpec`
from its body type and the readers of its own fields. The decoder reads
``target`` first, then those fields in order, then ``ext``, and rejects any
other field; the encoder writes the same map back. Such a kind is never
shown or stored as a message of its own, and a stranger may send it (what it
may change is checked against the target, docs/protocol.md §6.6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar, cast

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.model import MESSAGE_ID_BYTES
from p2pdm.limits import MAX_EXT_BYTES

__all__ = ["TARGET_FIELD", "TargetingBody", "targeting_spec"]

#: The body field naming the earlier message.
TARGET_FIELD: Final = "target"
#: Room for the map's own framing and field names beside the values.
_FRAMING_BYTES: Final = 64


class TargetingBody(Protocol):
    """A body that points at one earlier message."""

    @property
    def target(self) -> bytes: ...

    @property
    def ext(self) -> dict[str, Any] | None: ...


T = TypeVar("T", bound=TargetingBody)

#: One of the kind's own fields: its name and how to read it (raises SchemaError).
FieldReader = tuple[str, Callable[[Fields], Any]]


def targeting_spec(
    name: str,
    body_type: type[T],
    fields: tuple[FieldReader, ...] = (),
    *,
    max_fields_bytes: int = 0,
) -> KindSpec[T]:
    """The spec of kind ``name`` whose body is ``body_type(target, *fields, ext)``
    (as keywords); ``max_fields_bytes`` bounds the encoded own fields."""
    make = cast(Callable[..., T], body_type)

    def decode(read: Fields) -> T:
        target = read.blob(TARGET_FIELD, size=MESSAGE_ID_BYTES)
        values = {key: reader(read) for key, reader in fields}
        ext = decode_ext(read)
        read.done()
        return make(target=target, ext=ext, **values)

    def encode(body: T) -> dict[str, Any]:
        out: dict[str, Any] = {TARGET_FIELD: body.target}
        for key, _ in fields:
            out[key] = getattr(body, key)
        return encode_ext(out, body.ext)

    def target_ids(body: T) -> tuple[bytes, ...]:
        return (body.target,)

    return KindSpec(
        name=name,
        body_type=body_type,
        decode=decode,
        encode=encode,
        max_body_bytes=MESSAGE_ID_BYTES + max_fields_bytes + MAX_EXT_BYTES + _FRAMING_BYTES,
        shown=False,
        targets=True,
        from_strangers=True,
        stored=False,
        target_ids=target_ids,
    )
