"""The directory's checks and ranking over the fake network: cheap and exact.

Records here go straight into the fake DHT's table, so a hostile holder's
answer (a forged record, one naming another handle) reaches the directory
unfiltered: it must check every record itself.
"""

from __future__ import annotations

import os

import trio

from p2pdm.core import records
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.prekeys import OwnPrekeys
from p2pdm.core.profile import Profile, handle_key
from p2pdm.limits import MAX_HANDLE_CLAIMANTS
from p2pdm.node.node import Node
from p2pdm.services.directory import HandleDirectory
from p2pdm.store import MemoryStore
from tests.fakenet import FakeNetwork


def claim(
    net: FakeNetwork, handle: str, *, names: str | None = None, provide: bool = True
) -> Identity:
    """A fresh identity whose record names ``names`` (default ``handle``), providing ``handle``."""
    identity = Identity.generate(os.urandom(32))
    bundle = OwnPrekeys.create(identity, 0).bundle(0)
    profile = Profile(name=f"claimant of {handle}", handle=names or handle)
    record = records.NodeRecord(identity.peer_id, 1, bundle, (), profile)
    net.records[records.record_key(identity.peer_id)] = record.sign(identity)
    if provide:
        net.providers.setdefault(handle_key(handle), {})[identity.peer_id] = None
    return identity


async def test_only_valid_records_naming_the_handle_are_claimants(nursery: trio.Nursery) -> None:
    net = FakeNetwork(nursery)
    finder = Identity.generate(os.urandom(32))
    directory = HandleDirectory(net.host(finder.peer_id), finder.peer_id)
    honest = claim(net, "alice")
    claim(net, "alice", names="mallory")  # provides alice, names mallory
    forged = claim(net, "alice")
    key = records.record_key(forged.peer_id)
    tampered = bytearray(net.records[key])
    tampered[-1] ^= 1
    net.records[key] = bytes(tampered)  # a bad signature
    nobody = Identity.generate(os.urandom(32)).peer_id  # provides, has no record
    net.providers[handle_key("alice")][nobody] = None
    other = claim(net, "bob")
    net.records[records.record_key(nobody)] = net.records[records.record_key(other.peer_id)]

    found = await directory.claims("alice")
    assert list(found) == [honest.peer_id]
    assert found[honest.peer_id].handle == "alice"


async def test_claimants_seen_before_are_checked_and_ranked_first_despite_a_flood(
    nursery: trio.Nursery,
) -> None:
    """A long-seen claimant whose provider record is buried (or gone) under fresh
    claims is still asked, and still comes first; the answer stays capped."""
    net = FakeNetwork(nursery)
    now = [1_000_000]
    node = Node(Identity.generate(os.urandom(32)), MemoryStore(), now_ms=lambda: now[0])
    directory = HandleDirectory(net.host(node.peer_id), node.peer_id)
    node.profiles.lookup = directory.claims
    real = claim(net, "alice")
    _, first = await node.profiles.find("alice")
    assert [c.peer for c in first] == [real.peer_id]

    # A day later: 30 fresh claims, and the real one's provider record lapsed.
    now[0] += 86_400_000
    del net.providers[handle_key("alice")][real.peer_id]
    flood = [claim(net, "alice").peer_id for _ in range(30)]
    handle, shown = await node.profiles.find("ALICE")
    assert handle == "alice"
    assert len(shown) == MAX_HANDLE_CLAIMANTS
    assert shown[0].peer == real.peer_id and shown[0].first_seen_ms == 1_000_000
    assert all(c.peer in flood and c.first_seen_ms == now[0] for c in shown[1:])
    assert len({c.fingerprint for c in shown}) == len(shown)


async def test_our_own_claim_is_shown_as_ours(nursery: trio.Nursery) -> None:
    net = FakeNetwork(nursery)
    me = claim(net, "alice")
    node = Node(me, MemoryStore())
    node.profiles.lookup = HandleDirectory(net.host(me.peer_id), me.peer_id).claims
    _, shown = await node.profiles.find("alice")
    assert [(c.peer, c.relation) for c in shown] == [(me.peer_id, "self")]
    assert isinstance(shown[0].peer, PeerId)
