"""Opening a host: :func:`open_host` composes py-libp2p 0.8.1 into a p2pdm :class:`Host`.

How this works: :func:`open_host` builds a libp2p host from the node seed
(TCP, or a :class:`~p2pdm.net.memory_transport.MemoryNetwork`'s in-memory
transport; Noise, the only security transport; Yamux), applies the
workarounds of :mod:`p2pdm.net._patches`, adds a Kademlia DHT (server or
client mode) bounded by :mod:`p2pdm.net._dht_guard`, and runs the host, its
DHT and its maintenance loop (:mod:`p2pdm.net._maintenance`) inside one
nursery for the duration of the block.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from typing import TYPE_CHECKING, cast

import trio
from libp2p import new_host
from libp2p.abc import ITransport
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.swarm import Swarm
from libp2p.tools.anyio_service import background_trio_service

from p2pdm.core.identity import Identity
from p2pdm.errors import ConfigError, SchemaError
from p2pdm.net import _autonat, _holepunch, _maintenance, _mdns, _patches
from p2pdm.net._dht import GuardedValidator, guard_dht
from p2pdm.net._dht_guard import DEFAULT_DHT_LIMITS, DhtGuard, DhtLimits
from p2pdm.net._edge import DEFAULT_LISTEN, DhtMode, PeerFilter, RecordSelector, RecordValidator
from p2pdm.net._host import Host
from p2pdm.net._relay import RelayLimits, relay_protocol
from p2pdm.net.addrs import parse_bootstrap, refuse_taken_port, transport_addr
from p2pdm.net.limits import (
    MAX_BOOTSTRAP_PEERS,
    REACHABILITY_FIRST_CHECK_SECONDS,
    STREAM_NEGOTIATION_TIMEOUT_SECONDS,
)
from p2pdm.net.logs import configure_libp2p_logging
from p2pdm.net.upkeep import DEFAULT_UPKEEP, Upkeep

if TYPE_CHECKING:  # the simulation's networks: a node over TCP does not load them
    from p2pdm.net.memory_transport import MemoryNetwork
    from p2pdm.net.tcp_faults import TcpFaults

__all__ = ["open_host"]


@asynccontextmanager
async def open_host(
    seed: bytes,
    listen: Sequence[str] = DEFAULT_LISTEN,
    *,
    bootstrap: Sequence[str] = (),
    dht_mode: DhtMode = "server",
    reachability: bool | None = None,
    relay: RelayLimits | None = None,
    hole_punching: bool | None = None,
    mdns: bool = False,
    upkeep: Upkeep = DEFAULT_UPKEEP,
    network: MemoryNetwork | None = None,
    peer_filter: PeerFilter | None = None,
    faults: TcpFaults | None = None,
    dht_limits: DhtLimits = DEFAULT_DHT_LIMITS,
    join_delay: float = 0.0,
    join_gate: Callable[[], Awaitable[None]] | None = None,
    record_namespaces: Mapping[str, tuple[RecordValidator, RecordSelector]] | None = None,
) -> AsyncIterator[Host]:
    """Run a libp2p host with the identity of ``seed`` for the duration of the block.

    ``listen``: multiaddrs to listen on (port 0 picks a free port).
    ``network``: run over this in-memory network instead of TCP (for tests
    and simulations); ``listen`` then defaults to a fresh address of it.
    ``bootstrap``: ``…/p2p/<PeerID>`` addresses of DHT peers to join through;
    unreachable ones are logged and re-dialed later, never fatal.
    ``dht_mode``: "server" for reachable nodes (serves DHT queries), "client"
    for nodes behind NAT, "auto" to follow the reachability checks (server
    while public; at start a server only without bootstrap peers, being the
    first node of its network). ``reachability``: serve AutoNAT dial-backs
    and check our own reachability in the background (default: on TCP, not
    on a memory network). ``relay``: serve circuit relay v2 (hop) with these
    limits; every TCP host accepts circuits to itself (stop) either way.
    ``hole_punching``: try DCUtR on relayed connections (default: on TCP).
    ``mdns``: announce the host on the LAN and connect to p2pdm nodes found
    there (TCP only).
    ``upkeep``: periods of the background maintenance (idle connections,
    bootstrap re-dial, DHT refresh). ``peer_filter``: a
    :meth:`Host.set_peer_filter` in force from the start, before joining.
    ``faults``: latency and loss on every TCP connection (simulations in
    real time); the memory network has its own. ``dht_limits``: what other
    peers may make our DHT store, and how fast (tests lower them).
    ``record_namespaces``: :meth:`Host.register_record_namespace` for each
    (namespace: (validate, select)) before joining, so the records our DHT
    neighbours hand us as we join (:mod:`p2pdm.net._handoff`) are accepted.

    Entering joins the DHT first: with bootstrap peers it can take up to
    DIAL_TIMEOUT_SECONDS + IDENTIFY_WAIT_SECONDS + JOIN_LOOKUP_TIMEOUT_SECONDS.
    With ``join_delay`` > 0 entering does not wait: the host joins that
    many seconds later in the background (a simulation's start-up window),
    and sets :attr:`Host.joined` once it has. ``join_gate`` likewise, joining
    once the awaitable it returns has ended (a real-clock simulation holds
    its nodes' joins until every node listens). On exit,
    listeners and connections are closed before this returns, also when the
    block is cancelled. Raises IdentityError for a bad seed, ConfigError for
    bad addresses or when nothing can be listened on.
    """
    configure_libp2p_logging()
    identity = Identity(seed)
    if dht_mode not in ("server", "client", "auto"):
        raise ConfigError(f"dht_mode is 'server', 'client' or 'auto', not {dht_mode!r}")
    if reachability is None:
        reachability = network is None
    if network is not None and listen == DEFAULT_LISTEN:
        listen = [network.new_listen_addr()]
    try:
        listen_addrs = [transport_addr(text, identity.peer_id) for text in listen]
    except SchemaError as exc:
        raise ConfigError(f"bad listen address: {exc}") from None
    if not listen_addrs:
        raise ConfigError("a host needs at least one listen address")
    tcp_faults = None
    transports: list[ITransport] | None
    if network is None:
        for addr in listen_addrs:
            refuse_taken_port(addr)
        tcp_faults = faults.transport() if faults is not None else None
        # Without faults, libp2p picks TCP for /ip4/…/tcp/… addresses.
        transports = [tcp_faults] if tcp_faults is not None else None
    elif faults is not None:
        raise ConfigError("TCP faults need TCP; the memory network has faults of its own")
    else:
        transports = [network.transport(str(listen_addrs[0]))]
    bootstrap_peers = [parse_bootstrap(text) for text in bootstrap[:MAX_BOOTSTRAP_PEERS]]
    bootstrap_peers = [(peer, addr) for peer, addr in bootstrap_peers if peer != identity.peer_id]

    key_pair = create_new_key_pair(identity.seed)
    lp_host = new_host(
        key_pair=key_pair,
        sec_opt=(
            network.security_options(key_pair, str(listen_addrs[0]))
            if network is not None and network.link_auth == "sim"
            else _patches.security_options(key_pair)
        ),
        muxer_opt=_patches.muxer_options(),
        listen_addrs=listen_addrs,
        transports=transports,
        connection_config=_patches.connection_config(),
        negotiate_timeout=STREAM_NEGOTIATION_TIMEOUT_SECONDS,
        addrs_factory=_patches.advertised,
    )
    _patches.advertise_once_per_change(lp_host)
    _patches.select_in_one_round_trip()
    swarm = cast("Swarm", lp_host.get_network())
    _patches.no_dial_retries(swarm)
    _patches.unblock_peers_at_new_addrs(swarm)
    _patches.hold_inbound_slot_only_while_connected(swarm)
    _patches.keep_own_and_connected_peers(swarm)
    _patches.verify_peer_records_once()
    serving = dht_mode == "server" or (dht_mode == "auto" and not bootstrap_peers)
    mode = DHTMode.SERVER if serving else DHTMode.CLIENT
    dht_guard = DhtGuard(dht_limits, trio.current_time)
    dht = KadDHT(lp_host, mode, validator=GuardedValidator(dht_guard), strict_validation=True)
    guard_dht(dht, dht_guard)
    dht._run_main_loop = partial(_patches.dht_main_loop, dht)  # type: ignore[method-assign]
    host = Host(identity, lp_host, dht, bootstrap_peers, upkeep, dht_guard)
    host._allowed = peer_filter
    host.dht_mode_setting = dht_mode
    for namespace, (validate, select) in (record_namespaces or {}).items():
        host.register_record_namespace(namespace, validate, select)
    relay_service = None
    if network is None:
        relay_service = relay_protocol(lp_host, relay, host.relay_stats)
        host._relay_proto = relay_service
        host.relay_limits = relay
    if hole_punching is None:
        hole_punching = network is None
    punching = _holepunch.hole_punching(lp_host, host.hole_punch_stats) if hole_punching else None
    if reachability:
        _autonat.serve_autonat(host)
    _patches.refuse_filtered_peers(swarm, host._permits)

    # Errors are kept and raised once libp2p's nurseries are behind us, so the
    # caller sees its own exception, not one wrapped in ExceptionGroups.
    error: BaseException | None = None
    faulty: AbstractAsyncContextManager[object] = (
        tcp_faults.running() if tcp_faults is not None else nullcontext()
    )
    async with faulty, lp_host.run(listen_addrs):
        try:
            if not swarm.listeners:
                raise ConfigError(f"cannot listen on {', '.join(listen)}")
            relaying: AbstractAsyncContextManager[object] = (
                background_trio_service(relay_service)
                if relay_service is not None
                else nullcontext()
            )
            punched: AbstractAsyncContextManager[object] = (
                background_trio_service(punching) if punching is not None else nullcontext()
            )
            async with (
                background_trio_service(dht),
                relaying,
                punched,
                trio.open_nursery() as nursery,
            ):
                host._tasks = nursery
                await _maintenance.start(host, nursery, join_delay, join_gate)
                nursery.start_soon(
                    partial(_maintenance.maintain, host, join_delay, gated=join_gate is not None)
                )
                if mdns and network is None:
                    port = int(listen_addrs[0].value_for_protocol("tcp"))
                    nursery.start_soon(_mdns.discover_lan_peers, host, port)
                if reachability:
                    nursery.start_soon(
                        _autonat.watch_reachability, host, REACHABILITY_FIRST_CHECK_SECONDS
                    )
                try:
                    yield host
                except (trio.Cancelled, GeneratorExit):
                    raise
                except BaseException as exc:  # also pytest's Failed, KeyboardInterrupt
                    error = exc
                finally:
                    nursery.cancel_scope.cancel()
        except Exception as exc:
            error = error or exc
        finally:
            await _maintenance.shutdown(host)
    if error is not None:
        raise error
