"""Two nodes on loopback, the way `p2pdm run` composes them, finding each other's
prekey bundles in the DHT by PeerID alone (no invite)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from p2pdm.core import records
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus
from p2pdm.daemon.runner import RunOptions, Serving, serve_node
from p2pdm.net import DhtMode
from p2pdm.node.node import Node
from p2pdm.sim.network import wait_until
from p2pdm.store import MemoryStore
from tests.conftest import LOOPBACK, UPKEEP

pytestmark = pytest.mark.net

#: Bound on each step: start-up, the bundle's lookup, the delivery.
STEP_S = 20.0


@asynccontextmanager
async def served(
    node: Node, *bootstrap: str, dht_mode: DhtMode = "server"
) -> AsyncIterator[Serving]:
    options = RunOptions(listen=LOOPBACK, bootstrap=bootstrap, upkeep=UPKEEP, dht_mode=dht_mode)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(STEP_S):
            serving: Serving = await nursery.start(serve_node, node, options)
        yield serving
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("bob_dht_mode", ["server", "auto"])
async def test_two_nodes_write_to_each_other_knowing_only_the_peer_id(
    bob_dht_mode: DhtMode,
) -> None:
    """Bob joins through Alice and publishes his bundle as he starts; Alice, the
    only other node, finds it at once (and Bob hers).

    "auto" is how ``p2pdm run`` starts: Bob, joining through Alice, is a DHT
    client until AutoNAT finds him reachable, so his bundle is only where his
    put stored it: at Alice, whose answer to his put's lookup (no record, no
    closer peer: her table holds only him) must count as an answer."""
    alice = Node(Identity(os.urandom(32)), MemoryStore())
    bob = Node(Identity(os.urandom(32)), MemoryStore())
    async with served(alice) as at_alice, served(bob, alice.addrs[0], dht_mode=bob_dht_mode):
        # Bob's record reaches Alice (a client serves nothing: only her copy counts).
        bob_key = records.record_key(bob.peer_id).encode()
        await wait_until(lambda: at_alice.host._dht.value_store.get(bob_key) is not None, STEP_S)
        alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
        bob.add_contact_by_peer_id(str(alice.peer_id), "alice")
        with trio.fail_after(STEP_S):
            to_bob = await alice.send(bob.peer_id, "found you by your PeerID")
            to_alice = await bob.send(alice.peer_id, "and I you")

        def delivered() -> bool:
            return all(
                node.message(sent.id.hex())[0].status is DeliveryStatus.DELIVERED
                for node, sent in ((alice, to_bob), (bob, to_alice))
            )

        await wait_until(delivered, STEP_S)
