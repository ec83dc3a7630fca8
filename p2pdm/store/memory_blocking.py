"""The in-memory store's blocked peers and message requests as a list
(as :mod:`p2pdm.store.sqlite_blocking`)."""

from __future__ import annotations

from p2pdm.core.eventlog import LogEvent
from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus, Direction, EventType
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_BLOCKED_PEERS
from p2pdm.store.base import BlockedPeer, RequestSummary
from p2pdm.store.memory_messages import MessageDicts

__all__ = ["BlockDicts"]


class BlockDicts(MessageDicts):
    """Blocked peers and the requests list of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def block_peer(self, peer: PeerId, at_ms: int) -> bool:
        """Block ``peer`` (``contact.blocked``); False if it was already blocked."""
        blocked = self._live().blocked
        if peer in blocked:
            return False
        if len(blocked) >= MAX_BLOCKED_PEERS:
            raise StoreError(f"at most {MAX_BLOCKED_PEERS} peers can be blocked")
        blocked[peer] = at_ms
        self._log(LogEvent(EventType.CONTACT_BLOCKED, at_ms, peer))
        return True

    def unblock_peer(self, peer: PeerId, at_ms: int) -> bool:
        """Unblock ``peer`` (``contact.unblocked``); False if it was not blocked."""
        if self._live().blocked.pop(peer, None) is None:
            return False
        self._log(LogEvent(EventType.CONTACT_UNBLOCKED, at_ms, peer))
        return True

    def is_blocked(self, peer: PeerId) -> bool:
        return peer in self._live().blocked

    def list_blocked(self) -> list[BlockedPeer]:
        """Every blocked peer, most recently blocked first."""
        entries = sorted(self._live().blocked.items(), key=lambda e: (-e[1], e[0].raw))
        return [BlockedPeer(peer, at) for peer, at in entries]

    def list_requests(self) -> list[RequestSummary]:
        """One entry per stranger with pending requests, most recent first."""
        by_peer: dict[PeerId, list[int]] = {}
        state = self._live()
        for seq, message in state.messages.items():
            if message.request:
                by_peer.setdefault(message.peer, []).append(seq)
        summaries = [
            RequestSummary(
                peer,
                len(seqs),
                state.messages[min(seqs)],
                max(state.messages[s].stored_at_ms for s in seqs),
            )
            for peer, seqs in by_peer.items()
        ]
        newest = {peer: max(seqs) for peer, seqs in by_peer.items()}
        return sorted(summaries, key=lambda r: -newest[r.peer_id])

    def delete_requests(self, peer: PeerId) -> int:
        """Delete ``peer``'s pending request messages; returns how many."""
        state = self._live()
        seqs = [s for s, m in state.messages.items() if m.request and m.peer == peer]
        self._drop(state, seqs, counted=False)
        return len(seqs)

    def conversation_answered(self, conversation_id: bytes) -> bool:
        """True if the conversation holds a message from the peer or one of ours it read."""
        state = self._live()
        return any(
            state.messages[seq].direction is Direction.IN
            or state.messages[seq].status is DeliveryStatus.READ
            for seq in state.conversation_seqs.get(conversation_id, ())
        )

    def conversation_written(self, conversation_id: bytes) -> bool:
        """True if the conversation holds a message this node sent."""
        state = self._live()
        return any(
            state.messages[seq].direction is Direction.OUT
            for seq in state.conversation_seqs.get(conversation_id, ())
        )
