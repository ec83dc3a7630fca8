"""The ``receipt`` kind: messages were delivered or read (docs/protocol.md §6.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.core.model import MESSAGE_ID_BYTES
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_EXT_BYTES, MAX_RECEIPT_IDS

__all__ = ["SPEC", "ReceiptBody"]

#: A stored receipt body: its ids (17 bytes of CBOR each), status, ext, headers.
_MAX_BODY_BYTES: Final = MAX_RECEIPT_IDS * (MESSAGE_ID_BYTES + 1) + MAX_EXT_BYTES + 128


@dataclass(frozen=True, slots=True)
class ReceiptBody:
    status: Literal["delivered", "read"]
    ids: tuple[bytes, ...]
    #: Extension fields of a newer version, kept and otherwise ignored.
    ext: dict[str, Any] | None = None
    kind: Literal["receipt"] = field(default="receipt", init=False)


def decode(fields: Fields) -> ReceiptBody:
    """Raises SchemaError for another status, 0 or over MAX_RECEIPT_IDS ids, or a bad id."""
    status = fields.text("status", 16)
    if status not in ("delivered", "read"):
        raise SchemaError(f"{fields.what}: unknown receipt status {status!r}")
    ids = fields.array("ids", MAX_RECEIPT_IDS)
    if not ids or any(type(i) is not bytes or len(i) != MESSAGE_ID_BYTES for i in ids):
        raise SchemaError(
            f"{fields.what}: 'ids' must be 1..{MAX_RECEIPT_IDS} {MESSAGE_ID_BYTES}-byte ids"
        )
    ext = decode_ext(fields)
    fields.done()
    return ReceiptBody("delivered" if status == "delivered" else "read", tuple(ids), ext)


def encode(body: ReceiptBody) -> dict[str, Any]:
    return encode_ext({"status": body.status, "ids": list(body.ids)}, body.ext)


def target_ids(body: ReceiptBody) -> tuple[bytes, ...]:
    return body.ids


SPEC: Final = KindSpec(
    name="receipt",
    body_type=ReceiptBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=True,
    from_strangers=True,
    stored=False,
    target_ids=target_ids,
)
