"""A message request the recipient refuses for its stamp says so in the sender's
status detail: whole nodes over libp2p on the memory network, in virtual time."""

from __future__ import annotations

import trio

from p2pdm.core.model import DeliveryStatus
from p2pdm.sim.pytest_plugin import SimNetworkFactory

ALICE, BOB = 1, 2


async def test_a_request_refused_for_want_of_a_good_stamp_says_why(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(3, contacts=0) as net:
        alice, bob = net[ALICE].running.node, net[BOB].running.node
        alice.add_contact_from_invite(bob.invite(), "bob")  # Bob does not know Alice
        # Bob asks strangers for more work than Alice's node does.
        bob.messenger.stamps.bits = alice.messenger.stamps.bits + 8
        sent = await net.send(ALICE, BOB, "hello, we met at the station")
        failed = await net.wait_status(ALICE, sent, DeliveryStatus.FAILED)
        detail = alice.status_detail(failed)
        assert "not its contact" in detail and "request stamp" in detail, detail
        assert bob.messenger.dropped_unstamped >= 1 and bob.requests() == []
