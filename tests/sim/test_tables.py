"""Routing tables from the plan (p2pdm.sim.tables)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from libp2p.kad_dht.routing_table import peer_id_to_key
from libp2p.peer.id import ID

from p2pdm.core.identity import Identity, PeerId
from p2pdm.sim.tables import CLOSEST, PER_BUCKET, dht_key, planned_table


def peers(count: int, seed: int) -> list[PeerId]:
    rng = random.Random(seed)
    return [Identity(rng.randbytes(32)).peer_id for _ in range(count)]


def test_the_key_is_libp2ps() -> None:
    peer = peers(1, 0)[0]
    assert dht_key(peer) == int.from_bytes(peer_id_to_key(ID(peer.raw)), "big")


@settings(max_examples=25, deadline=None)
@given(count=st.integers(2, 300), seed=st.integers(0, 2**32))
def test_a_planned_table_holds_the_closest_and_a_few_of_each_farther_bucket(
    count: int, seed: int
) -> None:
    everyone = peers(count, seed)
    own, others = everyone[0], [(p, i) for i, p in enumerate(everyone)]
    table = planned_table(own, others)
    chosen = [p for p, _ in table]
    assert own not in chosen and len(set(chosen)) == len(chosen)
    assert all(value == everyone.index(p) for p, value in table)  # values travel along
    ranked = sorted(everyone[1:], key=lambda p: dht_key(p) ^ dht_key(own))
    assert chosen[:CLOSEST] == ranked[:CLOSEST]
    if count - 1 <= CLOSEST:
        assert len(chosen) == count - 1
        return

    def prefix(p: PeerId) -> int:
        return 256 - (dht_key(p) ^ dht_key(own)).bit_length()

    inner = prefix(ranked[CLOSEST - 1])
    farther = chosen[CLOSEST:]
    assert all(prefix(p) < inner for p in farther)
    for length in {prefix(p) for p in ranked[CLOSEST:] if prefix(p) < inner}:
        members = [p for p in ranked[CLOSEST:] if prefix(p) == length]
        picked = [p for p in farther if prefix(p) == length]
        assert len(picked) == min(PER_BUCKET, len(members))
    # The same plan gives the same table.
    assert planned_table(own, list(reversed(others))) == planned_table(own, others)
