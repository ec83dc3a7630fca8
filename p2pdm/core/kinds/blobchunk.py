"""The ``blob_chunk`` kind: one sealed chunk of a file pushed to an offline
recipient through its mailboxes (docs/protocol.md §17.7).

Not shown and not stored: the recipient checks the chunk against the file's
key (from the ``media`` message before it) and writes it if it is the next
one it needs; any other chunk is ignored (the pull protocol fetches what is
missing). Strangers may not push chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from p2pdm.core.blob import BLOB_ID_BYTES, CHUNK_BYTES, MAC_BYTES
from p2pdm.core.cbor import Fields
from p2pdm.core.kinds.base import KindSpec, decode_ext, encode_ext
from p2pdm.limits import MAX_EXT_BYTES, MAX_FILE_BYTES

__all__ = ["SPEC", "BlobChunkBody"]

_MAX_INDEX: Final = MAX_FILE_BYTES // CHUNK_BYTES
_MAX_BODY_BYTES: Final = CHUNK_BYTES + MAC_BYTES + BLOB_ID_BYTES + MAX_EXT_BYTES + 64


@dataclass(frozen=True, slots=True)
class BlobChunkBody:
    blob_id: bytes
    index: int
    data: bytes
    #: Extension fields (docs/protocol.md §6.4), kept and otherwise ignored.
    ext: dict[str, Any] | None = None
    kind: Literal["blob_chunk"] = field(default="blob_chunk", init=False)


def decode(fields: Fields) -> BlobChunkBody:
    """Raises SchemaError for a bad id, index, ext or a chunk over its size."""
    body = BlobChunkBody(
        fields.blob("blob", size=BLOB_ID_BYTES),
        fields.integer("index", 0, _MAX_INDEX),
        fields.blob("data", max_size=CHUNK_BYTES + MAC_BYTES),
        decode_ext(fields),
    )
    fields.done()
    return body


def encode(body: BlobChunkBody) -> dict[str, Any]:
    return encode_ext({"blob": body.blob_id, "index": body.index, "data": body.data}, body.ext)


SPEC: Final = KindSpec(
    name="blob_chunk",
    body_type=BlobChunkBody,
    decode=decode,
    encode=encode,
    max_body_bytes=_MAX_BODY_BYTES,
    shown=False,
    targets=False,
    from_strangers=False,
    stored=False,
)
