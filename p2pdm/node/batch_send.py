"""Many sends in one request: each checked and sent on its own, all committed at once.

How this works: :meth:`BatchSend.submit_many` does for every item what
:meth:`~p2pdm.node.node.Node.submit` does for one (the PeerID checked, the
prekeys of a new peer found, or else its messages kept waiting for them:
:mod:`p2pdm.node.key_waits`), then hands the sends to the commit batcher as
one piece of work, so the whole batch is one transaction (one fsync) while
each send is still all-or-nothing alone (a savepoint). An item that fails
(unknown peer, blocked, a reused idempotency key) is reported in its
place; the others are sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

from p2pdm.core.identity import PeerId
from p2pdm.core.model import StoredMessage
from p2pdm.errors import P2PDMError

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = ["MAX_BATCH_MESSAGES", "BatchSend", "SendItem", "Sent"]

#: Most messages in one batch: a bot's burst (a broadcast to its users) in
#: one request and one commit, while one batch still holds the event loop
#: for well under a second.
MAX_BATCH_MESSAGES: Final = 500


@dataclass(frozen=True, slots=True)
class Sent:
    """A send's result: the message, and whether an earlier send with the same
    idempotency key had made it (then nothing was sent now)."""

    message: StoredMessage
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class SendItem:
    """One message of a batch: to whom, what, and its idempotency key (token, key)."""

    peer: PeerId
    text: str
    idempotency: tuple[str, str] | None = None


class BatchSend:
    """The node's batch send (a mixin of :class:`~p2pdm.node.node.Node`)."""

    async def submit_many(self, items: Sequence[SendItem]) -> list[Sent | P2PDMError]:
        """Send every item; its :class:`Sent` or the error that refused it, in order.

        Raises :class:`~p2pdm.errors.StoreError` (and nothing is stored) only
        if the batch's commit fails. At most :data:`MAX_BATCH_MESSAGES` items.
        """
        if len(items) > MAX_BATCH_MESSAGES:
            raise ValueError(f"a batch holds at most {MAX_BATCH_MESSAGES} messages")
        node = cast("Node", self)
        results: list[Sent | P2PDMError | None] = [None] * len(items)
        ready: list[int] = []
        # Per peer: send now (True), wait for its prekeys (False), or the refusal.
        prepared: dict[PeerId, P2PDMError | bool] = {}
        for i, item in enumerate(items):
            if item.peer not in prepared:  # once per peer, however many items
                try:
                    prepared[item.peer] = await node.keys_or_wait(item.peer)
                except P2PDMError as exc:
                    prepared[item.peer] = exc
            refused = prepared[item.peer]
            if isinstance(refused, P2PDMError):
                results[i] = refused
            else:
                ready.append(i)
        sends = [_Send(node, items[i], prepared[items[i].peer] is True) for i in ready]
        for i, outcome in zip(ready, await node.batcher.submit_all(sends), strict=True):
            results[i] = outcome
        return cast(list[Sent | P2PDMError], results)  # every place was filled


class _Send:
    """One item's send, run by the batcher (a class, not a closure per loop turn)."""

    __slots__ = ("item", "node", "now")

    def __init__(self, node: Node, item: SendItem, now: bool) -> None:
        self.node = node
        self.item = item
        #: False: the message waits for its recipient's prekeys.
        self.now = now

    def __call__(self) -> Sent:
        item = self.item
        if self.now:
            return self.node._send_once(item.peer, item.text, item.idempotency)
        return self.node._hold_once(item.peer, item.text, item.idempotency)
