"""The in-memory store's conversation settings, disappearing messages and
search: the same rules as :mod:`p2pdm.store.sqlite_expiry`, over dicts."""

from __future__ import annotations

from p2pdm.core.eventlog import expired_event, settings_event
from p2pdm.core.identity import PeerId
from p2pdm.core.model import Conversation, StoredMessage
from p2pdm.store.base import SearchHit, is_unread
from p2pdm.store.memory_actions import erase_body
from p2pdm.store.memory_messages import MessageDicts
from p2pdm.store.memory_state import ConversationState
from p2pdm.store.search_text import mark_matches, search_text, words

__all__ = ["ExpiryDicts"]

#: Characters of a memory store's snippet (the SQLite store cuts by words).
SNIPPET_CHARS = 80


class ExpiryDicts(MessageDicts):
    """Conversation settings, expiry and search of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def update_conversation(
        self,
        conversation_id: bytes,
        peer: PeerId,
        at_ms: int,
        *,
        timer: tuple[int, int] | None = None,
        muted: bool | None = None,
        archived: bool | None = None,
        pinned: bool | None = None,
    ) -> Conversation:
        """See ``Store.update_conversation``."""
        state = self._live()
        found = state.conversations.setdefault(
            conversation_id, ConversationState(peer, at_ms, 0, 0, False)
        )
        before = found.public(conversation_id)
        # Newest wins; at the same time the larger timer, so every order ends the same.
        if timer is not None and (found.timer_set_at_ms, found.timer_s) < timer[::-1]:
            found.timer_s, found.timer_set_at_ms = timer
        if muted is not None:
            found.muted = muted
        if archived is not None:
            found.archived = archived
        if pinned is not None and pinned != (found.pinned_at_ms is not None):
            found.pinned_at_ms = at_ms if pinned else None  # pinned again: its place kept
        after = found.public(conversation_id)
        event = settings_event(before, after, at_ms)
        if event is not None:
            self._log(event)
        return after

    def expire_messages(self, now_ms: int, limit: int) -> list[StoredMessage]:
        """See ``Store.expire_messages``."""
        state = self._live()
        due = sorted(
            (m for m in state.messages.values() if m.expires_at_ms is not None),
            key=lambda m: (m.expires_at_ms, m.seq),
        )
        gone = []
        for message in due[: max(0, limit)]:
            if message.expires_at_ms is None or message.expires_at_ms > now_ms:
                break
            erase_body(state, message.id)
            for envelope_id in [e for e, i in state.outbox.items() if i.message_id == message.id]:
                del state.outbox[envelope_id]
                state.deposits.pop(envelope_id, None)
            del state.messages[message.seq]
            del state.seq_of[message.id]
            state.history.pop(message.id, None)
            state.conversation_seqs[message.conversation_id].remove(message.seq)
            conversation = state.conversations[message.conversation_id]
            conversation.unread = max(0, conversation.unread - int(is_unread(message)))
            self._log(expired_event(message, now_ms))
            gone.append(message)
        return gone

    def next_expiry_ms(self) -> int | None:
        """See ``Store.next_expiry_ms`` (the messages' own min-heap)."""
        return self._live().messages.next_expiry_ms()

    def forget_erased(self) -> None:
        """Nothing to do: an erased body is gone from memory at once."""

    def search(self, terms: list[str], peer: PeerId | None, limit: int) -> list[SearchHit]:
        """See ``Store.search``."""
        *whole, prefix = terms
        hits: list[SearchHit] = []
        for seq in sorted(self._live().messages, reverse=True):
            if len(hits) >= limit:
                break
            message = self._live().messages[seq]
            text = search_text(message.kind, message.body)
            if text is None or (peer is not None and message.peer != peer):
                continue
            found = words(text)
            if all(w in found for w in whole) and any(w.startswith(prefix) for w in found):
                hits.append(
                    SearchHit(
                        message.id,
                        message.conversation_id,
                        message.peer,
                        message.direction.value,
                        message.sent_at_ms,
                        mark_matches(text[:SNIPPET_CHARS], terms),
                    )
                )
        return hits
