"""Fetching our own envelopes from our mailboxes.

How this works: :class:`Fetcher` runs one round at start-up, then every
``FETCH_INTERVAL_SECONDS`` or when asked (reconnect, on demand). The start-up
round fetches from the mailboxes we knew (the providers found last, kept
across restarts: :meth:`~p2pdm.services.mailbox_client.MailboxDirectory.own_first`)
and looks providers up only if we knew none or one of them failed; the
others use the directory's provider list while it is trusted
(``MAILBOX_TRUST_SECONDS``), and look up when one of its mailboxes fails. A round
reads every mailbox of ours (at most ``MAX_CONCURRENT_FETCHES`` at once)
page by page, commits each page through the same path as envelopes from a
dm stream, deletes from the mailbox what is stored (or can never be), and
queues the receipts the conversation machine says are due (``delivered``,
for what it stored), one per sender and status each round, all of them in
one store commit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import trio

from p2pdm.core.conversation import ReceiptStatus
from p2pdm.core.identity import PeerId
from p2pdm.core.mailbox import FetchedEnvelope
from p2pdm.errors import P2PDMError, StoreError
from p2pdm.services.dm.receiver import Receiver
from p2pdm.services.limits import FETCH_INTERVAL_SECONDS, MAX_CONCURRENT_FETCHES
from p2pdm.services.mailbox_client import MailboxClient, MailboxDirectory

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = ["Fetcher"]

log = logging.getLogger("p2pdm.services.dm")


class Fetcher:
    """Brings in what our mailboxes hold for ``node`` (``mailboxes`` None: nothing)."""

    def __init__(
        self,
        node: Node,
        receiver: Receiver,
        client: MailboxClient,
        mailboxes: MailboxDirectory | None,
    ) -> None:
        self.node = node
        self.receiver = receiver
        self.client = client
        self.mailboxes = mailboxes
        self._wake = trio.Event()

    def fetch_now(self) -> None:
        """Fetch from our mailboxes now (start-up, reconnect, on demand)."""
        self._wake.set()

    async def run(
        self, *, first_delay: float = 0.0, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Fetch from our mailboxes at once (``first_delay`` seconds later, or when
        asked sooner), then every FETCH_INTERVAL_SECONDS or when asked."""
        task_status.started()
        if first_delay > 0:
            with trio.move_on_after(first_delay):
                await self._wake.wait()
        first = True
        while True:
            self._wake = trio.Event()
            try:
                await self.fetch_mailboxes(first=first)
            except Exception:
                log.exception("fetching from mailboxes failed")
            first = False
            with trio.move_on_after(FETCH_INTERVAL_SECONDS):
                await self._wake.wait()

    async def fetch_mailboxes(self, *, first: bool = False) -> int:
        """One round: commit what our mailboxes hold for us, delete it there, queue receipts.

        ``first`` (the start-up round): from the mailboxes we knew, looking
        providers up only if we knew none or one of them failed. Returns how
        many envelopes were newly accepted.
        """
        if self.mailboxes is None:
            return 0
        due: defaultdict[tuple[PeerId, ReceiptStatus], list[bytes]] = defaultdict(list)
        accepted = 0

        def handle(via: PeerId, page: list[FetchedEnvelope]) -> list[int]:
            nonlocal accepted
            done = []
            outcomes = self.receiver.accept_all([item.envelope for item in page], via, "mailbox")
            for item, (result, _, received) in zip(page, outcomes, strict=True):
                if result != "retry":  # stored now or before, or never storable
                    done.append(item.seq)
                if received is not None:
                    accepted += 1
                    for receipt in received.effects.receipts:
                        due[receipt.to, receipt.status].extend(receipt.ids)
            return done

        limiter = trio.Semaphore(MAX_CONCURRENT_FETCHES)
        failed: list[PeerId] = []

        async def fetch_one(mailbox: PeerId, addrs: list[str]) -> None:
            async with limiter:
                try:
                    await self.client.fetch(mailbox, addrs, lambda page: handle(mailbox, page))
                except (P2PDMError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    log.info("fetching from mailbox %s failed: %s", mailbox.short(), exc)
                    failed.append(mailbox)

        async def fetch_all(mailboxes: list[tuple[PeerId, list[str]]]) -> None:
            async with trio.open_nursery() as nursery:
                for mailbox, addrs in mailboxes:
                    nursery.start_soon(fetch_one, mailbox, addrs)

        if first:
            mailboxes, known = await self.mailboxes.own_first()
        else:
            mailboxes, known = await self.mailboxes.own_cached()
        await fetch_all(mailboxes)
        if known and failed:
            # A mailbox we knew (remembered, or trusted for a while) is gone:
            # senders deposit at the next closest now, which we may not know;
            # look the providers up.
            self.mailboxes.forget_providers()
            tried = {mailbox for mailbox, _ in mailboxes}
            await fetch_all([c for c in await self.mailboxes.own() if c[0] not in tried])
        self._queue_receipts(due)
        return accepted

    def _queue_receipts(self, due: dict[tuple[PeerId, ReceiptStatus], list[bytes]]) -> None:
        """Queue the round's receipts, all in one commit (each still all-or-nothing
        alone); their senders are woken once it is durable."""
        if not due:
            return
        queued: list[PeerId] = []
        messenger = self.node.messenger
        try:
            with self.node.store.group():
                for (sender, status), ids in due.items():
                    try:
                        messenger.send_receipt(sender, status, ids)
                    except P2PDMError as exc:
                        log.info("no %s receipt for %s: %s", status, sender.short(), exc)
                        continue
                    queued.append(sender)
        except BaseException as exc:
            messenger.reload()  # sessions advanced for receipts that were not stored
            if not isinstance(exc, StoreError):
                raise
            log.error("could not queue %d receipts: %s", len(due), exc)
            return
        for sender in dict.fromkeys(queued):
            self.node.on_outbox(sender)
