"""The host's upkeep: joining the DHT, the maintenance loop, and shutting down.

How this works: :func:`start` stops libp2p's auto-connector, notes which
bootstrap peers fetched our identify, serves the DHT (in server mode) with
each stream charged to its sender, and joins through the bootstrap peers:
dial, wait for their identify, look ourselves up. :func:`maintain` then runs
for the host's life: it closes idle connections, re-dials bootstrap peers
when few peers are left, forgets routing-table peers that do not serve the
DHT and refreshes the routing table now and then; a failing step is logged
and retried next round. :func:`shutdown` closes listeners and connections
concurrently (pitfalls 3/4 in :mod:`p2pdm.net._patches`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import TYPE_CHECKING

import multiaddr
import trio
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL_ID
from libp2p.kad_dht.kad_dht import DHTMode
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStoreError

from p2pdm.core.identity import PeerId
from p2pdm.errors import PeerUnreachable
from p2pdm.net import timers
from p2pdm.net._dht import attributed, deadlined
from p2pdm.net._edge import NETWORK_ERRORS, quietly, to_id
from p2pdm.net._patches import close_connections, note_identify_requests, stop_auto_connector
from p2pdm.net.limits import (
    DHT_INBOUND_STREAM_SECONDS,
    DHT_REFRESH_TIMEOUT_SECONDS,
    IDENTIFY_WAIT_SECONDS,
    JOIN_LOOKUP_TIMEOUT_SECONDS,
    MIN_CONNECTED_PEERS,
    SHUTDOWN_TIMEOUT_SECONDS,
)

if TYPE_CHECKING:
    from p2pdm.net._host import Host

__all__ = ["maintain", "rejoin", "shutdown", "start"]

logger = logging.getLogger(__name__)


async def join(host: Host) -> int:
    """Dial the bootstrap peers we are not connected to; add them to the routing table."""
    joined = 0

    async def join_one(peer: PeerId, addr: multiaddr.Multiaddr) -> None:
        nonlocal joined
        try:
            await host.connect(peer, [str(addr)])
        except PeerUnreachable as exc:
            logger.info("bootstrap peer %s unreachable: %s", peer.short(), exc)
            host.failed_bootstrap_dials += 1
            return
        pid = to_id(peer)
        with trio.move_on_after(IDENTIFY_WAIT_SECONDS):
            await host._identified_by[pid].wait()
        host._swarm.protect(pid, "p2pdm-bootstrap")
        with suppress(*NETWORK_ERRORS):
            await host._dht.add_peer(pid, skip_server_mode_check=True)
        joined += 1

    async with trio.open_nursery() as nursery:
        for peer, addr in host._bootstrap:
            if not host.is_connected(peer):
                nursery.start_soon(join_one, peer, addr)
    return joined


async def rejoin(host: Host) -> None:
    """Join the DHT again through bootstrap peers the filter let go of (a healed partition)."""
    if await join(host):
        with trio.move_on_after(JOIN_LOOKUP_TIMEOUT_SECONDS):
            await look_up_ourselves(host)


async def start(
    host: Host,
    nursery: trio.Nursery,
    join_delay: float = 0.0,
    join_gate: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve the DHT (server mode) and join it through the bootstrap peers.

    ``join_delay`` > 0: return at once and join that many seconds later
    in ``nursery`` (the host's background tasks): a simulation spreads its
    nodes' joins over a window, as a real network's nodes come and go.
    ``join_gate``: likewise, joining once ``join_gate()`` has returned
    (a real-clock simulation holds every join until all its nodes listen).
    :attr:`Host.joined` is set once the join has ended either way.
    """
    # Our bounded bootstrap re-dial replaces libp2p's auto-connector.
    await stop_auto_connector(host._swarm)
    note_identify_requests(host._host, host._identified_by)
    if host._dht.mode == DHTMode.SERVER:
        host._host.set_stream_handler(
            KAD_PROTOCOL_ID,
            host._guarded(
                KAD_PROTOCOL_ID,
                deadlined(attributed(host._dht.handle_stream), DHT_INBOUND_STREAM_SECONDS),
                trio.CapacityLimiter(math.inf),
            ),
        )
    if join_gate is not None:
        # No bootstrap re-dial before the join itself (it sets the time).
        host._last_bootstrap_round = math.inf
        nursery.start_soon(_join_when, host, join_gate)
    elif join_delay > 0:
        # No bootstrap re-dial before the join itself.
        host._last_bootstrap_round = trio.current_time() + join_delay
        nursery.start_soon(_join_later, host, join_delay)
    else:
        await _join_first(host)


async def _join_later(host: Host, delay: float) -> None:
    await trio.sleep(delay)
    await _join_first(host)


