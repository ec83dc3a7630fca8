"""Two nodes on loopback, the way `p2pdm run` composes them, finding each other's
prekey bundles in the DHT by PeerID alone (no invite)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus
from p2pdm.daemon.runner import RunOptions, Serving, serve_node
from p2pdm.node.node import Node
from p2pdm.sim.network import wait_until
from p2pdm.store import MemoryStore
from tests.conftest import LOOPBACK, UPKEEP

pytestmark = pytest.mark.net

#: Bound on each step: start-up, the bundle's lookup, the delivery.
STEP_S = 20.0


@asynccontextmanager
async def served(node: Node, *bootstrap: str) -> AsyncIterator[Serving]:
    options = RunOptions(listen=LOOPBACK, bootstrap=bootstrap, upkeep=UPKEEP)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(STEP_S):
            serving: Serving = await nursery.start(serve_node, node, options)
        yield serving
        nursery.cancel_scope.cancel()


async def test_two_nodes_write_to_each_other_knowing_only_the_peer_id() -> None:
    """Bob joins through Alice and publishes his bundle as he starts; Alice, the
    only other node, finds it at once (and Bob hers)."""
    alice = Node(Identity(os.urandom(32)), MemoryStore())
    bob = Node(Identity(os.urandom(32)), MemoryStore())
    async with served(alice), served(bob, alice.addrs[0]):
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
