"""The in-memory store's mailbox: envelopes this node holds for others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import StoredEnvelope
from p2pdm.store.base import (
    envelope_digest,
    page_limit,
)
from p2pdm.store.memory_state import Dicts, MemoryState

__all__ = ["MailboxDicts"]


class MailboxDicts(Dicts):
    """The mailbox of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def mailbox_add(self, item: StoredEnvelope) -> tuple[StoredEnvelope, bool]:
        state = self._live()
        key = (item.recipient, envelope_digest(item.envelope))
        held = state.mailbox_digests.get(key)
        if held is not None:
            stored = state.mailbox[held]
            if stored.withdraw and stored.withdraw != item.withdraw:
                # Two depositors, two secrets: neither may take it back alone.
                stored = state.mailbox[held] = replace(stored, withdraw=b"")
            return stored, False
        state.mailbox_seq += 1
        stored = replace(item, seq=state.mailbox_seq)
        state.mailbox[stored.seq] = stored
        state.mailbox_digests[key] = stored.seq
        return stored, True

    def mailbox_fetch(
        self, recipient: PeerId, after_seq: int, now_ms: int, limit: int
    ) -> list[StoredEnvelope]:
        size = page_limit(limit)
        found = [
            e
            for e in self._live().mailbox.values()
            if e.recipient == recipient and e.seq > after_seq and e.expires_at_ms > now_ms
        ]
        return found[:size]

    def _mailbox_drop(self, state: MemoryState, seqs: list[int]) -> int:
        for seq in seqs:
            item = state.mailbox.pop(seq)
            del state.mailbox_digests[(item.recipient, envelope_digest(item.envelope))]
        return len(seqs)

    def mailbox_delete(self, recipient: PeerId, seqs: Sequence[int]) -> int:
        state = self._live()
        held = state.mailbox
        mine = {seq for seq in seqs if seq in held and held[seq].recipient == recipient}
        return self._mailbox_drop(state, sorted(mine))

    def mailbox_usage(
        self, recipient: PeerId | None = None, depositor: bytes | None = None
    ) -> tuple[int, int]:
        held = [
            e.size
            for e in self._live().mailbox.values()
            if (recipient is None or e.recipient == recipient)
            and (recipient is None or depositor is None or e.depositor == depositor)
        ]
        return len(held), sum(held)

    def mailbox_recipients(self) -> int:
        return len({e.recipient for e in self._live().mailbox.values()})

    def mailbox_purge(self, now_ms: int) -> int:
        state = self._live()
        old = [seq for seq, e in state.mailbox.items() if e.expires_at_ms <= now_ms]
        return self._mailbox_drop(state, old)

    def mailbox_withdraw(self, hashes: Sequence[bytes]) -> int:
        state = self._live()
        wanted = {h for h in hashes if h}
        return self._mailbox_drop(
            state, [seq for seq, e in state.mailbox.items() if e.withdraw in wanted]
        )
