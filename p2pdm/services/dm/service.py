"""Direct delivery as one service: the parts of :mod:`p2pdm.services.dm` wired together.

How this works: :class:`Delivery` builds the outbox book, the scheduler,
the sender, the mailbox depositor and fetcher and the receiver for one
node and one network, and offers what the composition root
(:mod:`p2pdm.daemon.runner`) and the tests use: :meth:`~Delivery.run` and
:meth:`~Delivery.run_fetcher` (tasks), :meth:`~Delivery.wake` (something
was queued), :meth:`~Delivery.retry_now` (a peer connected),
:meth:`~Delivery.fetch_now`, and the commit path for envelopes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from p2pdm.core.dm import DM_WINDOW, AckResult
from p2pdm.core.identity import PeerId
from p2pdm.limits import LIVE_LOCATION_DIAL_S
from p2pdm.services.dm.deposits import Depositor, Withdrawer
from p2pdm.services.dm.ephemeral import send_now
from p2pdm.services.dm.fetcher import Fetcher
from p2pdm.services.dm.outbox import OutboxBook
from p2pdm.services.dm.receiver import Receiver
from p2pdm.services.dm.scheduler import Scheduler
from p2pdm.services.dm.sender import Sender
from p2pdm.services.mailbox_client import MailboxClient, MailboxDirectory
from p2pdm.services.ports import Network

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = ["Delivery"]


class Delivery:
    """Moves envelopes from the outbox to their recipients, and accepts envelopes for us."""

    def __init__(
        self,
        node: Node,
        network: Network,
        *,
        rng: random.Random | None = None,
        mailboxes: MailboxDirectory | None = None,
    ) -> None:
        self.node = node
        self.network = network
        self.rng = rng or random.Random()
        #: Where to deposit and fetch; None: direct delivery only.
        self.mailboxes = mailboxes
        self.mailbox_client = MailboxClient(node.identity, network, now_ms=node.now_ms)
        self.book = OutboxBook(node, self.rng, DM_WINDOW)
        self.receiver = Receiver(node, network)
        self.depositor = Depositor(self.book, self.mailbox_client, mailboxes)
        self.withdrawer = Withdrawer(
            node.store, self.mailbox_client, node.now_ms, node.commits.settled
        )
        self.fetcher = Fetcher(node, self.receiver, self.mailbox_client, mailboxes)
        self.scheduler = Scheduler(
            self.book,
            self._send_to,
            (self.receiver.refusals, self.receiver.stream_failures),
        )
        self.sender = Sender(
            self.book,
            network,
            self.scheduler,
            self.depositor,
            self.receiver.seen,
            commits=node.commits,
        )

    async def _send_to(self, peer: PeerId) -> None:
        await self.sender.run_for(peer)

    # --- sending ----------------------------------------------------------------

    def wake(self, peer: PeerId | None = None) -> None:
        """Something was queued (or unsent): run the scheduler (and the peer's
        sender) and the withdrawer now."""
        self.scheduler.wake(peer)
        self.withdrawer.wake()

    async def run_withdrawer(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Take deposits of unsent messages back from mailboxes, until cancelled."""
        await self.withdrawer.run(task_status=task_status)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The outbox scheduler and its senders, until cancelled."""
        await self.scheduler.run(task_status=task_status)

    def retry_now(self, peer: PeerId) -> None:
        """``peer`` is reachable again (it connected): send what waits for it now."""
        self.scheduler.retry_now(peer)

    # --- mailboxes: fetching our own ------------------------------------------------

    def fetch_now(self) -> None:
        """Fetch from our mailboxes now (start-up, reconnect, on demand)."""
        self.fetcher.fetch_now()

    async def run_fetcher(
        self, *, first_delay: float = 0.0, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Fetch from our mailboxes at once (``first_delay`` seconds later, or when
        asked sooner), then every FETCH_INTERVAL_SECONDS or when asked."""
        await self.fetcher.run(first_delay=first_delay, task_status=task_status)

    async def fetch_mailboxes(self) -> int:
        """One fetch round; returns how many envelopes were newly accepted."""
        return await self.fetcher.fetch_mailboxes()

    # --- receiving ----------------------------------------------------------------

    def accept_group(
        self, envelopes: Sequence[bytes], via: PeerId | None = None
    ) -> list[tuple[AckResult, str]]:
        """Commit envelopes that came together with one store commit; an ack result each."""
        return self.receiver.accept_group(envelopes, via)

    async def send_now(self, peer: PeerId, envelope: bytes) -> bool:
        """Hand an ephemeral envelope (typing) to a connected peer now, or drop it."""
        return await send_now(self.network, peer, envelope)

    async def send_dialing(self, peer: PeerId, envelope: bytes) -> bool:
        """:meth:`send_now`, dialing ``peer`` at its known addresses first if it is
        not connected, within LIVE_LOCATION_DIAL_S (a live location's start)."""
        contact = self.node.store.get_contact(peer)
        addrs = list(contact.addrs) if contact is not None else []
        return await send_now(self.network, peer, envelope, addrs, LIVE_LOCATION_DIAL_S)

    def accept(self, envelope: bytes, via: PeerId | None = None) -> tuple[AckResult, str]:
        """Commit one envelope; returns the ack result and a short reason."""
        return self.receiver.accept(envelope, via)
