"""The in-memory store's conversations and messages, with their delivery state.

How this works: messages are kept by seq, each conversation's seqs in order,
and an outgoing message carries its recipients' statuses itself (the SQLite
store keeps them in ``message_recipients``); the rules both share are in
:mod:`p2pdm.store.base`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace

from p2pdm.core.eventlog import status_event
from p2pdm.core.identity import PeerId
from p2pdm.core.model import (
    Conversation,
    DeliveryStatus,
    Direction,
    MessagePage,
    StatusChange,
    StoredMessage,
)
from p2pdm.errors import NotFound, StoreError
from p2pdm.limits import MAX_STATUS_HISTORY
from p2pdm.store.base import (
    NOTED_STATUSES,
    UNREAD_STATUSES,
    RequestUsage,
    advance_recipients,
    first_recipients,
    is_unread,
    message_status,
    notable,
    page_limit,
    requests_over_caps,
    status_change_event,
    status_moves,
)
from p2pdm.store.memory_state import ConversationState, Dicts, MemoryState
from p2pdm.store.rows import message_with

__all__ = ["MessageDicts"]


class MessageDicts(Dicts):
    """Conversations and messages of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def add_message(self, message: StoredMessage) -> StoredMessage:
        """Insert; returns it with ``seq`` set. Raises StoreError if the id exists.

        Updates its conversation exactly as :meth:`SQLiteStore.add_message`
        does, and like it writes no event.
        """
        state = self._live()
        if message.id in state.seq_of:
            raise StoreError(f"message {message.id.hex()} is already stored")
        state.last_seq += 1
        recipients = first_recipients(message)
        stored = message_with(
            message, message_status(message, recipients), recipients, state.last_seq
        )
        state.messages[stored.seq] = stored
        state.seq_of[stored.id] = stored.seq
        state.conversation_seqs.setdefault(stored.conversation_id, []).append(stored.seq)
        state.history[stored.id] = [StatusChange(stored.id, stored.status, stored.stored_at_ms)]
        conversation = state.conversations.get(stored.conversation_id)
        if conversation is None:
            state.conversations[stored.conversation_id] = ConversationState(
                stored.peer, stored.stored_at_ms, stored.seq, int(is_unread(stored)), stored.request
            )
        else:
            conversation.last_message_at_ms = max(
                conversation.last_message_at_ms, stored.stored_at_ms
            )
            conversation.last_seq = stored.seq
            conversation.unread += int(is_unread(stored))
            conversation.request = conversation.request and stored.request
        if stored.request:
            self._trim_requests(state, stored.peer)
        return stored

    def _trim_requests(self, state: MemoryState, peer: PeerId) -> None:
        """Drop pending requests over the caps, ``peer``'s first (as SQLite's trim_requests)."""
        caps = self._request_caps
        own = [(s, len(m.body)) for s, m in state.messages.items() if m.request and m.peer == peer]
        self._drop(state, requests_over_caps(own, caps.messages_per_peer, caps.bytes_per_peer))
        everyone = [(s, len(m.body)) for s, m in state.messages.items() if m.request]
        self._drop(state, requests_over_caps(everyone, caps.messages, caps.bytes))

    def _drop(self, state: MemoryState, seqs: list[int], *, counted: bool = True) -> None:
        for seq in seqs:
            message = state.messages.pop(seq)
            del state.seq_of[message.id]
            del state.history[message.id]
            if counted:
                count, size = state.requests_dropped
                state.requests_dropped = (count + 1, size + len(message.body))
            cid = message.conversation_id
            state.conversation_seqs[cid].remove(seq)
            if not state.conversation_seqs[cid]:
                del state.conversation_seqs[cid]
                del state.conversations[cid]
                continue
            conversation = state.conversations[cid]
            conversation.last_seq = state.conversation_seqs[cid][-1]
            conversation.unread -= int(is_unread(message))

    def request_usage(self) -> RequestUsage:
        """Pending request messages and bytes, and how many were dropped over the caps."""
        state = self._live()
        pending = [len(m.body) for m in state.messages.values() if m.request]
        return RequestUsage(len(pending), sum(pending), *state.requests_dropped)

    def has_requests(self, peer: PeerId) -> bool:
        """True while ``peer`` has a pending message request."""
        return any(m.request and m.peer == peer for m in self._live().messages.values())

    def get_message(self, message_id: bytes) -> StoredMessage | None:
        state = self._live()
        seq = state.seq_of.get(message_id)
        return None if seq is None else state.messages[seq]

    def set_status(
        self,
        message_id: bytes,
        status: DeliveryStatus,
        at_ms: int,
        detail: str = "",
        *,
        recipient: PeerId | None = None,
        event: bool = True,
    ) -> bool:
        """Record a status change, of ``recipient``'s (every recipient's if None)
        for an outgoing message; see ``Store.set_status``."""
        state = self._live()
        seq = state.seq_of.get(message_id)
        if seq is None:
            raise NotFound(f"no message {message_id.hex()} in the store")
        old = state.messages[seq]
        recipients, moved = advance_recipients(old.recipients, status, at_ms, detail, recipient)
        new = status if not old.recipients else message_status(old, recipients)
        state.messages[seq] = message_with(old, old.status, recipients, old.seq)
        entry = status_change_event(old, new, moved, at_ms, detail) if event else None
        if entry is not None:
            self._log(entry)
        if not status_moves(old.status, new):
            return bool(moved)
        expires = old.expires_at_ms
        if new is DeliveryStatus.READ and old.timer_s:  # the recipient read it: its timer starts
            read_expiry = at_ms + old.timer_s * 1000
            expires = read_expiry if expires is None else min(expires, read_expiry)
        state.messages[seq] = replace(old, status=new, recipients=recipients, expires_at_ms=expires)
        state.history[message_id].append(StatusChange(message_id, new, at_ms, detail))
        if is_unread(old) and new not in UNREAD_STATUSES:
            conversation = state.conversations[old.conversation_id]
            conversation.unread = max(0, conversation.unread - 1)
        return True

    def set_statuses(
        self,
        message_id: bytes,
        statuses: Sequence[DeliveryStatus],
        at_ms: int,
        *,
        recipient: PeerId | None = None,
    ) -> bool:
        """``set_status`` for each of ``statuses`` in turn; see ``Store.set_statuses``."""
        changed = False
        for status in statuses:
            changed = self.set_status(message_id, status, at_ms, recipient=recipient) or changed
        return changed

    def status_history(self, message_id: bytes) -> list[StatusChange]:
        """Every status the message had, oldest first, starting with the one it was stored with."""
        return list(self._live().history.get(message_id, ()))

    def note_status(
        self, message_id: bytes, at_ms: int, detail: str, *, recipient: PeerId | None = None
    ) -> bool:
        """Record a note on an outgoing message's current status; see ``Store.note_status``."""
        state = self._live()
        seq = state.seq_of.get(message_id)
        if seq is None:
            raise NotFound(f"no message {message_id.hex()} in the store")
        message = state.messages[seq]
        if recipient is not None and message.direction is Direction.OUT:
            message = replace(
                message,
                recipients=tuple(
                    replace(r, detail=detail)
                    if r.peer == recipient and r.status in NOTED_STATUSES
                    else r
                    for r in message.recipients
                ),
            )
            state.messages[seq] = message
        history = state.history[message_id]
        if not notable(message.direction, message.status, history[-1:], detail):
            return False
        note = StatusChange(message_id, message.status, at_ms, detail)
        if len(history) >= MAX_STATUS_HISTORY:
            history[-1] = note
            return True
        history.append(note)
        self._log(status_event(message, message.status, at_ms, detail))
        return True

    def messages(
        self, conversation_id: bytes, limit: int, before: int | None = None
    ) -> MessagePage:
        """Newest first, at most ``limit`` (capped at MAX_PAGE_SIZE), with ``seq < before``.

        Raises StoreError if ``limit`` is below 1.
        """
        size = page_limit(limit)
        state = self._live()
        seqs = state.conversation_seqs.get(conversation_id, [])
        end = len(seqs) if before is None else bisect.bisect_left(seqs, before)
        start = max(0, end - size)
        page = tuple(state.messages[seq] for seq in reversed(seqs[start:end]))
        return MessagePage(page, page[-1].seq if start > 0 else None)

    def list_conversations(self) -> list[Conversation]:
        """Pinned first (the latest pinned on top), then most recent first (by
        ``last_message_at_ms``, then by newest message)."""
        items = sorted(
            self._live().conversations.items(),
            key=lambda item: (
                item[1].pinned_at_ms is not None,
                item[1].pinned_at_ms or 0,
                item[1].last_message_at_ms,
                item[1].last_seq,
            ),
            reverse=True,
        )
        return [conversation.public(cid) for cid, conversation in items]

    def get_conversation(self, conversation_id: bytes) -> Conversation | None:
        found = self._live().conversations.get(conversation_id)
        return None if found is None else found.public(conversation_id)

    def mark_conversation_read(self, conversation_id: bytes, at_ms: int) -> list[bytes]:
        """Mark incoming messages read; returns the ids that changed, oldest first."""
        state = self._live()
        changed: list[bytes] = []
        for seq in state.conversation_seqs.get(conversation_id, []):
            message = state.messages[seq]
            if is_unread(message):
                expires = message.expires_at_ms
                if message.timer_s and expires is None:  # its timer starts now
                    expires = at_ms + message.timer_s * 1000
                state.messages[seq] = replace(
                    message, status=DeliveryStatus.READ, expires_at_ms=expires
                )
                state.history[message.id].append(
                    StatusChange(message.id, DeliveryStatus.READ, at_ms)
                )
                self._log(status_event(message, DeliveryStatus.READ, at_ms))
                changed.append(message.id)
        conversation = state.conversations.get(conversation_id)
        if conversation is not None:
            conversation.unread = 0
        return changed

    def accept_request(self, peer: PeerId) -> int:
        """Turn a peer's message requests into normal messages; returns how many."""
        state = self._live()
        accepted = 0
        for seq, message in state.messages.items():
            if message.peer == peer and message.request:
                state.messages[seq] = replace(message, request=False)
                state.conversations[message.conversation_id].request = False
                accepted += 1
        for conversation in state.conversations.values():
            if conversation.peer == peer:
                conversation.request = False
        return accepted

    # --- counts ----------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """``contacts``, ``messages``, ``unread`` (not counting requests), ``requests``
        (request messages), ``outbox``, ``waiting_for_keys``, ``requests_dropped``."""
        state = self._live()
        messages = state.messages.values()
        return {
            "contacts": len(state.contacts),
            "messages": len(messages),
            "unread": sum(1 for m in messages if is_unread(m) and not m.request),
            "requests": sum(1 for m in messages if m.request),
            "outbox": len(state.outbox),
            "waiting_for_keys": len(state.key_waits),
            "requests_dropped": state.requests_dropped[0],
            "actions_refused": state.actions_refused,
            "held_actions_dropped": state.held_dropped,
        }
