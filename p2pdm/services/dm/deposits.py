"""Depositing undelivered envelopes at mailboxes, for recipients that are offline.

How this works: when direct delivery to a peer fails (or takes longer than
``REACH_TIMEOUT``), :class:`Depositor` leaves what is queued for it at up to
``MAILBOX_COPIES`` mailboxes, chosen by the
:class:`~p2pdm.services.mailbox_client.MailboxDirectory`. The envelopes stay
in the outbox: direct delivery goes on being retried. Each mailbox's
refusal or error, and why direct delivery failed, is noted with the
message; reaching at least one mailbox marks it ``deposited``. With no
mailbox holding it, the note says why the recipient is not reachable and
when the next try is (:meth:`OutboxBook.waiting`), with or without
mailboxes configured.

:class:`Withdrawer` takes deposits back: unsending a message turns the
deposits of its envelopes (and of its files' chunks) into withdrawals
(``Store.remove_outbox_of``, ``remove_followers_of``), which it presents to
each mailbox as their secrets (docs/protocol.md §14.3 ``withdraw``), best
effort: at most MAX_WITHDRAW_ATTEMPTS tries per mailbox, backing off from
WITHDRAW_RETRY_SECONDS; a mailbox that cannot withdraw (an older node) is
let be, and whatever is left there expires.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus, OutboxItem, Withdrawal
from p2pdm.errors import P2PDMError
from p2pdm.net.timers import Alarm
from p2pdm.services.dm.outbox import OutboxBook
from p2pdm.services.limits import (
    MAILBOX_COPIES,
    MAX_NOTE,
    MAX_WITHDRAW_ATTEMPTS,
    MAX_WITHDRAW_BATCH,
    WITHDRAW_INTERVAL_SECONDS,
    WITHDRAW_RETRY_SECONDS,
)
from p2pdm.services.mailbox_client import MailboxClient, MailboxDirectory, describe_refusal
from p2pdm.store.roles import OutboxStore

__all__ = ["Depositor", "Withdrawer"]

log = logging.getLogger("p2pdm.services.dm")


class Depositor:
    """Leaves envelopes for offline peers at their mailboxes (``mailboxes`` None: nowhere)."""

    def __init__(
        self, book: OutboxBook, client: MailboxClient, mailboxes: MailboxDirectory | None
    ) -> None:
        self.book = book
        self.client = client
        self.mailboxes = mailboxes

    async def deposit(self, peer: PeerId, failed: list[OutboxItem]) -> None:
        """Leave undelivered envelopes at up to MAILBOX_COPIES mailboxes for ``peer``.

        They stay in the outbox: direct delivery goes on being retried. Each
        mailbox's refusal (over quota, too large, …) or error, and why direct
        delivery failed, is noted with the message (status detail, history,
        event); reaching at least one mailbox marks the message ``deposited``.
        """
        if not failed:
            return
        refusals = await self._deposit_at_mailboxes(peer, failed) if self.mailboxes else {}
        with self.book.store.transaction():
            for item in failed:
                self._note_round(item, refusals.get(item.envelope_id, []))

    async def _deposit_at_mailboxes(
        self, peer: PeerId, failed: list[OutboxItem]
    ) -> dict[bytes, list[str]]:
        """Deposit what needs more copies; returns each envelope's refusals and errors."""
        assert self.mailboxes is not None
        store = self.book.store
        now = self.book.now_ms()
        held: dict[bytes, set[PeerId]] = {}
        items: dict[bytes, OutboxItem] = {}
        for item in failed:
            if store.get_outbox(item.envelope_id) is None:
                continue  # delivered or confirmed meanwhile
            holders = {m for m, until in store.deposits(item.envelope_id) if until > now}
            if len(holders) < MAILBOX_COPIES:
                held[item.envelope_id], items[item.envelope_id] = holders, item
        refusals: defaultdict[bytes, list[str]] = defaultdict(list)
        if not items:
            return refusals
        reached = False
        for mailbox, addrs in await self.mailboxes.for_recipient(peer):
            todo = [
                items[eid]
                for eid, holders in held.items()
                if len(holders) < MAILBOX_COPIES and mailbox not in holders
            ]
            if not todo:
                break
            try:
                results = await self.client.deposit(
                    mailbox, addrs, [item.envelope for item in todo]
                )
            except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                log.info("mailbox %s unusable: %s", mailbox.short(), exc)
                if mailbox in self.mailboxes.known_providers():
                    # A provider list is trusted for long: one is gone, look again next time.
                    self.mailboxes.forget_providers()
                for item in todo:
                    refusals[item.envelope_id].append(f"mailbox {mailbox.short()} unreachable")
                continue
            reached = True
            with store.transaction():  # one commit per mailbox, not per envelope
                for item, result in zip(todo, results, strict=True):
                    if result.ok:
                        until = min(result.until_s * 1000, item.expires_at_ms)
                        store.add_deposit(item.envelope_id, mailbox, until)
                        held[item.envelope_id].add(mailbox)
                    else:
                        refusals[item.envelope_id].append(
                            f"mailbox {mailbox.short()} refused: {describe_refusal(result)}"
                        )
        if not reached:
            self.mailboxes.forget()  # look them up afresh next time
        return refusals

    def _note_round(self, item: OutboxItem, refusals: list[str]) -> None:
        """Record how this round went for ``item``: ``deposited``, or a note saying why not."""
        store = self.book.store
        current = store.get_outbox(item.envelope_id)
        if current is None:
            return  # delivered (or confirmed) meanwhile
        now = self.book.now_ms()
        holders = [until for _, until in store.deposits(item.envelope_id) if until > now]
        if holders:
            parts = list(refusals)
            if current.last_error:
                parts.append(f"direct delivery: {current.last_error}")
            until = datetime.fromtimestamp(max(holders) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            detail = "; ".join([f"held by {len(holders)} mailbox(es) until {until} UTC", *parts])
            if not self.book.set_status(item, DeliveryStatus.DEPOSITED, detail[:MAX_NOTE]):
                self.book.note(item, detail)
        elif current.last_error:  # why direct delivery failed, when it is tried next
            self.book.note(item, "; ".join([*refusals, self.book.waiting(current)]))
        elif refusals:
            self.book.note(item, "; ".join([*refusals, "retrying"]))


class Withdrawer:
    """Takes our deposits back from mailboxes after an unsend, best effort."""

    def __init__(
        self,
        store: OutboxStore,
        client: MailboxClient,
        now_ms: Callable[[], int],
        settled: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.now_ms = now_ms
        #: Waits for a commit in its worker thread (``OffLoopCommits.settled``):
        #: woken by what an API request queued, the round reads after that
        #: commit returned instead of doing its fsync on the loop.
        self.settled = settled
        self._wake = Alarm()
        #: Envelopes withdrawn so far (for the local API and tests).
        self.withdrawn = 0
        #: The last round took MAX_WITHDRAW_BATCH: the next goes at once.
        self._full = False

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Withdraw what is due now, then when woken or every WITHDRAW_INTERVAL_SECONDS."""
        task_status.started()
        while True:
            self._wake = Alarm()
            try:
                if self.settled is not None:
                    await self.settled()
                await self.withdraw_due()
            except P2PDMError as exc:  # the store failed: the next round tries again
                log.warning("withdrawing deposits failed: %s", exc)
            if self._full:
                continue  # more are due than one round takes
            await self._wake.wait(WITHDRAW_INTERVAL_SECONDS)

    async def withdraw_due(self) -> int:
        """One round: each mailbox with withdrawals due gets one request; how many
        envelopes the mailboxes said they removed."""
        due = self.store.withdrawals_due(self.now_ms(), MAX_WITHDRAW_BATCH)
        self._full = len(due) >= MAX_WITHDRAW_BATCH
        by_mailbox: defaultdict[PeerId, list[Withdrawal]] = defaultdict(list)
        for item in due:
            by_mailbox[item.mailbox].append(item)
        before = self.withdrawn
        async with trio.open_nursery() as nursery:
            for mailbox, items in by_mailbox.items():
                nursery.start_soon(self._withdraw_at, mailbox, items)
        return self.withdrawn - before

    async def _withdraw_at(self, mailbox: PeerId, items: list[Withdrawal]) -> None:
        ids = [item.envelope_id for item in items]
        try:
            removed = await self.client.withdraw(
                mailbox, self.client.network.peer_addrs(mailbox), ids
            )
        except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            log.info("withdraw at mailbox %s failed: %s", mailbox.short(), exc)
            now = self.now_ms()
            with self.store.transaction():
                for item in items:
                    attempts = item.attempts + 1
                    if attempts >= MAX_WITHDRAW_ATTEMPTS:
                        self.store.withdrawal_done(item.envelope_id, mailbox)  # it expires there
                        continue
                    pause_ms = int(WITHDRAW_RETRY_SECONDS * 1000) << (attempts - 1)
                    self.store.withdrawal_retry(item.envelope_id, mailbox, attempts, now + pause_ms)
            return
        if removed is None:
            log.info("mailbox %s cannot withdraw (an older node): left to expire", mailbox.short())
        else:
            self.withdrawn += removed
            log.info("mailbox %s gave back %d of %d deposits", mailbox.short(), removed, len(ids))
        with self.store.transaction():
            for item in items:
                self.store.withdrawal_done(item.envelope_id, mailbox)