async def _join_when(host: Host, gate: Callable[[], Awaitable[None]]) -> None:
    try:
        await gate()
    except BaseException:
        host.joined.set()  # no join will come: nobody waits for it
        raise
    await _join_first(host)


async def _join_first(host: Host) -> None:
    try:
        seed = host.table_seed
        if seed is not None:
            # A simulation's plan knows what the self-lookup would find.
            await host.seed_routing_table(seed())
        host._last_bootstrap_round = trio.current_time()
        if host._bootstrap and await join(host) and seed is None:
            with trio.move_on_after(JOIN_LOOKUP_TIMEOUT_SECONDS):
                await look_up_ourselves(host)
    finally:
        host.joined.set()


async def look_up_ourselves(host: Host) -> None:
    """Kademlia's join: find the peers closest to us and put them in the routing table.

    Not libp2p's full refresh (one more lookup per non-empty bucket): in
    a 40-node simulation that doubled the DHT queries and cost 54 % more
    CPU to form the network; the far buckets fill at the first periodic
    refresh.
    Run once the bootstrap peers have our identify: a server adds a
    querier to its routing table only if it knows the querier's addresses.
    """
    dht = host._dht
    peerstore = host._host.get_peerstore()
    with suppress(*NETWORK_ERRORS):
        closest = await dht.peer_routing.find_closest_peers_network(dht.local_peer_id.to_bytes())
        for pid in closest:
            try:
                addrs = peerstore.addrs(pid)
            except PeerStoreError:
                continue
            await dht.routing_table.add_peer(PeerInfo(pid, addrs))


async def maintain(host: Host, join_delay: float = 0.0, *, gated: bool = False) -> None:
    """Background upkeep, forever; a failing step is logged and retried next round.

    The first DHT refresh is due one refresh interval after the join
    (``join_delay``: :func:`start`'s; ``gated``: the join waits for
    :func:`start`'s ``join_gate``, so the interval counts from when it ends)."""
    upkeep = host._upkeep
    next_refresh = trio.current_time() + join_delay + upkeep.dht_refresh_interval
    if gated:
        next_refresh = math.inf  # set once joined, below
    while True:
        if next_refresh == math.inf and host.joined.is_set():
            next_refresh = trio.current_time() + upkeep.dht_refresh_interval
        await timers.sleep(upkeep.interval)  # shared: no cancel scope per round
        for step in (close_idle_connections, redial_bootstrap):
            try:
                await step(host)
            except Exception:
                logger.exception("network maintenance: %s failed", step.__name__)
        try:
            forget_client_peers(host)
        except Exception:
            logger.exception("network maintenance: routing-table hygiene failed")
        summary = host._dht_guard.summary()
        if summary is not None:
            logger.info("%s", summary)
        if trio.current_time() >= next_refresh:
            next_refresh = trio.current_time() + upkeep.dht_refresh_interval
            try:
                with trio.move_on_after(DHT_REFRESH_TIMEOUT_SECONDS):
                    await host._dht.refresh_routing_table()
            except Exception:
                logger.exception("network maintenance: DHT refresh failed")


async def close_idle_connections(host: Host) -> None:
    kept = host._bootstrap_ids | host.relay_connections_kept()
    busy = {
        conn: bool(conn.get_streams())
        for conn in host._swarm.get_connections()
        if not conn.is_closed and conn.muxed_conn.peer_id not in kept
    }
    idle = host._idle.observe(trio.current_time(), busy)
    if idle:
        logger.debug("closing %d idle connections", len(idle))
        async with trio.open_nursery() as nursery:
            for conn in idle:
                nursery.start_soon(quietly, conn.close, "closing an idle connection")


async def redial_bootstrap(host: Host) -> None:
    if not host._bootstrap or len(host.connected_peers()) >= MIN_CONNECTED_PEERS:
        return
    since = trio.current_time() - host._last_bootstrap_round
    if since < host._upkeep.bootstrap_retry_interval:
        return
    host._last_bootstrap_round = trio.current_time()
    await join(host)


def forget_client_peers(host: Host) -> None:
    """Drop routing-table peers whose identify shows no DHT server (pitfall 12)."""
    peerstore = host._host.get_peerstore()
    table = host._dht.routing_table
    for pid in table.get_peer_ids():
        try:
            protocols = peerstore.get_protocols(pid)
        except PeerStoreError:
            continue
        if protocols and KAD_PROTOCOL_ID not in protocols:
            table.remove_peer(pid)


async def shutdown(host: Host) -> None:
    """Close the listeners and every connection concurrently, then the host."""
    with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_TIMEOUT_SECONDS):
        swarm = host._swarm
        async with trio.open_nursery() as nursery:
            for listener in list(swarm.listeners.values()):
                nursery.start_soon(quietly, listener.close, "closing a listener")
            nursery.start_soon(close_connections, swarm.get_connections())
        await quietly(host._host.close, "closing the libp2p host")
