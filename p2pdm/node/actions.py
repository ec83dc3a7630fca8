"""Reactions, edits, unsends and deletions: what they do to this node's store.

How this works: received actions are settled by
:mod:`p2pdm.node.action_effects` in the messenger's receive transaction.
:class:`MessageActions` is the node's side: the user's own reactions,
edits and unsends are checked by the same rules, applied to the local copy
and sent in one transaction; deleting for oneself sends nothing. A message
unsent or deleted takes its files along: the store releases them with its
body, and :meth:`~p2pdm.node.media.MediaLibrary.collect` deletes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from p2pdm.core.actions import Action, ActionBody, Verdict, decide
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds import (
    EditBody,
    ReactionBody,
    TextBody,
    UnsendBody,
    decode_stored,
)
from p2pdm.core.kinds.reaction import check_own_emoji
from p2pdm.core.model import DeliveryStatus, Direction, StoredMessage
from p2pdm.core.wire import InnerMessage
from p2pdm.errors import ActionRefused, NotFound, SchemaError
from p2pdm.limits import MAX_TEXT_BYTES, REPLY_SNIPPET_CHARS
from p2pdm.node.action_effects import apply
from p2pdm.node.media import MediaLibrary, snippet_of
from p2pdm.node.messenger import Messenger
from p2pdm.store.base import Reactions, Store

__all__ = ["MessageActions", "MessageExtras", "action_expiry_s", "extras_of"]

#: Statuses after which an outgoing message's envelope is no longer queued.
_ARRIVED: Final = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.READ})


@dataclass(frozen=True, slots=True)
class MessageExtras:
    """What the API shows with a message besides its own row."""

    #: The message it replies to, and that message's text as a snippet (None:
    #: the original is unavailable: never arrived, unsent, deleted, elsewhere).
    reply_to: bytes | None = None
    reply_snippet: str | None = None
    reactions: Reactions = field(default_factory=dict)


def action_expiry_s(target: StoredMessage) -> int | None:
    """The latest an action's envelope need live (seconds): when its target
    disappears, if it has a timer that is running (docs/protocol.md §6.7);
    else None, the usual lifetime."""
    if target.expires_at_ms is None:
        return None
    return -(-target.expires_at_ms // 1000)


def extras_of(store: Store, messages: list[StoredMessage]) -> dict[bytes, MessageExtras]:
    """The extras of each message, read in one pass over the page."""
    reactions = store.reactions([m.id for m in messages])
    out = {}
    for message in messages:
        body = decode_stored(message.kind, message.body)
        reply_to = body.reply_to if isinstance(body, TextBody) else None
        snippet = None
        if reply_to is not None:
            original = store.get_message(reply_to)
            if original is not None and original.conversation_id == message.conversation_id:
                text = snippet_of(original)
                snippet = None if text is None else text[:REPLY_SNIPPET_CHARS]
        out[message.id] = MessageExtras(reply_to, snippet, reactions.get(message.id, {}))
    return out


class MessageActions:
    """The node's message actions (mixed into :class:`~p2pdm.node.node.Node`)."""

    store: Store
    messenger: Messenger
    media: MediaLibrary

    now_ms: Callable[[], int]
    on_outbox: Callable[[PeerId], None]

    def _target(self, message_id: bytes) -> StoredMessage:
        found = self.store.get_message(message_id)
        if found is None:
            raise NotFound(f"no message {message_id.hex()}")
        return found

    def _act(self, target: StoredMessage, body: ActionBody) -> StoredMessage:
        """Check the user's own action by the receiver's rules, apply it here and
        send it, in one transaction; raises ActionRefused."""
        me = self.messenger.peer_id
        probe = Action(b"", me, target.conversation_id, self.now_ms(), body)
        decision = decide(probe, target, me, self.now_ms())
        if decision.verdict is Verdict.REFUSE:
            verb = "react to" if body.kind == "react" else body.kind
            raise ActionRefused(f"cannot {verb} that message: {decision.reason}")

        def locally(inner: InnerMessage) -> None:
            action = Action(inner.id, me, target.conversation_id, inner.sent_at_ms, body)
            if decision.verdict is Verdict.APPLY:
                apply(self.store, action, target)
            if isinstance(body, UnsendBody) and target.status not in _ARRIVED:
                # Never delivered: its envelope goes no further. Copies already
                # left at mailboxes become withdrawals (taken back where the
                # mailbox can; any other is overtaken by the unsend itself).
                self.store.remove_outbox_of(target.id)
            if isinstance(body, UnsendBody):
                # Its files' chunks still queued go too, and those deposited
                # are withdrawn likewise (any left are ignored: the file is gone).
                self.store.remove_followers_of(target.id)

        self._deliver_action(target, body, locally, expires_by_s=action_expiry_s(target))
        return self._target(target.id)

    def _deliver_action(
        self,
        target: StoredMessage,
        body: ActionBody,
        also: Callable[[InnerMessage], None],
        *,
        expires_by_s: int | None = None,
    ) -> None:
        """Send an action on ``target`` to the other party (a group's members:
        :class:`~p2pdm.node.groups.Groups` overrides this); ``expires_by_s`` cuts
        its envelope's lifetime to its message's."""
        self.messenger.send(target.peer, body, also=also, expires_by_s=expires_by_s)
        self.on_outbox(target.peer)

    def my_reaction(self, message_id: bytes) -> str | None:
        """This node's reaction to a message, None if it has none."""
        me = self.messenger.peer_id
        reactions = self.store.reactions([message_id]).get(message_id, {})
        return next((emoji for emoji, peers in reactions.items() if me in peers), None)

    def react(self, message_id: bytes, emoji: str) -> StoredMessage:
        """React to a message with ``emoji`` ('' takes the reaction back; with no
        reaction to take back, nothing changes and nothing is sent)."""
        target = self._target(message_id)
        emoji = check_own_emoji(emoji)
        if not emoji and self.my_reaction(target.id) is None:
            return target
        return self._act(target, ReactionBody(target.id, emoji))

    def edit(self, message_id: bytes, text: str) -> StoredMessage:
        """Change the text of one's own message, within EDIT_WINDOW_MS of sending."""
        if not text.strip():
            raise SchemaError("an edit needs some text")
        if len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            raise SchemaError(f"a message is at most {MAX_TEXT_BYTES} bytes of text")
        target = self._target(message_id)
        return self._act(target, EditBody(target.id, text))

    def unsend(self, message_id: bytes) -> StoredMessage:
        """Remove one's own message for everyone (one unsent already: nothing is sent)."""
        target = self._target(message_id)
        if target.direction is not Direction.OUT:
            raise ActionRefused(
                "only the author may unsend a message; delete it for you only instead "
                "(`p2pdm delete --for-me`, `?for=me`)"
            )
        if target.unsent:
            return target  # its unsend went (and is retried) already
        unsent = self._act(target, UnsendBody(target.id))
        self.media.collect()
        return unsent

    def delete_for_me(self, message_id: bytes) -> None:
        """Delete a message from this node only; nothing is sent."""
        if not self.store.delete_message(message_id):
            raise NotFound(f"no message {message_id.hex()}")
        self.messenger.known.refresh()
        self.media.collect()

    def delete_conversation(self, conversation_id: bytes) -> int:
        """Delete a conversation from this node only; returns how many messages went."""
        if self.store.get_conversation(conversation_id) is None:
            raise NotFound(f"no conversation {conversation_id.hex()}")
        deleted = self.store.delete_conversation(conversation_id)
        self.messenger.known.refresh()
        self.media.collect()
        return deleted

    def release_attachments(self, message: StoredMessage) -> None:
        """Delete the files only ``message`` carried (it was unsent, deleted or
        expired); files another message still carries stay."""
        self.media.release_attachments(message.id)

    def extras(self, messages: list[StoredMessage]) -> dict[bytes, MessageExtras]:
        return extras_of(self.store, messages)
