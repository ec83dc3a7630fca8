"""Actions that overtake their messages through real mailboxes: whole nodes over
libp2p on the memory network, in virtual time.

The messages sit at the three mailboxes closest to the recipient; those go
away before the author reacts, edits and unsends, so the actions are left at
the fourth mailbox only. The recipient comes back while only that one runs:
it gets every action before its message, holds them, and applies them when
the other mailboxes return with the messages.
"""

from __future__ import annotations

import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus, EventType
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.services.limits import MAILBOX_COPIES
from p2pdm.sim.network import SimNetwork, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory

MAILBOXES = MAILBOX_COPIES + 1


def _holders(node: Node, peer: PeerId) -> dict[bytes, set[PeerId]]:
    """Which mailboxes hold each envelope ``node`` has queued for ``peer``."""
    return {
        item.message_id: {mailbox for mailbox, _ in node.store.deposits(item.envelope_id)}
        for item in node.store.outbox_for(peer)
    }


def _bootstrap_through(net: SimNetwork, index: int) -> list[str]:
    return [net[index].running.host.listen_addrs()[0]]


async def test_unsend_edit_and_reaction_that_arrive_before_their_messages_still_win(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    alice_at, bob_at = MAILBOXES, MAILBOXES + 1
    async with sim_network(
        MAILBOXES + 2, mailboxes=MAILBOXES, contacts=[(alice_at, bob_at)]
    ) as net:
        alice, bob = net[alice_at], net[bob_at]
        a = alice.running.node
        await net.stop(bob)
        kept = await net.send(alice_at, bob_at, "see you at 8")
        gone = await net.send(alice_at, bob_at, "my pin is 1234")
        liked = await net.send(alice_at, bob_at, "tickets booked")
        messages = (kept, gone, liked)
        for message in messages:
            await net.wait_status(alice_at, message, DeliveryStatus.DEPOSITED)
        await wait_until(
            lambda: all(len(h) == MAILBOX_COPIES for h in _holders(a, bob.peer_id).values())
        )
        [holders] = {frozenset(h) for h in _holders(a, bob.peer_id).values()}
        away = [m for m in net.nodes[:MAILBOXES] if m.peer_id in holders]
        [spare] = [m for m in net.nodes[:MAILBOXES] if m.peer_id not in holders]
        for mailbox in away:
            await net.stop(mailbox)

        a.edit(kept.id, "see you at 9")
        a.react(liked.id, "🎉")
        a.unsend(gone.id)
        # A reply overtakes what it quotes too: shown "unavailable" until it comes.
        reply = a.send_text(bob.peer_id, "bring them", reply_to=liked.id)
        message_ids = {m.id for m in messages}

        def actions_deposited() -> bool:
            actions = {
                message_id: held
                for message_id, held in _holders(a, bob.peer_id).items()
                if message_id not in message_ids
            }
            return len(actions) == 4 and all(h == {spare.peer_id} for h in actions.values())

        await wait_until(actions_deposited)
        await net.stop(alice)  # nothing reaches Bob directly

        await net.start(bob, bootstrap=_bootstrap_through(net, spare.index))
        b = bob.running.node
        await wait_until(lambda: b.store.held_count() == 3)
        assert all(b.store.get_message(m.id) is None for m in messages)
        await wait_until(lambda: b.store.get_message(reply.id) is not None)
        early = b.store.get_message(reply.id)
        assert early is not None
        assert b.extras([early])[reply.id].reply_to == liked.id
        assert b.extras([early])[reply.id].reply_snippet is None  # the original is not here

        for mailbox in away:
            await net.start(mailbox, bootstrap=_bootstrap_through(net, spare.index))
        await wait_until(
            lambda: all(b.store.get_message(m.id) is not None for m in messages), 3_600
        )
        edited, unsent, reacted = (b.store.get_message(m.id) for m in messages)
        assert edited is not None and message_text(edited) == "see you at 9"
        assert edited.edited_at_ms is not None
        assert unsent is not None and unsent.unsent and unsent.body == b""
        assert b.search("1234") == []
        assert reacted is not None
        assert b.extras([reacted])[reacted.id].reactions == {"🎉": [a.peer_id]}
        late = b.store.get_message(reply.id)
        assert late is not None and b.extras([late])[reply.id].reply_snippet == "tickets booked"
        assert b.store.held_count() == 0 and b.store.counts()["actions_refused"] == 0
        # The applied actions were reported; the unsent text was never in an event.
        types = [e.type for e in b.event_page(0, 500).events]
        for kind in (
            EventType.MESSAGE_EDITED,
            EventType.MESSAGE_UNSENT,
            EventType.MESSAGE_REACTION,
        ):
            assert kind in types
