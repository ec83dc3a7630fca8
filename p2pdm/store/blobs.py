"""What the store knows of blobs, shared by both stores.

How this works: a :class:`BlobRecord` is one file this node sent or
receives: its id (the SHA-256 of the sealed blob), the key it is sealed
with, size, digest, MIME type and name, who it came from (None for our
own) and how much of it is here (``have``: chunks verified, in order). A
blob is *referenced* by each message that carries it, once per peer the
message is to or from (``add_blob_ref``): a peer may fetch a blob only if a
message of ours referenced it for that peer. A blob no message references
any more is garbage: :meth:`BlobIndex.unreferenced_blobs` names those, and
the node deletes row and file (:meth:`~p2pdm.node.media.MediaLibrary.collect`).
References go with their message and with its body, in the transaction
that removes it (SQLite: ``ON DELETE CASCADE`` and the store's body
erasure; memory: a reference to a missing message counts as none), so
deleting, unsending or expiring a message releases its blobs even if the
node stops before the files are deleted: the start-up sweep finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from p2pdm.core.identity import PeerId

__all__ = ["BlobIndex", "BlobRecord", "BlobState"]

#: ``local``: our own file, whole; ``pending``: announced to us, fetched
#: only when someone asks (over the auto-download limit, or from a
#: stranger); ``fetching``: wanted, fetched whenever its sender is
#: reachable (``have`` says how far it got); ``ready``: whole and checked;
#: ``failed``: the sender's copy did not match what its message promised.
BlobState = Literal["local", "pending", "fetching", "ready", "failed"]


@dataclass(frozen=True, slots=True)
class BlobRecord:
    blob_id: bytes
    key: bytes
    size: int
    digest: bytes
    mime: str
    name: str
    #: Who sends it to us; None for a blob this node made.
    source: PeerId | None
    state: BlobState
    #: Chunks verified and written, from the first, in order.
    have: int
    created_at_ms: int
    #: Why the last fetch stopped, for people ("" when nothing went wrong).
    detail: str = ""
    thumbnail: bytes | None = None
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    waveform: bytes | None = None


class BlobIndex(Protocol):
    """The blob rows of a store (both stores implement it)."""

    def put_blob(self, blob: BlobRecord) -> bool:
        """Add ``blob`` unless its id is known; True if it was added."""
        ...

    def get_blob(self, blob_id: bytes) -> BlobRecord | None: ...

    def set_blob_progress(self, blob_id: bytes, state: BlobState, have: int, detail: str) -> None:
        """Record how far a fetch got; raises NotFound for an unknown blob."""
        ...

    def add_blob_ref(self, blob_id: bytes, message_id: bytes, peer: PeerId) -> None:
        """``message_id`` carries the blob to or from ``peer`` (idempotent)."""
        ...

    def blob_shared_with(self, blob_id: bytes, peer: PeerId) -> bool:
        """True if a stored message of ours carries the blob to ``peer``."""
        ...

    def blobs_of_message(self, message_id: bytes) -> list[bytes]:
        """The blob ids a message references, in the order they were added."""
        ...

    def release_message_blobs(self, message_id: bytes) -> int:
        """Drop the message's references (the message itself stays); how many."""
        ...

    def blobs_to_fetch(self) -> list[BlobRecord]:
        """Blobs from peers in state ``fetching``, oldest first."""
        ...

    def unreferenced_blobs(self, created_before_ms: int) -> list[bytes]:
        """Ids of blobs no message references: every one a message carried
        once (released), and uploads no message carried made before
        ``created_before_ms`` (a fresh upload waits for its message)."""
        ...

    def delete_blob(self, blob_id: bytes) -> bool: ...

    def follow_message(self, envelope_id: bytes, message_id: bytes) -> None:
        """The queued envelope ``envelope_id`` carries a chunk of a file of
        ``message_id`` (forgotten with the envelope)."""
        ...

    def remove_followers_of(self, message_id: bytes) -> int:
        """Drop the queued envelopes that follow ``message_id`` (it was
        unsent), with their deposits; returns how many."""
        ...
