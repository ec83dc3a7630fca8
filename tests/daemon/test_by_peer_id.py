"""Two nodes on loopback, the way `p2pdm run` composes them, finding each other's
prekey bundles in the DHT by PeerID alone (no invite)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from p2pdm.core import records
from p2pdm.core.identity import Identity
from p2pdm.core.model import DeliveryStatus
from p2pdm.net import DhtMode
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.sim.network import wait_until
from p2pdm.store import MemoryStore, SQLiteStore
from tests.served import served

pytestmark = pytest.mark.net

#: Bound on each step: start-up, the bundle's lookup, the delivery.
STEP_S = 20.0


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


@pytest.mark.slow
async def test_a_message_sent_before_the_peer_is_findable_waits_survives_a_restart_and_arrives(
    tmp_path: Path,
) -> None:
    """Bob runs but has not published his record: Alice's message to him, added
    by PeerID, is accepted and waits for his keys (no envelope yet), still
    waits after Alice restarts, and is delivered once Bob's record is found."""
    bob_publishes = trio.Event()
    bob = Node(Identity(os.urandom(32)), MemoryStore())
    identity = Identity(os.urandom(32))
    alice = Node(identity, SQLiteStore(tmp_path / "alice.db"))
    async with served(bob, publish_gate=bob_publishes.wait):
        async with served(alice, bob.addrs[0]):
            alice.add_contact_by_peer_id(str(bob.peer_id), "bob")
            with trio.fail_after(STEP_S):
                sent = await alice.send(bob.peer_id, "before you could be found")
            assert sent.status is DeliveryStatus.QUEUED
            assert alice.store.outbox_for(bob.peer_id) == []  # nothing to encrypt with yet
            detail = alice.status_detail(alice.message(sent.id.hex())[0])
            assert detail.startswith("waiting for bob's keys: bob is not found in the network yet")
            assert "; next try " in detail
        alice.store.close()

        alice = Node(identity, SQLiteStore(tmp_path / "alice.db"))  # restarted
        assert [w.message_id for w in alice.store.key_waits(bob.peer_id)] == [sent.id]
        async with served(alice, bob.addrs[0]):
            bob_publishes.set()

            def delivered() -> bool:
                return alice.message(sent.id.hex())[0].status is DeliveryStatus.DELIVERED

            await wait_until(delivered, 3 * STEP_S)
        alice.store.close()
    got = bob.messages(alice.peer_id).messages
    assert [message_text(m) for m in got] == ["before you could be found"]
    assert got[0].sent_at_ms == sent.sent_at_ms  # the time it was written, not sent
