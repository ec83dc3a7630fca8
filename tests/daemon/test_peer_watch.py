"""Which peers a running node counts as online (what typing signals need), and
when it counts its network as back and fetches from its mailboxes."""

from __future__ import annotations

import trio
import trio.testing

from p2pdm.core.model import DeliveryStatus, direct_conversation_id
from p2pdm.daemon.netback import gone_after
from p2pdm.daemon.runner import PEER_WATCH_SECONDS, Serving
from p2pdm.net import Host
from p2pdm.net.upkeep import Upkeep
from p2pdm.services.limits import FETCH_INTERVAL_SECONDS
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from tests.conftest import UPKEEP
from tests.daemon.test_reconnect import COMEBACK_BOUND_SECONDS


async def test_a_peer_connected_before_it_became_a_contact_is_online(
    sim_network: SimNetworkFactory,
) -> None:
    async with sim_network(2, clock="real", contacts=[], upkeep=UPKEEP) as net:
        alice, bob = net[0].running.node, net[1].running.node
        # Connected as DHT peers while strangers: nobody is online yet.
        await wait_until(lambda: bob.peer_id in net[0].running.host.connections(), 30)
        assert bob.peer_id not in alice.online
        alice.add_contact_from_invite(bob.invite(), "bob")
        bob.add_contact_from_invite(alice.invite(), "alice")
        # Over the connection they already have, with no new one.
        await wait_until(lambda: bob.peer_id in alice.online and alice.peer_id in bob.online, 10)
        conversation = direct_conversation_id(alice.peer_id, bob.peer_id)
        assert await alice.send_typing(conversation, bob.peer_id) is None


#: Short upkeep so quiet connections close within the test: closed after 3 s
#: idle, bootstrap peers re-dialed at most every second. Losing every
#: connection for gone_after(IDLE_UPKEEP) = 8.5 s means the dials failed.
IDLE_UPKEEP = Upkeep(
    interval=0.5, idle_timeout=3.0, dht_refresh_interval=600.0, bootstrap_retry_interval=1.0
)
MAILBOX, ALICE, BOB = 0, 1, 2


def count_fetch_rounds(running: Serving) -> list[float]:
    """Each fetch round of ``running``'s fetcher from now on, at its trio time."""
    rounds: list[float] = []
    fetcher = running.delivery.fetcher
    fetch = fetcher.fetch_mailboxes

    async def counted(*, first: bool = False) -> int:
        rounds.append(trio.current_time())
        return await fetch(first=first)

    fetcher.fetch_mailboxes = counted  # type: ignore[method-assign]
    return rounds


async def watch_spells(host: Host, spells: list[tuple[float, float]]) -> None:
    """Record each spell in which ``host`` had no connection at all (start, end)."""
    alone_since: float | None = None
    while True:
        if host.connections():
            if alone_since is not None:
                spells.append((alone_since, trio.current_time()))
            alone_since = None
        elif alone_since is None:
            alone_since = trio.current_time()
        await trio.sleep(0.25)


async def test_connections_closed_as_idle_do_not_refetch_the_mailboxes(
    sim_network: SimNetworkFactory, autojump_clock: trio.testing.MockClock
) -> None:
    """A quiet node loses every connection as idle and gets one again (a bootstrap
    re-dial) again and again: that is not its network coming back."""
    async with sim_network(3, mailboxes=1, upkeep=IDLE_UPKEEP) as net:
        bob = net[BOB].running
        first = await net.send(ALICE, BOB, "hello")
        await net.wait_delivered(ALICE, first, 10)
        rounds = count_fetch_rounds(bob)
        spells: list[tuple[float, float]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_spells, bob.host, spells)
            await trio.sleep(120)
            nursery.cancel_scope.cancel()
        # Bob was alone several times, each time shorter than failed dials take…
        assert len(spells) >= 3
        assert all(
            end - start < gone_after(IDLE_UPKEEP, PEER_WATCH_SECONDS) for start, end in spells
        )
        # …and fetched nothing (his next round is FETCH_INTERVAL_SECONDS away).
        assert rounds == []
        # Messages still reach him directly.
        later = await net.send(ALICE, BOB, "still here")
        await net.wait_delivered(ALICE, later, 10)


async def test_mail_deposited_while_the_network_was_away_is_fetched_when_it_is_back(
    sim_network: SimNetworkFactory, autojump_clock: trio.testing.MockClock
) -> None:
    """Bob's network goes (every dial black-holed) while Alice sends: her message
    waits in the mailbox. Bob's network back, he fetches it at once, long before
    his next periodic round or Alice's next direct try."""
    async with sim_network(3, mailboxes=1, upkeep=IDLE_UPKEEP) as net:
        alice, bob = net[ALICE], net[BOB]
        first = await net.send(ALICE, BOB, "hello")
        await net.wait_delivered(ALICE, first, 10)
        rounds = count_fetch_rounds(bob.running)
        net.partition([[BOB]])
        away = await net.send(ALICE, BOB, "while your network is away")
        await net.wait_status(ALICE, away, DeliveryStatus.DEPOSITED, 60)
        # Alice's next direct try an hour off: only Bob's fetch can bring it in.
        later = alice.running.node.now_ms() + 3600_000
        for item in alice.store.outbox_for(bob.peer_id):
            alice.store.reschedule_outbox(item.envelope_id, later, item.attempts, item.last_error)
        await trio.sleep(30)  # Bob's re-dials keep failing meanwhile
        assert rounds == []
        healed = trio.current_time()
        net.heal()
        await net.wait_received(BOB, away, 30)
        assert rounds and rounds[0] - healed <= COMEBACK_BOUND_SECONDS
        assert trio.current_time() - healed < FETCH_INTERVAL_SECONDS / 10
        assert len(rounds) == 1
