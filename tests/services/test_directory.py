"""Handles across whole nodes: claims provided in the DHT, found, checked and ranked.

Nodes from the ``sim_network`` fixture (``serve_node`` over libp2p on the
memory network, in virtual time): the provider records and signed node
records travel through py-libp2p's real Kademlia DHT.
"""

from __future__ import annotations

import trio

from p2pdm.core import records
from p2pdm.core.profile import Profile, handle_key
from p2pdm.daemon.runner import RECORD_SEQ_SETTING
from p2pdm.node.node import Node
from p2pdm.sim.network import SimNetwork
from p2pdm.sim.pytest_plugin import SimNetworkFactory

#: Long enough for the DHT of a few memory-network nodes (virtual seconds).
SETTLE_S = 120.0


async def _claim(net: SimNetwork, index: int, handle: str, name: str) -> Node:
    node = net[index].running.node
    before = node.store.get_setting(RECORD_SEQ_SETTING)
    node.profiles.update(handle=handle, name=name)
    # The publisher wakes at once and puts the record with the profile.
    with trio.fail_after(SETTLE_S):
        while node.store.get_setting(RECORD_SEQ_SETTING) == before:  # noqa: ASYNC110
            await trio.sleep(0.5)
    return node


async def _find_all(node: Node, handle: str, count: int) -> list[str]:
    """The claimants' names, once the lookup finds ``count`` (providers propagate)."""
    with trio.fail_after(SETTLE_S):
        while True:
            _, found = await node.profiles.find(handle)
            if len(found) >= count:
                return [c.profile.name for c in found]
            await trio.sleep(5)


async def test_three_claimants_of_alice_are_all_found_with_distinct_fingerprints(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(5, contacts=[], mailboxes=0) as net:
        claimants = [await _claim(net, i, "alice", f"Alice {i}") for i in (1, 2, 3)]
        finder = net[4].running.node
        await _find_all(finder, "ALICE", 3)
        handle, found = await finder.profiles.find("@Alice")
        assert handle == "alice"
        assert {c.peer for c in found} == {n.peer_id for n in claimants}
        assert len({c.fingerprint for c in found}) == 3
        assert all(c.relation == "stranger" for c in found)
        # Ordered by when the finder first saw each claim, ties by PeerID.
        firsts = [(c.first_seen_ms, c.peer.raw) for c in found]
        assert firsts == sorted(firsts)

        # A contact claimant sorts first, whatever the age of its claim.
        last = found[-1].peer
        finder.add_contact_by_peer_id(str(last), "the real alice")
        _, again = await finder.profiles.find("alice")
        assert again[0].peer == last and again[0].relation == "contact"
        assert [c.relation for c in again[1:]] == ["stranger", "stranger"]

        # A claimant that drops its handle is no longer found (its record says
        # so, though its provider record lingers), and one that clears its profile neither.
        claimants[0].profiles.update(handle="")
        claimants[1].profiles.clear()
        with trio.fail_after(SETTLE_S):
            while len((await finder.profiles.find("alice"))[1]) != 1:  # noqa: ASYNC110
                await trio.sleep(5)


async def test_forged_and_mismatched_claims_are_dropped(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    """Mallory provides alice's key with a record naming 'mallory'; Eve provides it
    with a record whose signature does not match: neither is a claimant."""
    async with sim_network(4, contacts=[], mailboxes=0) as net:
        honest = await _claim(net, 1, "alice", "Alice")
        mallory = await _claim(net, 2, "mallory", "Alice")
        mallory_host = net[2].running.host
        await mallory_host.provide(handle_key("alice"))  # claims alice without naming it

        eve_host = net[3].running.host
        eve = net[3].running.node
        bundle = eve.messenger.bundle(one_time=0)
        record = records.NodeRecord(eve.peer_id, 1 << 50, bundle, (), Profile("Alice", "alice"))
        forged = bytearray(record.sign(eve.identity))
        forged[-1] ^= 1  # the signature no longer matches
        key = records.record_key(eve.peer_id)
        # Holders refuse the forged record; Eve's own store keeps it as if it had.
        eve_host._dht.value_store.put(key.encode(), bytes(forged))
        await eve_host.provide(handle_key("alice"))

        finder = net[0].running.node
        with trio.fail_after(SETTLE_S):
            while True:
                found = await eve_host.find_providers(handle_key("alice"), 10)
                if len(found) >= 3:
                    break
                await trio.sleep(5)
        _, claimants = await finder.profiles.find("alice")
        assert [c.peer for c in claimants] == [honest.peer_id]
        assert mallory.peer_id not in {c.peer for c in claimants}
