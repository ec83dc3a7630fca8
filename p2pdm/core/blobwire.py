"""Frames of ``/p2pdm/blob/1.0.0``: a recipient pulls sealed chunks (docs/protocol.md §17.5).

How this works: the fetcher opens a stream and sends a :class:`BlobRequest`
(blob id, first chunk, how many). The server answers one :class:`BlobReply`:
``ok`` with the number of chunks that follow (fewer near the end, none past
it), then that many frames, each one sealed chunk as raw bytes; or not
``ok``, which says only "not here for you": the same answer whether the
blob does not exist, or exists and was never sent to this peer. The fetcher
may send further requests on the same stream, before the chunks of the
earlier ones have arrived (the server answers them in order; the fetcher
bounds how many chunks it has asked for), then closes its side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from p2pdm.core import cbor
from p2pdm.core.blob import BLOB_ID_BYTES, CHUNK_BYTES, MAC_BYTES
from p2pdm.limits import MAX_FILE_BYTES

__all__ = [
    "BLOB_PROTOCOL",
    "MAX_BLOB_CONTROL_BYTES",
    "MAX_CHUNKS_PER_REQUEST",
    "MAX_CHUNK_FRAME_BYTES",
    "BlobReply",
    "BlobRequest",
]

BLOB_PROTOCOL: Final = "/p2pdm/blob/1.0.0"
#: Chunks one request may ask for: 16 x 256 KiB = 4 MiB a reply, under the
#: ~4 MiB a py-libp2p stream buffers before a slow reader breaks the
#: writer. A fetcher keeps more than one request out to keep a link busy
#: (the reference node: services.limits.MAX_CHUNKS_AHEAD) and reads its
#: stream while it checks chunks, so the buffers drain.
MAX_CHUNKS_PER_REQUEST: Final = 16
#: A request or reply: an id and two small numbers.
MAX_BLOB_CONTROL_BYTES: Final = 128
#: A chunk frame: one sealed chunk.
MAX_CHUNK_FRAME_BYTES: Final = CHUNK_BYTES + MAC_BYTES
#: Highest chunk index any blob can have.
_MAX_CHUNK_INDEX: Final = MAX_FILE_BYTES // CHUNK_BYTES


@dataclass(frozen=True, slots=True)
class BlobRequest:
    blob_id: bytes
    first: int
    count: int

    def encode(self) -> bytes:
        return cbor.encode({"blob": self.blob_id, "from": self.first, "count": self.count})

    @classmethod
    def decode(cls, data: bytes) -> BlobRequest:
        """Raises WireError for anything off the schema."""
        fields = cbor.decode_map(data, MAX_BLOB_CONTROL_BYTES, "blob request")
        request = cls(
            fields.blob("blob", size=BLOB_ID_BYTES),
            fields.integer("from", 0, _MAX_CHUNK_INDEX),
            fields.integer("count", 1, MAX_CHUNKS_PER_REQUEST),
        )
        fields.done()
        return request


@dataclass(frozen=True, slots=True)
class BlobReply:
    ok: bool
    #: Chunk frames that follow an ``ok`` reply.
    count: int = 0

    def encode(self) -> bytes:
        return cbor.encode({"ok": True, "count": self.count} if self.ok else {"ok": False})

    @classmethod
    def decode(cls, data: bytes) -> BlobReply:
        """Raises WireError for anything off the schema."""
        fields = cbor.decode_map(data, MAX_BLOB_CONTROL_BYTES, "blob reply")
        ok = fields.boolean("ok")
        count = fields.integer("count", 0, MAX_CHUNKS_PER_REQUEST) if ok else 0
        fields.done()
        return cls(ok, count)
