"""A private node keeps reservations on relays: configured or found in the DHT, renewed."""

from __future__ import annotations

import dataclasses
import time

import pytest

from p2pdm.core.reachability import RELAY_SERVICE_KEY, Reachability
from p2pdm.net import DhtMode, Host, RelayKeeper, RelayLimits, open_host
from p2pdm.net.testing import host_seed, open_hosts

pytestmark = pytest.mark.net

PRIVATE = Reachability("private", 0, 2, 0)


def bootstrap_addr(host: Host) -> str:
    return host.listen_addrs()[0]


async def test_a_private_node_reserves_on_a_configured_relay_and_renews() -> None:
    async with (
        open_hosts(1, join=False, hole_punching=False, relay=RelayLimits()) as (relay,),
        open_hosts(1, join=False, first_index=1, hole_punching=False) as (carol,),
    ):
        changes: list[list[str]] = []
        keeper = RelayKeeper(
            carol, [bootstrap_addr(relay)], changed=lambda: changes.append(carol.relayed_addrs())
        )
        await keeper.check()  # unknown, but a relay is configured: reserve
        assert list(carol.reservations) == [relay.peer_id] and len(changes) == 1
        held = carol.reservations[relay.peer_id]
        # Close to expiry: renewed (same addresses, so no republication).
        carol.reservations[relay.peer_id] = dataclasses.replace(held, expires=time.time() + 5)
        await keeper.check()
        assert carol.reservations[relay.peer_id].expires > time.time() + 60
        assert len(changes) == 1
        # Public now: reservations are dropped, and the record says so.
        carol.reachability = Reachability("public", 2, 0, 0)
        await keeper.check()
        assert carol.reservations == {} and changes[-1] == []


async def test_a_private_node_finds_relays_in_the_dht_and_skips_one_that_refuses() -> None:
    # Carol is private, so a DHT client: she holds no provider records herself.
    modes: list[DhtMode] = ["server", "server", "client"]
    async with open_hosts(3, hole_punching=False, dht_modes=modes) as (boot, _, carol):
        join = [bootstrap_addr(boot)]
        async with (
            open_host(host_seed(5), bootstrap=join, relay=RelayLimits(max_reservations=0)) as full,
            open_host(host_seed(6), bootstrap=join, relay=RelayLimits()) as good,
        ):
            for relay in (full, good):
                await relay.provide(RELAY_SERVICE_KEY)
            carol.reachability = PRIVATE
            keeper = RelayKeeper(carol, kept=2)
            await keeper.check()
            assert list(carol.reservations) == [good.peer_id]
            assert full.peer_id in keeper.resting
            assert all(str(good.peer_id) in addr for addr in carol.relayed_addrs())
