"""A contact who comes back on a new address, on real nodes: py-libp2p over TCP
on loopback, and over the in-memory network on trio's virtual clock, where the
documented time bound is checked whatever the machine's speed.

Alice, Bob and a DHT node (node 0); no mailbox anywhere, so whatever
reaches Bob comes by direct delivery once he is back.
"""

from __future__ import annotations

import pytest
import trio

from p2pdm.core.model import DeliveryStatus, EventType, StoredMessage
from p2pdm.net.upkeep import Upkeep
from p2pdm.sim.network import SimNetwork, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory

pytestmark = pytest.mark.net

#: Short upkeep periods so bootstrap re-dials and refreshes happen within a test.
UPKEEP = Upkeep(
    interval=0.5, idle_timeout=30.0, dht_refresh_interval=5.0, bootstrap_retry_interval=1.0
)
#: What the documentation promises (docs/protocol.md, "Direct delivery"): a
#: contact back on a new address gets what was queued for it within this long
#: of its node serving again (it connects to us; our peer watch, every
#: PEER_WATCH_SECONDS, sends at once). Checked on trio's virtual clock, where
#: only the nodes' own waits (watch periods, timeouts, backoff) take time;
#: measured 0.6-1.7 s on loopback.
COMEBACK_BOUND_SECONDS = 5.0
#: Starting the node itself (joining the DHT) comes on top: 5 s of virtual time.
START_BOUND_SECONDS = 15.0
#: Over TCP, on the wall clock: a bound that only stops a hung test. Alice's
#: next try is an hour off, so only Bob's coming back can deliver before it.
HUNG_SECONDS = 120.0
BOB, ALICE = 1, 2


def detail_of(net: SimNetwork, message: StoredMessage) -> str:
    node = net[ALICE].running.node
    current = node.store.get_message(message.id)
    assert current is not None
    return node.status_detail(current)


async def bob_away_with_three_queued(net: SimNetwork) -> list[StoredMessage]:
    """Bob and Alice talk once; Bob stops; Alice queues three messages for him."""
    first = await net.send(ALICE, BOB, "before")
    await net.wait_delivered(ALICE, first, 10)
    await net.stop(net[BOB])
    return [await net.send(ALICE, BOB, f"while away {i}") for i in range(3)]


async def comes_back_on_a_new_port(net: SimNetwork, bound: float) -> tuple[float, float]:
    """Bob away while Alice queues three messages and backs off, her next try an
    hour off; Bob back on a new port. Returns, on trio's clock, how long his node
    took to serve, then how long until all three were delivered (each within ``bound``).
    """
    bob = net[BOB]
    old_addrs = set(bob.running.host.listen_addrs())
    queued = await bob_away_with_three_queued(net)
    # Alice has tried and failed at least once, and backed off.
    await wait_until(lambda: "not reachable" in detail_of(net, queued[0]), 20)
    # As after a long absence: her next try is far beyond the bound, so
    # only Bob's coming back (he connects to his contacts) can bring it in.
    alice = net[ALICE]
    later = alice.running.node.now_ms() + 3600_000
    for item in alice.store.outbox_for(bob.peer_id):
        alice.store.reschedule_outbox(item.envelope_id, later, item.attempts, item.last_error)

    started = trio.current_time()
    await net.start(bob)
    serving = trio.current_time()
    assert not old_addrs & set(bob.running.host.listen_addrs())  # a new port
    for message in queued:
        await net.wait_delivered(ALICE, message, bound)
    assert all(bob.store.get_message(m.id) is not None for m in queued)
    return serving - started, trio.current_time() - serving


async def test_a_contact_back_on_a_new_port_gets_what_was_queued_within_the_bound(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(3, contacts=[(BOB, ALICE)], mailboxes=0, upkeep=UPKEEP) as net:
        start, took = await comes_back_on_a_new_port(net, COMEBACK_BOUND_SECONDS)
    # Virtual time: what the nodes waited for, whatever the machine's speed.
    assert took < COMEBACK_BOUND_SECONDS
    assert start + took < START_BOUND_SECONDS


@pytest.mark.slow
async def test_a_contact_back_on_a_new_tcp_port_gets_what_was_queued(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(
        3, clock="real", contacts=[(BOB, ALICE)], mailboxes=0, upkeep=UPKEEP
    ) as net:
        start, took = await comes_back_on_a_new_port(net, HUNG_SECONDS)
    print(f"node started in {start:.2f} s; queued messages in {took:.2f} s more")


@pytest.mark.slow
async def test_while_away_the_status_says_not_reachable_and_when_the_next_try_is(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(
        3, clock="real", contacts=[(BOB, ALICE)], mailboxes=0, upkeep=UPKEEP
    ) as net:
        queued = await bob_away_with_three_queued(net)
        await wait_until(lambda: "not reachable" in detail_of(net, queued[0]), 20)
        detail = detail_of(net, queued[0])
        contact = net[ALICE].store.get_contact(net[BOB].peer_id)
        assert contact is not None
        note = f"{contact.name} is not reachable: connection refused"
        assert detail.startswith(f"{note} since ") and " UTC; next try " in detail
        message = net[ALICE].store.get_message(queued[0].id)
        assert message is not None and message.status is DeliveryStatus.QUEUED
        history = net[ALICE].store.status_history(queued[0].id)
        assert [change.detail for change in history if change.detail] == [note]
        # Bots and the web app hear it as a status event (with its time).
        page = net[ALICE].running.node.event_page(0, 1000, types=[EventType.MESSAGE_STATUS])
        assert [e.detail for e in page.events if e.message_id == queued[0].id] == [note]
