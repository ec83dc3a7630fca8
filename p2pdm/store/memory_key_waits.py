"""Messages waiting for their recipient's prekeys in the in-memory store
(as :mod:`p2pdm.store.sqlite_key_waits`)."""

from __future__ import annotations

from p2pdm.core.identity import PeerId
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_KEY_WAITS
from p2pdm.store.key_waits import KeyWait
from p2pdm.store.memory_state import Dicts

__all__ = ["KeyWaitDicts"]


class KeyWaitDicts(Dicts):
    def hold_for_keys(self, wait: KeyWait) -> None:
        waits = self._live().key_waits
        if wait.message_id not in waits and len(self._key_waits()) >= MAX_KEY_WAITS:
            raise StoreError(f"{MAX_KEY_WAITS} messages already wait for their recipients' keys")
        waits[wait.message_id] = wait

    def key_waits(self, peer: PeerId | None = None) -> list[KeyWait]:
        found = [w for w in self._key_waits() if peer is None or w.peer == peer]
        seq_of = self._live().seq_of  # the order the messages were written
        return sorted(found, key=lambda w: seq_of[w.message_id])[:MAX_KEY_WAITS]

    def drop_key_wait(self, message_id: bytes) -> bool:
        return self._live().key_waits.pop(message_id, None) is not None

    def _key_waits(self) -> list[KeyWait]:
        """The rows whose message is still stored (SQLite's ON DELETE CASCADE)."""
        state = self._live()
        for gone in [m for m in state.key_waits if m not in state.seq_of]:
            del state.key_waits[gone]
        return list(state.key_waits.values())
