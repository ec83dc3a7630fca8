"""A node that offers the mailbox service deposits for its offline contacts at the
other mailboxes: its own provider record is not the network's provider list."""

from __future__ import annotations

import pytest
import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus
from p2pdm.services.mailbox_client import MAILBOX_COPIES
from p2pdm.sim.pytest_plugin import SimNetworkFactory


@pytest.mark.slow
async def test_a_mailbox_node_deposits_at_the_other_mailboxes(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(7, mailboxes=4, contacts=[(3, 6)]) as net:
        boxes, sender, recipient = net.nodes[:4], net[3], net[6]

        def held(peer: PeerId) -> int:
            return sum(box.store.mailbox_usage(peer)[0] for box in boxes)

        await net.stop(recipient)
        sent = await net.send(sender.index, recipient.index, "while you were out")
        await net.wait_status(sender.index, sent, DeliveryStatus.DEPOSITED)
        assert held(recipient.peer_id) == MAILBOX_COPIES
        assert sender.store.mailbox_usage(recipient.peer_id)[0] == 0  # not its own
        await net.start(recipient)  # fetches from its mailboxes at start
        await net.wait_received(recipient.index, sent)
