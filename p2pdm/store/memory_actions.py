"""The in-memory store's message actions, with the same rules as
:mod:`p2pdm.store.sqlite_actions` (see there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from p2pdm.core.actions import HeldAction, held_expired
from p2pdm.core.identity import PeerId
from p2pdm.limits import MAX_HELD_ACTIONS, MAX_HELD_ACTIONS_PER_PEER
from p2pdm.store.base import Reactions, is_unread
from p2pdm.store.memory_state import Dicts, MemoryState, withdraw_deposits

__all__ = ["ActionDicts", "erase_body"]


def erase_body(state: MemoryState, message_id: bytes) -> bool:
    """Remove a message's text from everywhere the memory store keeps it (its
    body, reactions, the actions held for it; search reads the bodies, so
    the words go too) and release its files (the node deletes blobs no
    message carries: MediaLibrary.collect); True if the message exists."""
    state.reactions.pop(message_id, None)
    state.held = [h for h in state.held if h.action.target != message_id]
    state.blob_refs = [ref for ref in state.blob_refs if ref[1] != message_id]
    seq = state.seq_of.get(message_id)
    if seq is not None:
        state.messages[seq] = replace(state.messages[seq], body=b"")
    return seq is not None


class ActionDicts(Dicts):
    """Message actions of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def set_reaction(self, message_id: bytes, peer: PeerId, emoji: str, at_ms: int) -> bool:
        mine = self._live().reactions.setdefault(message_id, {})
        old = mine.get(peer)
        if old is not None and (old[1], old[0]) >= (at_ms, emoji):
            return False
        mine[peer] = (emoji, at_ms)
        return (old is None and emoji != "") or (old is not None and old[0] != emoji)

    def reactions(self, message_ids: Sequence[bytes]) -> dict[bytes, Reactions]:
        state = self._live()
        found: dict[bytes, Reactions] = {}
        for mid in message_ids:
            for peer, (emoji, _) in sorted(state.reactions.get(mid, {}).items()):
                if emoji:
                    found.setdefault(mid, {}).setdefault(emoji, []).append(peer)
        return found

    def edit_message_body(self, message_id: bytes, body: bytes, edited_at_ms: int) -> bool:
        state = self._live()
        seq = state.seq_of.get(message_id)
        if seq is None:
            return False
        old = state.messages[seq]
        if old.unsent or (
            old.edited_at_ms is not None and (old.edited_at_ms, old.body) >= (edited_at_ms, body)
        ):
            return False
        state.messages[seq] = replace(old, body=body, edited_at_ms=edited_at_ms)
        return True

    def erase_message_body(self, message_id: bytes) -> bool:
        return erase_body(self._live(), message_id)

    def unsend_message(self, message_id: bytes) -> bool:
        state = self._live()
        seq = state.seq_of.get(message_id)
        if seq is None or state.messages[seq].unsent:
            return False
        self.erase_message_body(message_id)
        state.messages[seq] = replace(state.messages[seq], unsent=True)
        return True

    def delete_message(self, message_id: bytes) -> bool:
        state = self._live()
        seq = state.seq_of.get(message_id)
        if seq is None:
            return False
        self.erase_message_body(message_id)
        message = state.messages.pop(seq)
        del state.seq_of[message_id]
        state.history.pop(message_id, None)
        cid = message.conversation_id
        seqs = state.conversation_seqs[cid]
        seqs.remove(seq)
        if not seqs:
            del state.conversation_seqs[cid]
            del state.conversations[cid]
        else:
            conversation = state.conversations[cid]
            conversation.last_seq = seqs[-1]
            conversation.unread = max(0, conversation.unread - int(is_unread(message)))
        return True

    def delete_conversation(self, conversation_id: bytes) -> int:
        state = self._live()
        seqs = list(state.conversation_seqs.get(conversation_id, ()))
        for seq in seqs:
            self.delete_message(state.messages[seq].id)
        state.conversations.pop(conversation_id, None)
        state.held = [h for h in state.held if h.action.conversation_id != conversation_id]
        return len(seqs)

    def hold_action(self, held: HeldAction) -> None:
        state = self._live()
        before = len(state.held)
        state.held = [h for h in state.held if not held_expired(h, held.held_at_ms)]
        dropped = before - len(state.held)
        if all(h.action.id != held.action.id for h in state.held):
            state.held.append(held)
        dropped += _trim(state, held.action.sender)
        state.held_dropped += dropped

    def take_held(self, target: bytes, now_ms: int) -> list[HeldAction]:
        state = self._live()
        taken = [h for h in state.held if h.action.target == target]
        state.held = [h for h in state.held if h.action.target != target]
        live = [h for h in taken if not held_expired(h, now_ms)]
        state.held_dropped += len(taken) - len(live)
        return live

    def drop_expired_held(self, now_ms: int) -> int:
        state = self._live()
        before = len(state.held)
        state.held = [h for h in state.held if not held_expired(h, now_ms)]
        state.held_dropped += before - len(state.held)
        return before - len(state.held)

    def held_count(self) -> int:
        return len(self._live().held)

    def count_refused_action(self) -> None:
        self._live().actions_refused += 1

    def remove_outbox_of(self, message_id: bytes) -> int:
        state = self._live()
        ids = [e for e, item in state.outbox.items() if item.message_id == message_id]
        for envelope_id in ids:
            del state.outbox[envelope_id]
            withdraw_deposits(state, envelope_id)
        return len(ids)


def _trim(state: MemoryState, sender: PeerId) -> int:
    """Drop the oldest held actions over the caps (the sender's, then everyone's)."""
    dropped = 0
    own = [h for h in state.held if h.action.sender == sender]
    for extra in own[: max(0, len(own) - MAX_HELD_ACTIONS_PER_PEER)]:
        state.held.remove(extra)
        dropped += 1
    over = max(0, len(state.held) - MAX_HELD_ACTIONS)
    del state.held[:over]
    return dropped + over
