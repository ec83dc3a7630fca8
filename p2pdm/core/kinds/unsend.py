"""The ``unsend`` kind: the author removes an earlier message for everyone
(docs/protocol.md §6.5).

Accepted only from the target's author, at any time; it wins even when it
arrives before its target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.model import MESSAGE_ID_BYTES
from p2pdm.limits import MAX_EXT_BYTES

__all__ = ["SPEC", "UnsendBody"]

_MAX_BODY_BYTES: Final = MESSAGE_ID_BYTES + MAX_EXT_BYTES + 64


@dataclass(frozen=True, slots=True)
class UnsendBody:
    target: bytes
    ext: dict[str, Any] | None = None
    kind: Literal["unsend"] = field(default="unsend", init=False)


def decode(fields: Fields) -> UnsendBody:
    """Raises SchemaError for a bad target id."""
    target = fields.blob("target", size=MESSAGE_ID_BYTES)
    ext = decode_ext(fields)
    fields.done()
    return UnsendBody(target, ext)


def encode(body: UnsendBody) -> dict[str, Any]:
    return encode_ext({"target": body.target}, body.ext)


def target_ids(body: UnsendBody) -> tuple[bytes, ...]:
    return (body.target,)


SPEC: Final = KindSpec(
    name="unsend",
    body_type=UnsendBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=True,
    from_strangers=True,
    stored=False,
    target_ids=target_ids,
)
