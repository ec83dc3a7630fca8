"""A stranger's message request left at mailboxes while its recipient is away:
whole nodes over libp2p on the memory network, in virtual time."""

from __future__ import annotations

import trio

from p2pdm.core.model import DeliveryStatus
from p2pdm.sim.pytest_plugin import SimNetworkFactory

ALICE, BOB = 3, 4


async def test_a_request_left_at_mailboxes_arrives_stamped_and_gets_no_read_receipt(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(5, mailboxes=3, contacts=0) as net:
        alice, bob = net[ALICE], net[BOB]
        a = alice.running.node
        a.add_contact_from_invite(bob.running.node.invite(), "bob")  # Bob does not know Alice
        await net.stop(bob)
        sent = await net.send(ALICE, BOB, "hi bob, we met at the station")
        await net.wait_status(ALICE, sent, DeliveryStatus.DEPOSITED)

        await net.start(bob)  # fetches from its mailboxes at start
        b = bob.running.node
        got = await net.wait_received(BOB, sent)
        assert got.request  # waits apart, as a request
        [request] = b.requests()
        assert (request.peer_id, request.count) == (a.peer_id, 1)
        assert b.messenger.dropped_unstamped == 0  # the stamp held at the mailbox too
        # Fetched from a mailbox, it is receipted "delivered" (§18.4), never "read".
        await net.wait_status(ALICE, sent, DeliveryStatus.DELIVERED)
        b.mark_read(a.peer_id)
        await trio.sleep(60)
        assert a.messenger.message(sent.id).status is DeliveryStatus.DELIVERED
