"""Message actions through mailboxes: whole nodes over libp2p on the memory network,
in virtual time; the recipient is away while the author edits, reacts and unsends
(which takes the unsent message's deposits back from the mailboxes)."""

from __future__ import annotations

import trio

from p2pdm.core.model import DeliveryStatus
from p2pdm.node.messenger import message_text
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory


async def test_actions_left_at_mailboxes_apply_when_the_recipient_returns(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(5, mailboxes=3, contacts=[(3, 4)]) as net:
        alice, bob = net[3], net[4]
        a, b = alice.running.node, bob.running.node
        hello = await net.send(bob.index, alice.index, "hello")
        await net.wait_received(alice.index, hello)

        await net.stop(bob)
        kept = await net.send(alice.index, bob.index, "see you at 8")
        gone = await net.send(alice.index, bob.index, "my pin is 1234")
        for message in (kept, gone):
            await net.wait_status(alice.index, message, DeliveryStatus.DEPOSITED)
        a.edit(kept.id, "see you at 9")
        a.react(hello.id, "👋")
        a.unsend(gone.id)  # its envelope leaves alice's outbox; the unsend follows it
        assert all(item.message_id != gone.id for item in a.store.outbox_for(b.peer_id))

        await net.start(bob)  # fetches from its mailboxes at start
        b = bob.running.node

        def settled() -> bool:
            got, erased = b.store.get_message(kept.id), b.store.get_message(gone.id)
            reactions = b.extras([m for m in [b.store.get_message(hello.id)] if m])
            return (
                got is not None
                and message_text(got) == "see you at 9"
                and (erased is None or erased.unsent)
                and reactions.get(hello.id) is not None
                and reactions[hello.id].reactions == {"👋": [a.peer_id]}
            )

        await wait_until(settled)
        # The unsent message's deposits were taken back (withdraw): Bob never
        # got it, and its unsend waits among the held actions until it
        # expires; had a mailbox kept a copy, the unsend would erase it.
        erased = b.store.get_message(gone.id)
        assert erased is None or erased.body == b""
        assert b.store.counts()["actions_refused"] == 0
        assert b.store.held_count() == (1 if erased is None else 0)
