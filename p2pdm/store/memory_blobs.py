"""The in-memory store's blob rows and their references (see ``blobs.py``)."""

from __future__ import annotations

from dataclasses import replace

from p2pdm.core.identity import PeerId
from p2pdm.core.model import Direction
from p2pdm.errors import NotFound
from p2pdm.store.blobs import BlobRecord, BlobState
from p2pdm.store.memory_state import Dicts, withdraw_deposits

__all__ = ["BlobDicts"]


class BlobDicts(Dicts):
    """Blobs of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def _refs(self) -> list[tuple[bytes, bytes, PeerId]]:
        """Live references: those whose message is still stored."""
        state = self._live()
        return [ref for ref in state.blob_refs if ref[1] in state.seq_of]

    def put_blob(self, blob: BlobRecord) -> bool:
        blobs = self._live().blobs
        if blob.blob_id in blobs:
            return False
        blobs[blob.blob_id] = blob
        return True

    def get_blob(self, blob_id: bytes) -> BlobRecord | None:
        return self._live().blobs.get(blob_id)

    def set_blob_progress(self, blob_id: bytes, state: BlobState, have: int, detail: str) -> None:
        blobs = self._live().blobs
        if blob_id not in blobs:
            raise NotFound(f"no blob {blob_id.hex()}")
        blobs[blob_id] = replace(blobs[blob_id], state=state, have=have, detail=detail)

    def add_blob_ref(self, blob_id: bytes, message_id: bytes, peer: PeerId) -> None:
        refs = self._live().blob_refs
        if (blob_id, message_id, peer) not in refs:
            refs.append((blob_id, message_id, peer))
        if blob_id in self._live().blobs:
            self._live().blobs_attached.add(blob_id)

    def blob_shared_with(self, blob_id: bytes, peer: PeerId) -> bool:
        state = self._live()
        for blob, message_id, to in self._refs():
            if blob == blob_id and to == peer:
                message = state.messages[state.seq_of[message_id]]
                if message.direction is Direction.OUT:
                    return True
        return False

    def blobs_of_message(self, message_id: bytes) -> list[bytes]:
        return list(dict.fromkeys(b for b, m, _ in self._live().blob_refs if m == message_id))

    def release_message_blobs(self, message_id: bytes) -> int:
        state = self._live()
        kept = [ref for ref in state.blob_refs if ref[1] != message_id]
        released = len(state.blob_refs) - len(kept)
        state.blob_refs = kept
        return released

    def blobs_to_fetch(self) -> list[BlobRecord]:
        found = [b for b in self._live().blobs.values() if b.state == "fetching"]
        return sorted(found, key=lambda b: (b.created_at_ms, b.blob_id))

    def unreferenced_blobs(self, created_before_ms: int) -> list[bytes]:
        referenced = {blob for blob, _, _ in self._refs()}
        attached = self._live().blobs_attached
        return [
            b.blob_id
            for b in self._live().blobs.values()
            if (b.blob_id in attached or b.created_at_ms < created_before_ms)
            and b.blob_id not in referenced
        ]

    def delete_blob(self, blob_id: bytes) -> bool:
        state = self._live()
        state.blob_refs = [ref for ref in state.blob_refs if ref[0] != blob_id]
        state.blobs_attached.discard(blob_id)
        return state.blobs.pop(blob_id, None) is not None

    def follow_message(self, envelope_id: bytes, message_id: bytes) -> None:
        state = self._live()
        if envelope_id in state.outbox:
            state.followers[envelope_id] = message_id

    def remove_followers_of(self, message_id: bytes) -> int:
        state = self._live()
        for envelope_id in [e for e in state.followers if e not in state.outbox]:
            del state.followers[envelope_id]  # gone with its envelope
        ids = [e for e, m in state.followers.items() if m == message_id]
        for envelope_id in ids:
            del state.followers[envelope_id]
            state.outbox.pop(envelope_id, None)
            withdraw_deposits(state, envelope_id)
        return len(ids)
