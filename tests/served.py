"""Nodes served on loopback the way ``p2pdm run`` composes them, for the tests
that run real libp2p hosts in process (tests/daemon, tests/services)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio

from p2pdm.daemon.runner import RunOptions, Serving, serve_node
from p2pdm.net import DhtMode
from p2pdm.node.node import Node
from tests.conftest import LOOPBACK, UPKEEP

__all__ = ["served"]

#: Bound on a node's start (its host listening, its services started).
START_S = 20.0


@asynccontextmanager
async def served(
    node: Node,
    *bootstrap: str,
    start_s: float = START_S,
    publish_gate: Callable[[], Awaitable[None]] | None = None,
    dht_mode: DhtMode = "server",
) -> AsyncIterator[Serving]:
    """``node`` running on loopback (bootstrapping from ``bootstrap``) with the
    composition ``p2pdm run`` uses, until the block ends; its start is bounded
    by ``start_s`` seconds. ``publish_gate``: awaited before the node publishes
    its record (until then nobody finds its prekeys by its PeerID). ``dht_mode``:
    "auto" is how ``p2pdm run`` starts (a DHT client until found reachable)."""
    options = RunOptions(listen=LOOPBACK, bootstrap=bootstrap, upkeep=UPKEEP, dht_mode=dht_mode)
    serve = partial(serve_node, publish_gate=publish_gate)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(start_s):
            serving: Serving = await nursery.start(serve, node, options)
        yield serving
        nursery.cancel_scope.cancel()
