"""The in-memory store's outbox of our envelopes and the mailboxes that hold them."""

from __future__ import annotations

from dataclasses import replace

from p2pdm.core.identity import PeerId
from p2pdm.core.model import (
    OutboxItem,
    Withdrawal,
)
from p2pdm.errors import NotFound, StoreError
from p2pdm.store.base import (
    page_limit,
)
from p2pdm.store.memory_state import Dicts

__all__ = ["OutboxDicts"]


class OutboxDicts(Dicts):
    """Outbox and deposits of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def add_outbox(self, item: OutboxItem) -> None:
        """Queue an envelope; raises StoreError if its envelope id is already queued."""
        outbox = self._live().outbox
        if item.envelope_id in outbox:
            raise StoreError(f"envelope {item.envelope_id.hex()} is already in the outbox")
        outbox[item.envelope_id] = item

    def get_outbox(self, envelope_id: bytes) -> OutboxItem | None:
        return self._live().outbox.get(envelope_id)

    def outbox_due(self, now_ms: int, limit: int) -> list[OutboxItem]:
        """Items with ``next_attempt_at_ms <= now_ms``, earliest first (at equal
        times, in the order they were queued), at most ``limit``.

        ``limit`` is capped at MAX_PAGE_SIZE; raises StoreError if it is below 1.
        """
        size = page_limit(limit)
        due = [i for i in self._live().outbox.values() if i.next_attempt_at_ms <= now_ms]
        # A stable sort over the dict's insertion order: ties go in queued order.
        due.sort(key=lambda i: (i.next_attempt_at_ms, i.created_at_ms))
        return due[:size]

    def outbox_for(
        self, recipient: PeerId, due_at_ms: int | None = None, limit: int | None = None
    ) -> list[OutboxItem]:
        """Queued envelopes for ``recipient``, oldest first (at equal times, in the
        order they were queued): all of them, or those
        due at ``due_at_ms`` and not expired; at most ``limit``."""
        items = [
            i
            for i in self._live().outbox.values()
            if i.recipient == recipient
            and (due_at_ms is None or i.next_attempt_at_ms <= due_at_ms < i.expires_at_ms)
        ]
        items.sort(key=lambda i: i.created_at_ms)
        return items if limit is None else items[:limit]

    def outbox_page(self, after: bytes, limit: int) -> list[OutboxItem]:
        size = page_limit(limit)
        items = sorted(
            (i for i in self._live().outbox.values() if i.envelope_id > after),
            key=lambda i: i.envelope_id,
        )
        return items[:size]

    def reschedule_outbox(
        self, envelope_id: bytes, next_attempt_at_ms: int, attempts: int, last_error: str = ""
    ) -> None:
        """Set when to try again; raises NotFound if the envelope is not queued."""
        outbox = self._live().outbox
        item = outbox.get(envelope_id)
        if item is None:
            raise NotFound(f"no envelope {envelope_id.hex()} in the outbox")
        outbox[envelope_id] = replace(
            item, next_attempt_at_ms=next_attempt_at_ms, attempts=attempts, last_error=last_error
        )

    def remove_outbox(self, envelope_id: bytes) -> bool:
        state = self._live()
        state.deposits.pop(envelope_id, None)
        return state.outbox.pop(envelope_id, None) is not None

    def outbox_count(self) -> int:
        return len(self._live().outbox)

    # --- deposits of our own envelopes -------------------------------------

    def add_deposit(self, envelope_id: bytes, mailbox: PeerId, until_ms: int) -> None:
        held = self._live().deposits.setdefault(envelope_id, {})
        held[mailbox] = max(until_ms, held.get(mailbox, until_ms))

    def deposits(self, envelope_id: bytes) -> list[tuple[PeerId, int]]:
        held = self._live().deposits.get(envelope_id, {})
        return sorted(held.items(), key=lambda item: item[0].raw)

    # --- deposits to take back ---------------------------------------------

    def withdrawals_due(self, now_ms: int, limit: int) -> list[Withdrawal]:
        state = self._live()
        for key in [k for k, (until, _, _) in state.withdrawals.items() if until <= now_ms]:
            del state.withdrawals[key]  # the mailbox has let it go by now
        due = sorted(
            (
                Withdrawal(eid, mailbox, until, attempts)
                for (eid, mailbox), (until, attempts, at) in state.withdrawals.items()
                if at <= now_ms
            ),
            key=lambda w: (w.mailbox.raw, w.envelope_id),
        )
        return due[: page_limit(limit)]

    def withdrawal_done(self, envelope_id: bytes, mailbox: PeerId) -> None:
        self._live().withdrawals.pop((envelope_id, mailbox), None)

    def withdrawal_retry(
        self, envelope_id: bytes, mailbox: PeerId, attempts: int, next_at_ms: int
    ) -> None:
        state = self._live()
        held = state.withdrawals.get((envelope_id, mailbox))
        if held is not None:
            state.withdrawals[(envelope_id, mailbox)] = (held[0], attempts, next_at_ms)

    def withdrawals_count(self) -> int:
        return len(self._live().withdrawals)

    # --- our running live location shares (no positions) -------------------

    def put_live_share(self, conversation_id: bytes, peer: PeerId | None, until_ms: int) -> None:
        self._live().live_shares[conversation_id] = (peer, until_ms)

    def remove_live_share(self, conversation_id: bytes) -> bool:
        return self._live().live_shares.pop(conversation_id, None) is not None

    def live_shares(self) -> list[tuple[bytes, PeerId | None, int]]:
        shares = self._live().live_shares
        return [(cid, peer, until) for cid, (peer, until) in sorted(shares.items())]
