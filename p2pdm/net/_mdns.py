"""LAN discovery: mDNS (libp2p's spec, zeroconf) finds p2pdm nodes on the same network.

How this works: :func:`discover_lan_peers` announces the host under the
``_p2p-p2pdm._udp.local.`` service (libp2p's mDNS spec with a private network
name, so only p2pdm nodes answer) and listens for others. py-libp2p 0.8.1
announces a host's raw listen addresses (``0.0.0.0``, which a peer then
dials as itself) and its ``start`` must run in trio's thread while it
blocks on zeroconf; here the dialable addresses are announced, from a
worker thread. It also reports discoveries on zeroconf's own thread through a process-wide
singleton (``peerDiscovery``), and writes the addresses into the peerstore
from that thread; here every discovery is handed to the trio loop through
its token (a bounded queue: what does not fit is dropped, it is announced
again), and handled there: at most MAX_MDNS_PEERS peers are dialed, put in
the DHT routing table and remembered in :attr:`Host.lan_peers`, whose
addresses :meth:`Host.find_peer` adds to what the DHT answers. Contacts on
the same Wi-Fi then talk directly, without any bootstrap node.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress

import trio
from libp2p.discovery.events.peerDiscovery import peerDiscovery
from libp2p.discovery.mdns.mdns import create_mdns_discovery
from libp2p.peer.peerinfo import PeerInfo

from p2pdm.errors import P2PDMError
from p2pdm.net._edge import from_id
from p2pdm.net._host import Host
from p2pdm.net.addrs import full_addr
from p2pdm.net.limits import MAX_MDNS_PEERS, MDNS_ADDR_TTL_SECONDS, MDNS_NETWORK_NAME, MDNS_QUEUE

__all__ = ["discover_lan_peers"]

logger = logging.getLogger(__name__)


async def discover_lan_peers(host: Host, port: int) -> None:
    """Announce ``host`` on the LAN and connect to the p2pdm nodes found there, until cancelled."""
    send, receive = trio.open_memory_channel[PeerInfo](MDNS_QUEUE)
    token = trio.lowlevel.current_trio_token()

    def handed_over(info: PeerInfo) -> None:  # on zeroconf's thread
        def put() -> None:
            with suppress(trio.WouldBlock, trio.ClosedResourceError):  # announced again later
                send.send_nowait(info)

        with suppress(trio.RunFinishedError):
            token.run_sync_soon(put)

    # Given the host, upstream announces its raw listen addresses (0.0.0.0,
    # which a peer dials as itself); announce the dialable ones instead.
    announced = [
        str(addr).rsplit("/p2p/", 1)[0]
        for addr in host._host.get_addrs()
        if not _unusable(str(addr))
    ]
    if not announced:
        # Given none, upstream announces every interface's address with our
        # port, where nothing listens: peers on the LAN would dial in vain.
        logger.info("LAN discovery (mDNS) off: this node listens on loopback only")
        return
    mdns = create_mdns_discovery(
        host._swarm,
        port=port,
        listen_addrs=announced,
        private_network_fingerprint=MDNS_NETWORK_NAME,
        ttl=MDNS_ADDR_TTL_SECONDS,
    )
    peerDiscovery.register_peer_discovered_handler(handed_over)
    try:
        # MDNSDiscovery.start would also spawn a trio system task for its
        # cleanup; our own table is bounded, so only the (blocking) announce.
        await trio.to_thread.run_sync(mdns.broadcaster.register)
        logger.info("LAN discovery (mDNS) on")
        async with send, receive:
            async for info in receive:
                await _found(host, info)
    finally:
        peerDiscovery.unregister_peer_discovered_handler(handed_over)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_stop_quietly(mdns.stop))


def _unusable(addr: str) -> bool:
    """Loopback and unspecified addresses: no use to another machine."""
    return any(bad in addr for bad in ("/ip4/127.", "/ip4/0.0.0.0/", "/ip6/::1/", "/ip6/::/"))


def _stop_quietly(stop: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            stop()
        except Exception as exc:  # zeroconf closing twice, a socket gone
            logger.debug("stopping mDNS: %s", exc)

    return run


async def _found(host: Host, info: PeerInfo) -> None:
    peer = from_id(info.peer_id)
    if peer is None or peer == host.peer_id:
        return
    if peer not in host.lan_peers and len(host.lan_peers) >= MAX_MDNS_PEERS:
        return
    addrs = [full_addr(addr, peer) for addr in info.addrs if not _unusable(str(addr))]
    if not addrs:
        return
    first = peer not in host.lan_peers
    host.lan_peers[peer] = addrs[:4]
    if first:
        logger.info("found %s on the LAN (mDNS)", peer.short())
    if host.is_connected(peer):
        return
    try:
        await host.connect(peer, addrs)
        await host.add_to_routing_table(peer)
    except P2PDMError as exc:
        logger.info("LAN peer %s not reachable: %s", peer.short(), exc)
        return
    for listener in host.lan_peer_listeners:
        listener(peer)
