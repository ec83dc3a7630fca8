"""Flooding a node's DHT with valid records, through real hosts on loopback.

An attacker sends the victim PUT_VALUE messages with valid p2pdm records,
each signed by a fresh identity, and ADD_PROVIDER messages for fresh keys,
as fast as one stream per message goes (~200-300/s here). The victim must
refuse writes beyond each peer's rate, keep what it holds bounded, keep a
genuine record it held before the flood, and keep serving other peers.
"""

from __future__ import annotations

import logging
import re

import pytest
import trio

# The attacker drives its own libp2p DHT directly, message by message.
from libp2p.peer.id import ID

from p2pdm.core.identity import Identity
from p2pdm.net import DhtLimits, StoreCaps, Upkeep
from p2pdm.net._dht import provider_key
from p2pdm.net.testing import open_hosts, wait_until
from tests.net.conftest import (
    TIMEOUT,
    flood_records,
    fresh_records,
    held,
    node_record,
    register_node_records,
    served_by,
)

pytestmark = pytest.mark.net

MIB = 1 << 20
#: A write rate that refills next to nothing while a test runs (one write in
#: 1,000 s), so what a flooder gets in is the burst, however slow the machine:
#: the tests count writes, they never time them.
TRICKLE = 0.001


async def test_a_record_flood_is_refused_beyond_the_rate_while_others_are_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="p2pdm")
    limits = DhtLimits(write_rate=TRICKLE, write_burst=10)
    batch = fresh_records(60, tag=1)
    upkeep = Upkeep(interval=0.2)  # the round that logs refusals
    async with open_hosts(4, dht_limits=limits, upkeep=upkeep) as (victim, attacker, bob, carol):
        register_node_records([victim, attacker, bob, carol])
        bob_key, bob_value = node_record(Identity(b"\x02" * 32))
        await bob.put_record(bob_key, bob_value)
        assert held(victim, bob_key) == bob_value
        carol_key, carol_value = node_record(Identity(b"\x03" * 32))
        during: dict[str, object] = {}

        async def genuine_traffic() -> None:
            await trio.sleep(0.1)  # the flood is under way
            during["get"] = await served_by(carol, victim, bob_key)
            await carol.put_record(carol_key, carol_value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(genuine_traffic)
            stored = await flood_records(attacker, victim, batch)

        # The victim took the burst, no more (the rate refills next to nothing).
        assert stored == 10, stored
        stats = victim.dht_store_stats()
        assert stats.refused.get("rate") == len(batch) - stored
        flooded = sum(held(victim, key) is not None for key, _ in batch)
        assert flooded == stored
        # Genuine peers were answered during the flood, each within its own rate.
        assert during["get"] == bob_value
        assert held(victim, carol_key) == carol_value
        # Bob's record is still held and served.
        assert await served_by(carol, victim, bob_key) == bob_value

        # Refusals are logged in aggregate by the maintenance loop, not per record.
        def refusal_lines() -> list[str]:
            return [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]

        def refusals_logged() -> int:
            return sum(int(re.findall(r"refused: (\d+)", line)[0]) for line in refusal_lines())

        await wait_until(lambda: refusals_logged() == len(batch) - stored, deadline=TIMEOUT)
        # One line per maintenance round at most, not one per record: each
        # line counts the round's refusals, so fewer lines than refusals.
        counts = [int(re.findall(r"refused: (\d+)", line)[0]) for line in refusal_lines()]
        assert len(counts) < len(batch) - stored, counts


async def test_a_flood_from_many_peers_stays_bounded_and_keeps_the_genuine_record() -> None:
    # No rate limit to speak of: the caps alone must hold.
    limits = DhtLimits(
        write_rate=1000.0,
        write_burst=1000,
        records=StoreCaps(records=12, bytes=MIB, per_peer_records=5, per_peer_bytes=MIB),
    )
    async with open_hosts(6, dht_limits=limits) as hosts:
        victim, bob, carol, *attackers = hosts
        register_node_records(hosts)
        bob_key, bob_value = node_record(Identity(b"\x02" * 32))
        await bob.put_record(bob_key, bob_value)
        assert held(victim, bob_key) == bob_value

        stored = [
            await flood_records(attacker, victim, fresh_records(10, tag=10 + i))
            for i, attacker in enumerate(attackers)
        ]
        # The first two stop at their cap (5); the store is then full (Bob + 10
        # + 1), and the third gets in only by evicting the newest records of
        # those holding two more than it, until the shares are even (3, 4, 4).
        assert stored == [5, 5, 3]
        stats = victim.dht_store_stats()
        assert stats.refused == {"peer_cap": 2 * 5, "store_full": 10 - 3}
        assert stats.evicted == 2
        assert stats.records == 12
        assert held(victim, bob_key) == bob_value
        assert await served_by(carol, victim, bob_key) == bob_value

        # A newcomer's record still gets in, at the flooders' expense, not Bob's.
        carol_key, carol_value = node_record(Identity(b"\x03" * 32))
        await carol.put_record(carol_key, carol_value)
        assert held(victim, carol_key) == carol_value
        assert held(victim, bob_key) == bob_value
        assert victim.dht_store_stats().records == 12
        assert victim.dht_store_stats().evicted == 3


async def test_a_provider_flood_is_rate_limited_and_capped() -> None:
    limits = DhtLimits(
        write_rate=TRICKLE,
        write_burst=10,
        providers=StoreCaps(records=8, bytes=MIB, per_peer_records=4, per_peer_bytes=MIB),
    )
    service_key = b"/p2pdm/mailbox-service/1"
    async with open_hosts(4, dht_limits=limits) as (victim, attacker, bob, carol):
        store = victim._dht.provider_store

        def bob_provides() -> bool:
            providers = store.get_providers(provider_key(service_key))
            return bob.peer_id.raw in {info.peer_id.to_bytes() for info in providers}

        await bob.provide(service_key)
        await wait_until(bob_provides, deadline=TIMEOUT)  # ADD_PROVIDER is fire-and-forget

        await attacker.connect(victim.peer_id, victim.listen_addrs())
        target = ID(victim.peer_id.raw)
        sender = attacker._dht.provider_store
        for i in range(60):
            await sender._send_add_provider(target, provider_key(b"junk %d" % i))

        def settled() -> bool:
            stats = victim.dht_store_stats()
            refusals = sum(stats.refused.values())
            return refusals + len(store.get_provided_keys(ID(attacker.peer_id.raw))) >= 60

        # Wait for the victim to handle all 60.
        await wait_until(settled, deadline=TIMEOUT)
        stats = victim.dht_store_stats()
        allowed = 60 - stats.refused["rate"]
        assert allowed == 10, allowed  # the burst; the rate refills next to nothing
        assert len(store.get_provided_keys(ID(attacker.peer_id.raw))) == 4
        assert stats.refused["peer_cap"] == allowed - 4
        assert stats.providers <= 8
        # Bob is still a provider, and the victim tells carol so.
        assert bob_provides()
        found = dict(await carol.find_providers(service_key, TIMEOUT))
        assert bob.peer_id in found
