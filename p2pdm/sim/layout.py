"""Who a simulated network is made of: identities, bootstrap nodes, contacts, addresses.

How this works: pure functions of the node count and the simulation's RNG,
so every process of a simulation (``p2pdm sim --workers``) computes the same
layout: the first draws of the RNG are the identity seeds
(:func:`identity_seeds`), the first few nodes are bootstrap nodes the
others join through (:func:`bootstrap_count`, :func:`bootstrap_of`), the
first ``mailboxes`` nodes offer the mailbox service, and these "fixed" nodes
never leave (:func:`fixed_count`); contacts are random mutual pairs
(:func:`contact_pairs`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final

from p2pdm.core.identity import Identity
from p2pdm.errors import ConfigError
from p2pdm.net.addrs import parse_bootstrap, port_range

__all__ = [
    "bootstrap_count",
    "bootstrap_of",
    "contact_pairs",
    "fixed_count",
    "identity_seeds",
    "listen_addrs",
    "refuse_own_peers",
]

#: Hosts joining through one bootstrap node: a host accepts at most
#: MAX_INBOUND_CONNECTIONS (192) and every joiner keeps its bootstrap link,
#: so one bootstrap node per 50 nodes, at most this many.
MAX_BOOTSTRAPS: Final = 4
NODES_PER_BOOTSTRAP: Final = 50


def listen_addrs(template: str, nodes: int) -> list[str]:
    """Each node's listen address from ``--listen``; raises ConfigError.

    ``/ip4/ADDR/tcp/0``: every node on ADDR, a free port each;
    ``/ip4/ADDR/tcp/P``: node i on port P + i, so a firewall opens the
    range P to P + nodes - 1.
    """
    try:
        return port_range(template, nodes)
    except ConfigError as exc:
        raise ConfigError(f"--listen: {exc}") from None


def bootstrap_count(nodes: int) -> int:
    """How many of ``nodes`` are bootstrap nodes (the first ones)."""
    return min(MAX_BOOTSTRAPS, nodes // NODES_PER_BOOTSTRAP + 1)


def bootstrap_of(index: int, bootstraps: int) -> int:
    """The node that node ``index`` (not 0) joins the DHT through."""
    return index % bootstraps if index >= bootstraps else 0


def contact_pairs(rng: random.Random, count: int, per_node: int) -> list[tuple[int, int]]:
    """``per_node`` random contacts for each of ``count`` nodes, as sorted mutual pairs."""
    pairs: set[tuple[int, int]] = set()
    for index in range(count):
        others = [i for i in range(count) if i != index]
        for other in rng.sample(others, min(per_node, len(others))):
            pairs.add((min(index, other), max(index, other)))
    return sorted(pairs)


def fixed_count(nodes: int, mailboxes: int) -> int:
    """How many nodes (the first ones) never leave: bootstrap and mailbox nodes."""
    return max(bootstrap_count(nodes), mailboxes)


def identity_seeds(rng: random.Random, count: int) -> list[bytes]:
    """The nodes' identity seeds: the first draws of the simulation's RNG."""
    return [rng.randbytes(32) for _ in range(count)]


def refuse_own_peers(external: Sequence[str], seed: int, count: int) -> None:
    """Raise ConfigError for a bad outside peer address, or one that is a node
    of this simulation: the simulation being joined runs with the same seed,
    so each node would meet its twin."""
    outside = {parse_bootstrap(addr)[0] for addr in external}
    if not outside:
        return
    ours = {Identity(s).peer_id for s in identity_seeds(random.Random(seed), count)}
    if outside & ours:
        raise ConfigError(
            "--bootstrap names a node of this very simulation: the simulation being joined"
            " runs with the same --seed (the seed makes the identities); choose another --seed"
        )
