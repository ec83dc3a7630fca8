"""The mailboxes a running node uses and the one it offers, as the API shows them.

``used``: where this node fetches its own envelopes from — the mailboxes it
names in its signed record (``--mailbox-peer``, ``named: true``), then the
closest mailbox providers the last DHT lookup found (nothing is looked up
here). ``offered``: what this node's mailbox service (``--mailbox``) holds
for others beside its quotas, or None when it offers none. ``withdrawals``:
the deposits of unsent messages this node still has to take back, and how
many mailboxes gave back since it started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from p2pdm.services.dm.deposits import Withdrawer
from p2pdm.services.mailbox_client import MailboxDirectory

if TYPE_CHECKING:  # a node that offers no mailbox does not load the server
    from p2pdm.services.mailbox_server import MailboxService

__all__ = ["mailboxes_json"]


def mailboxes_json(
    directory: MailboxDirectory, service: MailboxService | None, withdrawer: Withdrawer
) -> dict[str, object]:
    named = {peer for peer, _ in directory.preferred}
    used = [
        {"peer_id": str(peer), "addrs": list(addrs), "named": peer in named}
        for peer, addrs in directory.own_known()
    ]
    withdrawals = {
        "pending": withdrawer.store.withdrawals_count(),
        "withdrawn": withdrawer.withdrawn,
    }
    return {
        "used": used,
        "offered": None if service is None else service.usage(),
        "withdrawals": withdrawals,
    }
