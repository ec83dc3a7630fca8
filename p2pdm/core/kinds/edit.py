"""The ``edit`` kind: the author's new text for an earlier text (docs/protocol.md §6.4).

Accepted only from the target's author, within EDIT_WINDOW_MS of the
target's sending time (both signed by the author); the latest edit wins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.model import MESSAGE_ID_BYTES
from p2pdm.limits import MAX_EXT_BYTES, MAX_TEXT_BYTES

__all__ = ["SPEC", "EditBody"]

_MAX_BODY_BYTES: Final = MESSAGE_ID_BYTES + MAX_TEXT_BYTES + MAX_EXT_BYTES + 64


@dataclass(frozen=True, slots=True)
class EditBody:
    target: bytes
    text: str
    ext: dict[str, Any] | None = None
    kind: Literal["edit"] = field(default="edit", init=False)


def decode(fields: Fields) -> EditBody:
    """Raises SchemaError for a bad target id, an empty or over-long text."""
    target = fields.blob("target", size=MESSAGE_ID_BYTES)
    text = fields.text("text", MAX_TEXT_BYTES, min_chars=1)
    ext = decode_ext(fields)
    fields.done()
    return EditBody(target, text, ext)


def encode(body: EditBody) -> dict[str, Any]:
    return encode_ext({"target": body.target, "text": body.text}, body.ext)


def target_ids(body: EditBody) -> tuple[bytes, ...]:
    return (body.target,)


SPEC: Final = KindSpec(
    name="edit",
    body_type=EditBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=True,
    from_strangers=True,
    stored=False,
    target_ids=target_ids,
)
