"""What direct delivery records in the store about the messages it moves.

How this works: :class:`OutboxBook` is the one place the dm service changes
the outbox and delivery statuses: which entries are due, backing an entry
off after a failure (exponential, capped, jittered), ``sent`` when written
(with the acks that follow, in their transaction),
``delivered``/``failed``/retry when acked, ``expired`` past expiry, and the
notes that tell the user why a message is not delivered yet. Each batch is
one store transaction.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from typing import Final, Protocol

from p2pdm.core.dm import Ack
from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus, OutboxItem
from p2pdm.errors import NotFound, P2PDMError, PeerUnreachable
from p2pdm.services.limits import (
    ACK_TIMEOUT,
    MAX_DEPOSIT_BATCH,
    MAX_NOTE,
    RETRY_BASE_SECONDS,
    RETRY_MAX_SECONDS,
)
from p2pdm.store.base import Store

__all__ = ["NOT_REACHABLE", "Clocked", "OutboxBook", "backoff_ms", "delivery_error"]

#: How an outbox entry's last error starts when the recipient could not be
#: dialled; its note then reads "<who> is not reachable: …".
NOT_REACHABLE: Final = "not reachable: "
#: What a recipient's reason for refusing an envelope (docs/protocol.md §14.1)
#: means to the user, where the reason alone does not say.
_REFUSALS: Final = {
    "StampMissing": "you are not its contact, and it accepted no request stamp from you "
    "(it may ask for more work than this node does); it must add you as a contact "
    "(StampMissing)",
}


class Clocked(Protocol):
    """The node as the dm service sees it: a store and a clock."""

    @property
    def store(self) -> Store: ...
    def now_ms(self) -> int: ...


def delivery_error(exc: P2PDMError) -> str:
    """What an outbox entry records as its last error when a round fails with ``exc``."""
    if isinstance(exc, PeerUnreachable):
        return NOT_REACHABLE + exc.reason
    return str(exc)


def backoff_ms(attempts: int, rng: random.Random) -> int:
    """Delay before attempt ``attempts + 1``: exponential, capped, jittered."""
    delay = min(RETRY_BASE_SECONDS * (2 ** min(attempts, 30)), RETRY_MAX_SECONDS)
    return int(delay * rng.uniform(0.5, 1.5) * 1000)


class OutboxBook:
    """The outbox and delivery statuses of ``node``'s store, as delivery moves them."""

    def __init__(self, node: Clocked, rng: random.Random, window: int) -> None:
        self.node = node
        self.rng = rng
        #: Entries read for one peer at a time (the send window).
        self.window = window

    @property
    def store(self) -> Store:
        return self.node.store

    def now_ms(self) -> int:
        return self.node.now_ms()

    def due_for(self, peer: PeerId) -> list[OutboxItem]:
        return self.store.outbox_for(peer, due_at_ms=self.now_ms(), limit=self.window)

    def undelivered(self, peer: PeerId) -> list[OutboxItem]:
        """What is queued for ``peer`` and not expired, due or not, oldest first."""
        now = self.now_ms()
        queued = self.store.outbox_for(peer, limit=MAX_DEPOSIT_BATCH)
        return [item for item in queued if item.expires_at_ms > now]

    def expire(self, items: list[OutboxItem]) -> None:
        if not items:
            return
        with self.store.transaction():
            for item in items:
                self.store.remove_outbox(item.envelope_id)
                self.set_status(item, DeliveryStatus.EXPIRED, "not delivered before expiry")

    def set_status(self, item: OutboxItem, status: DeliveryStatus, detail: str = "") -> bool:
        """Move the message on; False if it did not move (or is a receipt, not stored)."""
        with contextlib.suppress(NotFound):  # receipts have no stored message
            # Per recipient: a group message has one outbox entry per member.
            return self.store.set_status(
                item.message_id, status, self.now_ms(), detail, recipient=item.recipient
            )
        return False

    def set_statuses(self, item: OutboxItem, statuses: Sequence[DeliveryStatus]) -> bool:
        """``set_status`` for each of ``statuses`` in turn, in one store call."""
        with contextlib.suppress(NotFound):  # receipts have no stored message
            return self.store.set_statuses(
                item.message_id, statuses, self.now_ms(), recipient=item.recipient
            )
        return False

    def note(self, item: OutboxItem, detail: str) -> None:
        """Tell the sender why the message is not delivered yet (status detail, history, event)."""
        with contextlib.suppress(NotFound):
            self.store.note_status(
                item.message_id, self.now_ms(), detail[:MAX_NOTE], recipient=item.recipient
            )

    def waiting(self, item: OutboxItem) -> str:
        """Why ``item`` is still waiting, from its last error: "Bob is not reachable:
        connection refused".

        The same reason gives the same words round after round, so it is
        noted once (``note_status`` keeps no note equal to the latest); when
        it was first noted and when the next try is are added when the
        message is shown (``Node.status_detail``).
        """
        contact = self.store.get_contact(item.recipient)
        who = contact.name if contact is not None and contact.name else item.recipient.short()
        error = item.last_error
        if error.startswith(NOT_REACHABLE):
            return f"{who} is {error}"
        return f"not delivered to {who} yet: {error}"

    def reschedule(self, item: OutboxItem, error: str) -> int:
        """Back ``item`` off; returns the delay in ms."""
        delay = backoff_ms(item.attempts, self.rng)
        next_at = self.now_ms() + delay
        self.store.reschedule_outbox(item.envelope_id, next_at, item.attempts + 1, error)
        return delay

    def reschedule_all(self, items: Sequence[OutboxItem], error: str) -> int:
        """Back every item off in one transaction; returns the shortest delay in ms."""
        if not items:
            return 0
        with self.store.transaction():
            return min(self.reschedule(item, error) for item in items)

    def due_now(self, peer: PeerId) -> None:
        """Make everything waiting for ``peer`` due now (it became reachable)."""
        now = self.now_ms()
        waiting = [i for i in self.store.outbox_for(peer) if i.next_attempt_at_ms > now]
        if waiting:
            with self.store.transaction():
                for item in waiting:
                    self.store.reschedule_outbox(
                        item.envelope_id, now, item.attempts, item.last_error
                    )

    def mark_sent(self, items: Sequence[OutboxItem]) -> None:
        """``sent``, in one transaction; and not due again until the ack is late."""
        if not items:
            return
        # Undivided (no savepoint per call): a NotFound below writes nothing.
        with self.store.transaction(undivided=True):
            self._mark_sent(items, set())

    def _mark_sent(self, items: Sequence[OutboxItem], answered: set[bytes]) -> None:
        """Inside a transaction: ``items`` are ``sent``; those whose envelope is not in
        ``answered`` (acked in the same transaction) wait for their ack until ACK_TIMEOUT."""
        retry_at = self.now_ms() + int(ACK_TIMEOUT * 1000)
        for item in items:
            self.set_status(item, DeliveryStatus.SENT)
            if item.envelope_id in answered:
                continue  # its ack below removes or reschedules it
            # Its ack may have come (and removed it) while the batch was written.
            with contextlib.suppress(NotFound):
                self.store.reschedule_outbox(
                    item.envelope_id, retry_at, item.attempts, item.last_error
                )

    def acked(
        self, acked: Sequence[tuple[OutboxItem, Ack]], sent: Sequence[OutboxItem] = ()
    ) -> None:
        """Apply a burst of acks in one transaction, after marking ``sent`` (the
        envelopes written since the last sent mark, acked here or not) ``sent``:
        the writer leaves that mark to the ack's commit, one commit (an fsync)
        a burst instead of two."""
        if not acked and not sent:
            return
        store = self.store
        answered = {item.envelope_id for item, _ in acked}
        marked = {item.envelope_id for item in sent} & answered
        # Undivided (no savepoint per call): a NotFound (a receipt's message
        # is not stored) writes nothing; any other failure undoes the burst.
        with store.transaction(undivided=True):
            self._mark_sent([item for item in sent if item.envelope_id not in answered], answered)
            for item, ack in acked:
                if ack.result == "ok" and item.envelope_id in marked:
                    # The sent mark and the ack's move in one call: the store
                    # reads the message once and writes each row once.
                    self.set_statuses(item, (DeliveryStatus.SENT, DeliveryStatus.DELIVERED))
                    store.remove_outbox(item.envelope_id)
                    continue
                # Its sent mark right before the ack's move: the store reads
                # the message once for both.
                if item.envelope_id in marked:
                    self.set_status(item, DeliveryStatus.SENT)
                if ack.result == "ok":
                    self.set_status(item, DeliveryStatus.DELIVERED)
                    store.remove_outbox(item.envelope_id)
                elif ack.result == "rejected":
                    detail = f"refused by recipient: {_REFUSALS.get(ack.detail, ack.detail)}"
                    self.set_status(item, DeliveryStatus.FAILED, detail)
                    store.remove_outbox(item.envelope_id)
                else:
                    # A blocked sender's retry says nothing more: no colon before nothing.
                    why = "recipient asked to retry" + (f": {ack.detail}" if ack.detail else "")
                    self.reschedule(item, why)
                    self.note(item, f"{why}; retrying")
