"""Routing tables from the plan: cheaper DHT forming for large virtual-time runs.

How this works: a node joining the DHT dials its bootstrap peer and looks
itself up (Kademlia's join), which leaves in its routing table the peers
closest to it and some it met on the way, further out. In a simulation
every node's identity is known before any joins, so the peers that lookup
would find can be computed instead: :func:`planned_table` picks, by the
DHT's own distance (XOR of the SHA-256 of the peer IDs, as libp2p's
``peer_id_to_key``), the ``CLOSEST`` nodes closest to a node and up to
``PER_BUCKET`` more from each farther bucket (peers sharing a prefix of the
same length with it), drawn by a RNG seeded by the node's own identity,
so the same plan gives the same tables. The node's join then dials its
bootstrap peer as always and puts these peers in its table instead of
running the self-lookup (``Host.table_seed``); every other lookup —
records put and got, peers found, the periodic refresh, a restarted
node's join — runs over the network as before. Used by ``p2pdm sim
--dht-forming plan`` (docs/simulation.md, "Routing tables from the plan").

Likewise :func:`closest_to_key` gives the nodes a record's put would end
at (``--record-forming plan``, "First records from the plan").
"""

from __future__ import annotations

import functools
import hashlib
import random
from collections.abc import Sequence
from typing import Final, TypeVar

from p2pdm.core.identity import PeerId

__all__ = ["CLOSEST", "PER_BUCKET", "closest_to_key", "dht_key", "planned_table"]

#: Peers closest to a node that its table starts with: Kademlia's k (libp2p's
#: BUCKET_SIZE), what the join's self-lookup converges on.
CLOSEST: Final = 20
#: Peers of each farther bucket (a shorter common prefix with the node) that
#: its table starts with: a self-lookup meets a few peers at each distance
#: on its way in from the bootstrap peer, and those that query the node
#: later add more; a few per bucket let any lookup start one hop from its
#: target's region, as after a real join.
PER_BUCKET: Final = 3

#: Keys kept by :func:`dht_key`: every join of a run ranks every node, so
#: each node's key is asked for once per join; more than a simulation's
#: largest node count (p2pdm.sim.options.MAX_NODES).
KEY_CACHE_SIZE: Final = 4096

T = TypeVar("T")


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def dht_key(peer: PeerId) -> int:
    """``peer``'s position in the DHT's key space (libp2p's ``peer_id_to_key``)."""
    return int.from_bytes(hashlib.sha256(peer.raw).digest(), "big")


def planned_table(
    peer: PeerId,
    others: Sequence[tuple[PeerId, T]],
    closest: int = CLOSEST,
    per_bucket: int = PER_BUCKET,
) -> list[tuple[PeerId, T]]:
    """The entries of ``others`` that ``peer``'s routing table starts with: the
    ``closest`` nearest to it and up to ``per_bucket`` of each farther bucket."""
    own = dht_key(peer)
    ranked = sorted(
        ((own ^ dht_key(other), other, value) for other, value in others if other != peer),
        key=lambda entry: entry[0],
    )
    chosen = ranked[:closest]
    if len(ranked) <= closest:
        return [(other, value) for _, other, value in chosen]
    # Buckets by common prefix length, for the peers beyond the closest.
    inner = 256 - chosen[-1][0].bit_length()
    buckets: dict[int, list[tuple[int, PeerId, T]]] = {}
    for entry in ranked[closest:]:
        prefix = 256 - entry[0].bit_length()
        if prefix < inner:
            buckets.setdefault(prefix, []).append(entry)
    rng = random.Random(b"p2pdm-sim-table" + peer.raw)
    for prefix in sorted(buckets):
        members = buckets[prefix]
        chosen.extend(rng.sample(members, min(per_bucket, len(members))))
    return [(other, value) for _, other, value in chosen]


def closest_to_key(
    key: bytes, others: Sequence[tuple[PeerId, T]], count: int
) -> list[tuple[PeerId, T]]:
    """The ``count`` entries of ``others`` closest to the DHT key ``key`` (a
    record's key: XOR of its SHA-256 and each peer's), closest first: the
    peers a put's lookup ends at once they have all answered."""
    point = int.from_bytes(hashlib.sha256(key).digest(), "big")
    ranked = sorted(others, key=lambda entry: point ^ dht_key(entry[0]))
    return ranked[:count]
