"""What a person does to a whole conversation, and the node's own upkeep of
it: disappearing-message timers, mute, archive, search, and the purge of
messages whose timer ran out.

How this works: :class:`ConversationUpkeep` is a part of
:class:`~p2pdm.node.node.Node` (a mixin: it uses the node's store, messenger
and clock). Changing a timer sends a signed ``timer`` notice to the peer
through the messenger (docs/protocol.md §6.7); mute and archive are local.
:meth:`ConversationUpkeep.purge_expired` erases what is due in bounded passes
and then makes the store forget the erased text;
:func:`purge_loop` runs it at start-up, then at the next message's expiry
(``Store.next_expiry_ms``, an index read) or every EXPIRY_PURGE_INTERVAL_S,
whichever is sooner; a purge with nothing due opens no transaction.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.kinds.timer import check_timer
from p2pdm.core.model import Conversation, StoredMessage
from p2pdm.errors import ActionRefused, PeerBlocked, SchemaError, SessionError
from p2pdm.limits import (
    EXPIRY_PURGE_INTERVAL_S,
    HELD_GROUP_ENTRY_TTL_MS,
    MAX_EXPIRED_PER_PASS,
    MAX_PINNED_CONVERSATIONS,
    MAX_SEARCH_HITS,
    TYPING_INTERVAL_S,
)
from p2pdm.node.media import MediaLibrary
from p2pdm.node.requests import accepted
from p2pdm.store.base import SearchHit, Store
from p2pdm.store.search_text import search_terms

if TYPE_CHECKING:
    from p2pdm.node.group_wire import GroupWire
    from p2pdm.node.messenger import Messenger

__all__ = ["ConversationUpkeep", "purge_loop"]

log = logging.getLogger("p2pdm.node.housekeeping")

#: Shortest wait between two purges when a message is due soon: timers count
#: whole seconds, and a clock that disagrees with trio's cannot make it spin.
MIN_PURGE_WAIT_S = 1.0

#: Conversations whose last typing signal is remembered (for its rate): far
#: more than anyone types in at once.
MAX_TYPING_CONVERSATIONS = 256


class ConversationUpkeep:
    """Conversation settings, search and the purge of expired messages."""

    store: Store
    messenger: Messenger
    now_ms: Callable[[], int]
    on_outbox: Callable[[PeerId], None]
    online: set[PeerId]
    send_now: Callable[[PeerId, bytes], Awaitable[bool]] | None
    typing_sent: OrderedDict[bytes, int]
    media: MediaLibrary
    group_wire: GroupWire

    async def send_typing(self, conversation_id: bytes, peer: PeerId) -> str | None:
        """Tell ``peer`` the user is typing, over an open connection only; returns
        None if it was handed over, else why not (then nothing was sent or kept):
        read receipts are off, the peer is not a contact, not connected, or the
        conversation sent one less than TYPING_INTERVAL_S ago."""
        group = self.store.get_group(conversation_id)
        if group is not None:
            if group.state != "active":
                return "you are not in this group (or have not joined it)"
        elif self.store.is_blocked(peer):
            return "you blocked them"
        elif not accepted(self.store, peer):  # no typing to a request
            return "typing is shown only to contacts"
        if not self.messenger.read_receipts_enabled():
            return "read receipts are off, and typing with them"
        # A group's online members, each over its open stream; else the peer.
        to = self._typing_members(conversation_id) if group is not None else [peer]
        if self.send_now is None or not any(p in self.online for p in to):
            return "not connected to the peer now"
        now = self.now_ms()
        last = self.typing_sent.get(conversation_id)
        if last is not None and now - last < TYPING_INTERVAL_S * 1000:
            return f"sent less than {TYPING_INTERVAL_S} s ago"
        self.typing_sent.pop(conversation_id, None)
        self.typing_sent[conversation_id] = now
        while len(self.typing_sent) > MAX_TYPING_CONVERSATIONS:
            self.typing_sent.popitem(last=False)
        handed = 0
        for member in (p for p in to if p in self.online):
            try:
                envelope = self.messenger.seal_typing(member, None if group is None else group.id)
            except (SessionError, PeerBlocked):
                if group is None:
                    raise
                continue  # a member with no session yet: typing is no reason to start one
            handed += await self.send_now(member, envelope)
        return None if handed else "the peer did not take it"

    def _typing_members(self, group: bytes) -> list[PeerId]:
        """The other members of ``group`` who are not blocked."""
        members = self.group_wire.log(group).state().members
        me = self.messenger.peer_id
        return [p for p in members if p != me and not self.store.is_blocked(p)]

    def update_conversation(
        self,
        conversation_id: bytes,
        peer: PeerId,
        *,
        timer_s: int | None = None,
        muted: bool | None = None,
        archived: bool | None = None,
        pinned: bool | None = None,
    ) -> Conversation:
        """Change a conversation's settings; returns it after the change.

        A new ``timer_s`` (one of DISAPPEARING_TIMERS_S) is sent to the peer
        as a ``timer`` notice and applies to messages sent after it. Raises
        SchemaError for another timer, SessionError if there is no session
        and no prekey bundle to send the notice with, ActionRefused for a
        pin past MAX_PINNED_CONVERSATIONS.
        """
        at_ms = self.now_ms()
        if pinned:
            pins = {
                c.id: c.pinned_at_ms
                for c in self.store.list_conversations()
                if c.pinned_at_ms is not None
            }
            others = [at for cid, at in pins.items() if cid != conversation_id]
            if conversation_id not in pins and len(others) >= MAX_PINNED_CONVERSATIONS:
                raise ActionRefused(
                    f"at most {MAX_PINNED_CONVERSATIONS} chats can be pinned: unpin one first"
                )
            # After every pin so far, even within the same millisecond: the
            # latest pinned is always on top.
            at_ms = max(at_ms, max(others, default=-1) + 1)
        if timer_s is not None:
            check_timer(timer_s)
            found = self.store.get_conversation(conversation_id)
            if (found.timer_s if found else 0) != timer_s:
                self.messenger.send_timer(peer, timer_s)
                self.on_outbox(peer)
        return self.store.update_conversation(
            conversation_id, peer, at_ms, muted=muted, archived=archived, pinned=pinned
        )

    def search(self, query: str, peer: PeerId | None = None, limit: int = 20) -> list[SearchHit]:
        """Messages whose text has every word of ``query`` (the last also as a
        prefix), newest first. Raises SchemaError for a query with no word,
        too long or with too many words, or a limit out of range."""
        if not 1 <= limit <= MAX_SEARCH_HITS:
            raise SchemaError(f"limit must be between 1 and {MAX_SEARCH_HITS}")
        return self.store.search(search_terms(query), peer, limit)

    def purge_expired(self) -> list[StoredMessage]:
        """Erase every message whose timer ran out, in passes of at most
        MAX_EXPIRED_PER_PASS, with the files only they carried, and the actions
        held longer than they may wait; returns the messages."""
        gone: list[StoredMessage] = []
        due_ms = self.store.next_expiry_ms()  # an index read: no transaction when none is due
        while due_ms is not None and due_ms <= self.now_ms():
            with self.store.transaction():  # each pass all or nothing
                batch = self.store.expire_messages(self.now_ms(), MAX_EXPIRED_PER_PASS)
            gone.extend(batch)
            if len(batch) < MAX_EXPIRED_PER_PASS:
                break
        # Actions held past their wait (in a disappearing conversation: its timer).
        dropped = self.store.drop_expired_held(self.now_ms())
        # Group changes whose parents never came (docs/protocol.md §19.2).
        self.store.drop_stale_held_group_entries(self.now_ms() - HELD_GROUP_ENTRY_TTL_MS)
        if gone or dropped:
            self.store.forget_erased()
        if gone:
            self.messenger.known.refresh()  # a written conversation may be empty now
            self.media.collect()  # the store released their files with them
        return gone


async def purge_loop(node: ConversationUpkeep, interval_s: float = EXPIRY_PURGE_INTERVAL_S) -> None:
    """Purge expired messages now, then again at the next message's expiry
    or after ``interval_s`` seconds, whichever comes first, forever."""
    while True:
        wait_s = interval_s
        try:
            gone = node.purge_expired()
            due_ms = node.store.next_expiry_ms()
        except Exception:  # a store failure is logged and retried next round
            log.exception("purging expired messages failed")
        else:
            if gone:
                log.info("%d disappearing messages erased", len(gone))
            if due_ms is not None:
                wait_s = min(interval_s, max(MIN_PURGE_WAIT_S, (due_ms - node.now_ms()) / 1000))
        await trio.sleep(wait_s)
