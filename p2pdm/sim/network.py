"""A network of whole p2pdm nodes in one process, for simulations and tests.

How this works: :func:`open_sim_network` makes ``count`` identities from one
seeded RNG, gives each a store (SQLite under ``store_dir``, else memory) and
runs each with :func:`p2pdm.daemon.runner.serve_node` — the same composition
``p2pdm run`` uses — over TCP (on 127.0.0.1 unless told to listen
elsewhere, for other machines to join) or over a
:class:`~p2pdm.net.MemoryNetwork`. Nodes start one after another, each
joining the DHT through one of the first few ("bootstrap") nodes; the first
``mailboxes`` nodes offer the mailbox service. Those "fixed" nodes never
leave; any other node can be stopped (its store is kept, as when a laptop
closes) and started again as a fresh :class:`~p2pdm.node.node.Node` on that store.
Then every node gets a few random contacts, both ways, from invites, so
senders hold their recipients' prekey bundles.

Partitions: over the memory network, by the nodes' addresses
(:meth:`MemoryNetwork.partition`); over TCP, by peer filters
(:meth:`~p2pdm.net.Host.set_peer_filter`) computed from the groups and the
peer IDs of all nodes alone, so nodes run elsewhere (another process) would
get the same ones.

A :class:`Probe` sees every new node and delivery service before they serve
anything; the simulation's metrics use it.

Tests drive a network with :meth:`SimNetwork.send`, the bounded waits
:meth:`~SimNetwork.wait_status`, :meth:`~SimNetwork.wait_delivered`,
:meth:`~SimNetwork.wait_received` and :func:`wait_until`; the ``sim_network``
pytest fixture (:mod:`p2pdm.sim.pytest_plugin`) opens a network for a test.

In a worker process (``p2pdm sim --workers``, :mod:`p2pdm.sim.worker`) a
SimNetwork holds every node's identity (:func:`make_sim_nodes` draws them
all, in order) but a store only for the nodes that process runs
(:attr:`SimNode.local`); they join through addresses the coordinator gives
(``start(…, bootstrap=…)``), and :meth:`SimNetwork.collect` reads only its
own stores.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Final

import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.model import DeliveryStatus, StoredMessage
from p2pdm.daemon.runner import RECORD_RETRY_SECONDS, RunOptions, Serving, serve_node
from p2pdm.net import MemoryNetwork, PeerFilter, TcpFaults, Upkeep
from p2pdm.net.addrs import is_loopback
from p2pdm.net.limits import RECORD_LOOKUP_CLOSEST, RECORD_PUT_TIMEOUT_SECONDS
from p2pdm.node.messenger import wall_ms
from p2pdm.node.node import Node
from p2pdm.node.observer import NO_OBSERVER
from p2pdm.services.limits import MAILBOX_MAX_REMEMBERED
from p2pdm.services.mailbox_client import remember_providers
from p2pdm.sim.layout import (
    bootstrap_count,
    bootstrap_of,
    contact_pairs,
    fixed_count,
    listen_addrs,
    refuse_own_peers,
)
from p2pdm.sim.simnode import Collected, Probe, SimNode, collect, make_sim_nodes
from p2pdm.sim.tables import closest_to_key, planned_table

__all__ = [
    "SIM_UPKEEP",
    "Probe",
    "SimNetwork",
    "SimNode",
    "fixed_count",
    "listen_addrs",
    "open_sim_network",
    "refuse_own_peers",
    "virtual_wall_ms",
    "wait_until",
]

log = logging.getLogger("p2pdm.sim")

#: Contacts each node picks (each pick is mutual, so most nodes have more).
DEFAULT_CONTACTS: Final = 4
#: Longest a node may take to start (DHT join included) or to stop.
NODE_START_TIMEOUT_SECONDS: Final = 120.0
NODE_STOP_TIMEOUT_SECONDS: Final = 30.0
#: Upkeep for simulations (docs/simulation.md, measurements): idle
#: connections closed after 20 s and a DHT refresh every 600 s keep a
#: 200-node network's quiet spells cheap in memory and CPU.
SIM_UPKEEP: Final = Upkeep(interval=5.0, idle_timeout=20.0, dht_refresh_interval=600.0)
#: The same upkeep with the real clock: a DHT refresh every 1,800 s. A
#: simulation's nodes start within minutes of each other, so their refreshes
#: (each a lookup for the node and one per non-empty bucket) come together;
#: a 300-node real-clock run on two cores formed for over 10 minutes and
#: spent them in refreshes (docs/simulation.md, "Loopback capacity").
REAL_SIM_UPKEEP: Final = replace(SIM_UPKEEP, dht_refresh_interval=1800.0)
#: Where real-clock nodes listen: loopback, a free port each.
LOOPBACK: Final = ("/ip4/127.0.0.1/tcp/0",)
#: Every interface, any port: for a simulation that other machines join.
OPEN_LISTEN: Final = ("/ip4/0.0.0.0/tcp/0",)
#: Longest :meth:`SimNetwork.wait_status` and friends wait by default: a
#: message to an online contact is delivered in well under a second of
#: virtual time, a mailbox round trip in a few; real time on a loaded
#: machine needs more.
WAIT_TIMEOUT_SECONDS: Final = 60.0
#: Request stamps in a simulation: 8 bits (256 hashes, about a millisecond)
#: instead of limits.REQUEST_STAMP_BITS (about a second of one core each),
#: so hundreds of nodes on a few cores measure delivery, not hashing; the
#: stamps keep their format and are checked as on a real network.
SIM_REQUEST_STAMP_BITS: Final = 8
#: How often those waits look again (virtual or real seconds).
WAIT_POLL_SECONDS: Final = 0.05
#: Nodes publish their DHT records once the network has formed, each at a
#: random moment of a window of this many seconds per node (at most
#: PUBLISH_WINDOW_MAX_SECONDS, at least 1 s), and the network waits until
#: each of those publications has ended (the copies are with their
#: holders). Published as each node
#: started, a record went to the closest of the nodes started before it:
#: in the formed network those are no longer the closest (docs/simulation.md,
#: "DHT records at scale"). A real network exists before its nodes publish.
PUBLISH_WINDOW_SECONDS_PER_NODE: Final = 0.1
PUBLISH_WINDOW_MAX_SECONDS: Final = 30.0
#: The same window with the real clock and tables from the plan: no join
#: left connections behind, so each publication dials the ~20 peers of its
#: lookup afresh (Noise, identify: ~80 ms of CPU a fresh connection, both
#: ends, profiled); at a tenth of a second a node the puts of 16 nodes in one
#: process came together and their queries ran past their 5 s bound
#: (docs/simulation.md, "Loopback capacity").
REAL_PLANNED_PUBLISH_WINDOW_SECONDS_PER_NODE: Final = 0.5
#: The same window when the first records are placed from the plan
#: (``--record-forming plan``): nothing goes over the network, so the
#: publications need no spreading; they still come one by one.
PLANNED_RECORDS_PUBLISH_WINDOW_SECONDS: Final = 1.0
#: How long the network waits, once every first publication has ended, for
#: those that reached no peer (every query of the put timed out: a busy
#: machine) to be retried by their nodes: one retry, RECORD_RETRY_SECONDS
#: later, and its put's RECORD_PUT_TIMEOUT_SECONDS. The traffic then starts
#: with the records where lookups look for them (docs/simulation.md,
#: "Record lookups with the real clock").
PUBLISH_RETRY_WAIT_SECONDS: Final = RECORD_RETRY_SECONDS + RECORD_PUT_TIMEOUT_SECONDS
#: A virtual-clock simulation's start-up wave (``open_sim_network(…,
#: spread_start=True)``): each node but the fixed ones makes its first
#: mailbox fetch and joins the DHT (its first refresh due an interval
#: later) at a random moment of a window of this many seconds per node
#: (at most START_WINDOW_MAX_SECONDS), drawn from the node's seeded
#: randomness, instead of all at once as each starts. A real network's
#: nodes do not all come up together; started one after another, each
#: join waiting for the last, 100 nodes formed over 210 to 230 virtual s
#: while every started node ran its upkeep (docs/simulation.md, "Start-up
#: window and a dial bound"). About two virtual seconds a join (30 ms links): one second a
#: node keeps a few joins at a time, each into a network mostly formed.
START_WINDOW_SECONDS_PER_NODE: Final = 1.0
#: The same window's seconds per node when the joins seed their routing
#: tables from the plan: such a join is a bootstrap dial, not a lookup of
#: about two virtual seconds, so a quarter of the window keeps about as few
#: at a time, and every node online meanwhile runs its upkeep for less
#: (docs/simulation.md, "Scale: 1,000 nodes").
PLANNED_START_WINDOW_SECONDS_PER_NODE: Final = 0.25
START_WINDOW_MAX_SECONDS: Final = 600.0
#: The cyclic garbage collector's thresholds while a run's nodes live in a
#: process (``simulate``'s, each worker's; Python's are 700, 10, 10). Every
#: dial, stream and lookup leaves short-lived cycles behind, and the default
#: thresholds scan the whole heap (about a million objects at 80 nodes)
#: every few seconds of CPU: 15 % of an 80-node run's forming went to the
#: collector, 32 full collections (docs/simulation.md, Scale). Rarer
#: collections free the same cycles later.
SIM_GC_THRESHOLDS: Final = (50_000, 20, 100)
#: A real-clock run with routing tables from the plan (:meth:`SimNetwork.hold_joins`):
#: every node listens first, then each joins at a random moment of a window
#: of this many seconds per node (at most START_WINDOW_MAX_SECONDS). Such a
#: join is one bootstrap dial and identify (tens of ms of CPU), so a tenth
#: of a second a node keeps them few at a time on two cores (300 nodes
#: joined in 20-48 s).
REAL_PLANNED_START_WINDOW_SECONDS_PER_NODE: Final = 0.1


@dataclass(frozen=True, slots=True)
class _Setup:
    network: MemoryNetwork | None
    upkeep: Upkeep
    now_ms: Callable[[], int]
    bootstraps: int
    probe: Probe | None
    #: Peers outside the simulation that node 0 joins through.
    external: tuple[str, ...] = ()
    #: Each node's listen address (TCP), by index; None: loopback, or every
    #: interface when joining ``external`` peers.
    listen: tuple[str, ...] | None = None
    #: Latency and loss on TCP (the memory network has its own).
    faults: TcpFaults | None = None


class SimNetwork:
    """Running simulated nodes: start, stop, contacts, partitions."""

    def __init__(self, nursery: trio.Nursery, nodes: list[SimNode], setup: _Setup) -> None:
        self.nodes = nodes
        self.network = setup.network
        #: Over TCP with latency or loss: their setting, shared by every node.
        self.faults = setup.faults
        #: Each node's contacts, by index.
        self.contacts: dict[int, list[int]] = {node.index: [] for node in nodes}
        self._nursery = nursery
        self._setup = setup
        self._groups: list[set[int]] | None = None
        #: Set by :meth:`publish_records`: nodes may publish their records.
        self.formed = trio.Event()
        self._formed_at = -math.inf
        #: While the start-up wave is spread (:func:`open_sim_network`): its window, s.
        self.start_window = 0.0
        #: While the start-up wave is spread: its joins seed routing tables
        #: from the plan (:mod:`p2pdm.sim.tables`) instead of looking up.
        self.planned_tables = False
        #: Virtual clock: each node's first publication, once the network has
        #: formed, is placed at the RECORD_LOOKUP_CLOSEST online nodes closest
        #: to its key, where its put would end (``--record-forming plan``).
        self.planned_records = False
        #: While the first publications are placed (:meth:`publish_formed`).
        self._placing = False
        #: Every online node's peer ID and addresses, for tables from the plan
        #: (nodes of other worker processes: from :meth:`learn_addrs`).
        self._addrs: dict[int, tuple[PeerId, list[str]]] = {}
        #: Real clock, tables from the plan (:meth:`hold_joins`): set once
        #: every node listens; a node's first join waits for it.
        self._joins_released: trio.Event | None = None
        #: Seconds each step of forming took (:func:`open_sim_network`).
        self.forming_steps: dict[str, float] = {}
        #: CPU seconds of this process in each step of forming (same names).
        self.forming_cpu: dict[str, float] = {}
        #: During a TCP partition: the group of every node's peer ID.
        self._group_of: dict[PeerId, int] = {}

    def __getitem__(self, index: int) -> SimNode:
        return self.nodes[index]

    def __len__(self) -> int:
        return len(self.nodes)

    def join_addrs(self) -> list[str]:
        """Where peers outside the simulation join it: node 0's addresses,
        reachable from other machines first, loopback last."""
        addrs = self.nodes[0].running.host.listen_addrs()
        return sorted(addrs, key=is_loopback)

    def outside_peer_ids(self) -> dict[str, set[str]]:
        """Peers outside this simulation that the nodes running here know of: in
        their DHT routing tables, and among the mailbox providers they found."""
        ours = {sim_node.peer_id for sim_node in self.nodes}
        in_tables: set[PeerId] = set()
        mailboxes: set[PeerId] = set()
        for sim_node in self.nodes:
            if sim_node.serving is None:
                continue
            in_tables.update(sim_node.serving.host.dht_peers())
            mailboxes.update(sim_node.serving.directory.known_providers())
        return {
            "in_routing_tables": {str(peer) for peer in in_tables - ours},
            "mailbox_providers": {str(peer) for peer in mailboxes - ours},
        }

    def outside_peers(self) -> dict[str, int]:
        """How many peers :meth:`outside_peer_ids` finds, by kind."""
        return {kind: len(peers) for kind, peers in self.outside_peer_ids().items()}

    def _listen_for(self, sim_node: SimNode) -> tuple[str, ...]:
        listen = self._setup.listen
        if listen is not None:
            return (listen[sim_node.index],)
        # Reachable from other machines when the simulation spans several.
        return OPEN_LISTEN if self._setup.external else LOOPBACK

    def _bootstrap_for(self, sim_node: SimNode) -> tuple[str, ...]:
        if sim_node.index == 0:
            return self._setup.external
        through = self.nodes[bootstrap_of(sim_node.index, self._setup.bootstraps)]
        return (through.running.host.listen_addrs()[0],)

    async def start(self, sim_node: SimNode, bootstrap: Sequence[str] | None = None) -> Serving:
        """Run ``sim_node`` (a fresh Node on its store); returns once it serves.

        ``bootstrap``: the peers it joins through, when they run in other
        worker processes (default: its bootstrap node here).
        """
        if sim_node.online:
            return sim_node.running
        sim_node._done = trio.Event()
        with trio.fail_after(NODE_START_TIMEOUT_SECONDS):
            serving: Serving = await self._nursery.start(self._serve, sim_node, bootstrap)
        sim_node.serving = serving
        self._addrs[sim_node.index] = (sim_node.peer_id, serving.host.listen_addrs())
        if self.planned_tables and not sim_node.starts:
            held = self._held(sim_node)
            if held or (self.start_window > 0 and not sim_node.fixed):
                serving.host.table_seed = partial(self.table_from_plan, sim_node)
        sim_node.starts += 1
        self._note_publications(sim_node, serving)
        if self.network is not None and self._groups is not None:
            self._apply_partition()  # a restarted node listens on a new address
        elif self.network is None:  # a split or heal while it was starting
            serving.host.set_peer_filter(self._peer_filter(sim_node))
        return serving

    async def _serve(
        self,
        sim_node: SimNode,
        bootstrap: Sequence[str] | None,
        *,
        task_status: Any = trio.TASK_STATUS_IGNORED,
    ) -> None:
        setup = self._setup
        node = Node(
            sim_node.identity,
            sim_node.store,
            now_ms=setup.now_ms,
            random_bytes=sim_node.random.randbytes,
            request_stamp_bits=SIM_REQUEST_STAMP_BITS,
            observer=NO_OBSERVER if setup.probe is None else setup.probe.observer(sim_node),
        )
        sim_node.node = node
        probe = setup.probe
        options = RunOptions(
            listen=self._listen_for(sim_node),
            bootstrap=self._bootstrap_for(sim_node) if bootstrap is None else tuple(bootstrap),
            mailbox=sim_node.offers_mailbox,
            upkeep=setup.upkeep,
        )
        join_gate = None
        if self._held(sim_node):
            join_gate = partial(self._held_join, sim_node)
        elif self.start_window > 0 and not sim_node.fixed and sim_node.starts == 0:
            delay = sim_node.random.uniform(0, self.start_window)
            options = replace(options, start_delay=delay)
        if (
            self.planned_tables
            and not sim_node.fixed
            and sim_node.starts == 0
            and (self.start_window > 0 or join_gate is not None)
        ):
            # Like its routing table: what the node's earlier runs found.
            remember_providers(sim_node.store, setup.now_ms(), self.mailboxes_from_plan())
        on_delivery = None if probe is None else partial(probe.delivery_created, sim_node)
        try:
            with trio.CancelScope() as sim_node._scope:
                await serve_node(
                    node,
                    options,
                    network=setup.network,
                    peer_filter=self._peer_filter(sim_node),
                    faults=setup.faults,
                    on_delivery=on_delivery,
                    publish_gate=partial(self._publish_gate, sim_node),
                    join_gate=join_gate,
                    task_status=task_status,
                )
        finally:
            self._addrs.pop(sim_node.index, None)
            sim_node.serving = None
            sim_node._scope = None
            sim_node._done.set()

    def hold_joins(self) -> None:
        """Real clock, tables from the plan: nodes started from now on (first
        starts only) listen and serve but join the DHT only after
        :meth:`release_joins`, when every node's address is known."""
        self._joins_released = trio.Event()

    def _held(self, sim_node: SimNode) -> bool:
        released = self._joins_released
        return released is not None and not released.is_set() and sim_node.starts == 0

    async def _held_join(self, sim_node: SimNode) -> None:
        assert self._joins_released is not None
        await self._joins_released.wait()
        await trio.sleep(sim_node.random.uniform(0, self.start_window))

    def learn_addrs(self, addrs: dict[int, list[str]]) -> None:
        """Addresses of nodes run by other worker processes, for tables from the plan."""
        for index, node_addrs in addrs.items():
            if not self.nodes[index].local:
                self._addrs[index] = (self.nodes[index].peer_id, node_addrs)

    async def release_joins(
        self,
        window: float,
        timeout: float = NODE_START_TIMEOUT_SECONDS,  # noqa: ASYNC109
    ) -> None:
        """Let the held joins run, each at a random moment of ``window`` seconds;
        returns once every node of this process that is online has joined.

        Raises trio.TooSlowError if they have not within ``window + timeout``.
        """
        if self._joins_released is None:
            raise RuntimeError("release_joins without hold_joins")
        self.start_window = window
        self._joins_released.set()
        try:
            await self.wait_joined(window + timeout)
        finally:
            self.start_window = 0.0

    async def wait_joined(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until every online node of this process has joined the DHT."""
        await wait_until(
            lambda: all(n.running.host.joined.is_set() for n in self.nodes if n.online),
            timeout,
            lambda: "not every node joined the DHT",
        )

    def table_from_plan(self, sim_node: SimNode) -> list[tuple[PeerId, list[str]]]:
        """What ``sim_node``'s join would put in its routing table, from the plan:
        its closest and a few farther online nodes, with their addresses now."""
        return planned_table(sim_node.peer_id, list(self._addrs.values()))

    def mailboxes_from_plan(self) -> list[tuple[PeerId, list[str]]]:
        """The mailbox providers a lookup would find: the online nodes offering
        the service (the fixed ones, started first), with their addresses now."""
        return [
            self._addrs[n.index] for n in self.nodes if n.offers_mailbox and n.index in self._addrs
        ][:MAILBOX_MAX_REMEMBERED]

    @property
    def publish_window(self) -> float:
        """Seconds over which the nodes publish their records once formed."""
        if self.planned_records:
            return PLANNED_RECORDS_PUBLISH_WINDOW_SECONDS
        real_planned = self.network is None and self.planned_tables
        return publish_window(len(self.nodes), real_planned=real_planned)

    async def _publish_gate(self, sim_node: SimNode) -> None:
        """Hold ``sim_node``'s first record publication until the network has formed,
        then a random moment of the publish window (none for a node started after it)."""
        await self.formed.wait()
        if trio.current_time() < self._formed_at + self.publish_window:
            await trio.sleep(sim_node.random.uniform(0, self.publish_window))

    def _note_publications(self, sim_node: SimNode, serving: Serving) -> None:
        """Count ``sim_node``'s record publications as they end (:meth:`publish_records`)."""
        sim_node.publications = 0
        sim_node.published = False
        host: Any = serving.host
        put = host.put_record

        async def put_record(key: str, value: bytes) -> int:
            holders = 0
            try:
                if self._placing and sim_node.publications == 0:
                    holders = self._place_record(sim_node, key, value)
                else:
                    holders = int(await put(key, value))
            finally:
                sim_node.publications += 1
                sim_node.published = sim_node.published or holders > 0
            return holders

        host.put_record = put_record

    def _place_record(self, sim_node: SimNode, key: str, value: bytes) -> int:
        """Store ``sim_node``'s record where its put would end: its own copy, then
        the RECORD_LOOKUP_CLOSEST online DHT servers closest to ``key``, each
        taking it as a PUT_VALUE from it (checked, newest wins, within its
        caps); returns how many took it, as the put would."""
        host = sim_node.running.host
        if not host.take_record(key, value, None):
            return 0
        servers = [
            (n.peer_id, n.running.host)
            for n in self.nodes
            if n.online and n is not sim_node and n.running.host.dht_mode() == "server"
        ]
        closest = closest_to_key(key.encode(), servers, RECORD_LOOKUP_CLOSEST)
        return sum(1 for _, holder in closest if holder.take_record(key, value, sim_node.peer_id))

    async def publish_records(self, timeout: float = WAIT_TIMEOUT_SECONDS) -> None:  # noqa: ASYNC109
        """Once every online node has joined the DHT (a spread start's joins come
        within :attr:`start_window`), let the nodes publish their records (over
        :attr:`publish_window`) and wait until every online node's first
        publication has ended: its record stored at the closest peers (libp2p's
        put returns once they answered, within RECORD_PUT_TIMEOUT_SECONDS)."""
        await self.wait_joined(self.start_window + timeout)
        if self.planned_tables and self._joins_released is None:
            # The fixed nodes joined first, into an empty network: their tables
            # now get what the joins that followed would have filled them with.
            for sim_node in self.nodes:
                if sim_node.fixed and sim_node.online:
                    await sim_node.running.host.seed_routing_table(self.table_from_plan(sim_node))
        await self.publish_formed(timeout)

    async def publish_formed(self, timeout: float = WAIT_TIMEOUT_SECONDS) -> None:  # noqa: ASYNC109
        """The network has formed: let the nodes of this process publish their
        records (over :attr:`publish_window`) and wait until each online one's
        first publication has ended."""
        self._formed_at = trio.current_time()
        self._placing = self.planned_records
        self.formed.set()
        try:
            await trio.sleep(self.publish_window)  # every gate has opened by then
            online = [n for n in self.nodes if n.online]
            await wait_until(
                lambda: all(n.publications > 0 for n in online if n.online),
                timeout,
                lambda: "not every node published its record",
            )
        finally:
            self._placing = False
        # A put no peer took (every query timed out: a busy machine) is put
        # again RECORD_RETRY_SECONDS later; the traffic waits for it, a while.
        with suppress(trio.TooSlowError):
            await wait_until(
                lambda: all(n.published for n in online if n.online), PUBLISH_RETRY_WAIT_SECONDS
            )
        missing = sum(1 for n in online if n.online and not n.published)
        if missing:
            log.info("%d records reached no peer when the network formed", missing)

    async def stop(self, sim_node: SimNode) -> None:
        """Stop ``sim_node``'s services and host; its store stays."""
        if sim_node._scope is None:
            return
        sim_node._scope.cancel()
        with trio.fail_after(NODE_STOP_TIMEOUT_SECONDS):
            await sim_node._done.wait()

    def add_contacts(self, rng: random.Random, per_node: int = DEFAULT_CONTACTS) -> int:
        """Give every node ``per_node`` random contacts, both ways; returns the pairs made."""
        pairs = contact_pairs(rng, len(self.nodes), per_node)
        for a, b in pairs:
            self.befriend(a, b)
        return len(pairs)

    def befriend(self, a: int, b: int) -> None:
        """Make nodes ``a`` and ``b`` contacts of each other, from fresh invites."""
        node_a, node_b = self.nodes[a].running.node, self.nodes[b].running.node
        for node, other, name in ((node_a, node_b, f"n{b}"), (node_b, node_a, f"n{a}")):
            node.add_contact_from_invite(other.invite(), name=name)
        self.contacts[a].append(b)
        self.contacts[b].append(a)

    def partition(self, groups: Sequence[Collection[int]]) -> None:
        """Split the nodes into these groups of node indices, until :meth:`heal`.

        Nodes in no group form one more group. Over the memory network the
        links break and dials are black-holed; over TCP every node gets a
        peer filter, so peers across groups are unreachable both ways.
        """
        self._groups = [set(group) for group in groups]
        other = len(self._groups)
        self._group_of = {node.peer_id: other for node in self.nodes}
        for index, group in enumerate(self._groups):
            for i in group:
                self._group_of[self.nodes[i].peer_id] = index
        self._apply_partition()

    def heal(self) -> None:
        """End the partition: every node can reach every other again."""
        self._groups = None
        self._group_of = {}
        if self.network is not None:
            self.network.heal()
        else:
            self._apply_partition()

    @property
    def partitioned(self) -> bool:
        return self._groups is not None

    def _peer_filter(self, sim_node: SimNode) -> PeerFilter | None:
        """Over TCP during a partition: the peers of ``sim_node``'s group (and
        peers outside the simulation if it is in no group); else None."""
        if self.network is not None or self._groups is None:
            return None
        group_of = self._group_of
        other = len(self._groups)
        mine = group_of[sim_node.peer_id]
        return lambda peer: group_of.get(peer, other) == mine

    def collect(
        self, undelivered: Iterable[tuple[bytes, int, int]], now_ms: int, *, mailboxes: bool = True
    ) -> Collected:
        """What this process's stores say after a run: :func:`p2pdm.sim.simnode.collect`."""
        return collect(self.nodes, undelivered, now_ms, mailboxes=mailboxes)

    def _apply_partition(self) -> None:
        if self.network is None:
            for sim_node in self.nodes:
                if sim_node.online:
                    sim_node.running.host.set_peer_filter(self._peer_filter(sim_node))
            return
        if self._groups is None:
            return
        self.network.partition(
            [
                [addr for i in group if self.nodes[i].online for addr in self.nodes[i].node.addrs]  # type: ignore[union-attr]
                for group in self._groups
            ]
        )

    # --- for tests ----------------------------------------------------------------

    async def send(self, sender: int, recipient: int, text: str) -> StoredMessage:
        """Node ``sender`` sends ``text`` to node ``recipient``; returns the message, queued.

        ``recipient`` need not be a contact: its prekey bundle is then fetched
        from the DHT (and it becomes one); if it is not found, the message
        waits for it, queued with no envelope (:mod:`p2pdm.node.key_waits`).
        """
        node = self.nodes[sender].running.node
        return await node.send(self.nodes[recipient].peer_id, text)

    async def wait_status(
        self,
        sender: int,
        message: StoredMessage,
        status: DeliveryStatus | str,
        timeout: float = WAIT_TIMEOUT_SECONDS,  # noqa: ASYNC109 - a bound, not a deadline API
    ) -> StoredMessage:
        """Wait until ``sender``'s copy of ``message`` has ``status`` (online or not).

        Raises trio.TooSlowError naming the status it has after ``timeout`` seconds.
        """
        wanted = DeliveryStatus(status)
        store = self.nodes[sender].store

        def current() -> StoredMessage:
            found = store.get_message(message.id)
            if found is None:
                raise LookupError(f"node {sender} has no message {message.id.hex()}")
            return found

        await wait_until(
            lambda: current().status is wanted,
            timeout,
            lambda: (
                f"message {message.id.hex()} from node {sender} is {current().status}, "
                f"not {wanted}, after {timeout} s"
            ),
        )
        return current()

    async def wait_delivered(
        self,
        sender: int,
        message: StoredMessage,
        timeout: float = WAIT_TIMEOUT_SECONDS,  # noqa: ASYNC109 - a bound, not a deadline API
    ) -> StoredMessage:
        """:meth:`wait_status` for ``delivered``."""
        return await self.wait_status(sender, message, DeliveryStatus.DELIVERED, timeout)

    async def wait_received(
        self,
        recipient: int,
        message: StoredMessage,
        timeout: float = WAIT_TIMEOUT_SECONDS,  # noqa: ASYNC109 - a bound, not a deadline API
    ) -> StoredMessage:
        """Wait until ``recipient``'s store holds ``message``; returns its copy.

        Raises trio.TooSlowError after ``timeout`` seconds.
        """
        store = self.nodes[recipient].store
        await wait_until(
            lambda: store.get_message(message.id) is not None,
            timeout,
            lambda: f"node {recipient} has not received {message.id.hex()} after {timeout} s",
        )
        received = store.get_message(message.id)
        assert received is not None
        return received


async def wait_until(
    condition: Callable[[], bool],
    timeout: float = WAIT_TIMEOUT_SECONDS,  # noqa: ASYNC109 - a bound, not a deadline API
    describe: Callable[[], str] | None = None,
) -> None:
    """Look at ``condition`` every WAIT_POLL_SECONDS until it holds.

    Raises trio.TooSlowError after ``timeout`` seconds, with ``describe()``
    as its message (what the test waited for, what it saw instead).
    """
    with trio.move_on_after(timeout):
        while not condition():  # noqa: ASYNC110 - polls state other tasks change
            await trio.sleep(WAIT_POLL_SECONDS)
        return
    raise trio.TooSlowError(describe() if describe else f"not done after {timeout} s")


def publish_window(count: int, *, real_planned: bool = False) -> float:
    """Seconds over which ``count`` nodes publish their records once formed
    (``real_planned``: real clock, tables from the plan)."""
    if real_planned:
        per_node = REAL_PLANNED_PUBLISH_WINDOW_SECONDS_PER_NODE * count
        return max(1.0, min(START_WINDOW_MAX_SECONDS, per_node))
    per_node = PUBLISH_WINDOW_SECONDS_PER_NODE * count
    return max(1.0, min(PUBLISH_WINDOW_MAX_SECONDS, per_node))


def real_start_window(count: int) -> float:
    """Seconds over which a real-clock run's ``count`` held joins come
    (:meth:`SimNetwork.release_joins`)."""
    return min(START_WINDOW_MAX_SECONDS, REAL_PLANNED_START_WINDOW_SECONDS_PER_NODE * count)


def virtual_wall_ms() -> Callable[[], int]:
    """A wall clock (ms) that starts now and then follows trio's clock (virtual time)."""
    start_ms, t0 = wall_ms(), trio.current_time()
    return lambda: start_ms + int((trio.current_time() - t0) * 1000)


@asynccontextmanager
async def serve_sim_nodes(
    nodes: list[SimNode],
    *,
    network: MemoryNetwork | None = None,
    upkeep: Upkeep = SIM_UPKEEP,
    now_ms: Callable[[], int] = wall_ms,
    probe: Probe | None = None,
    external: Sequence[str] = (),
    listen: str | None = None,
    faults: TcpFaults | None = None,
    publish_after_forming: bool = False,
) -> AsyncIterator[SimNetwork]:
    """A SimNetwork of ``nodes``, none started yet; leaving stops them and closes their stores.

    The keywords are :func:`open_sim_network`'s; ``publish_after_forming``:
    the nodes publish their records only at :meth:`SimNetwork.publish_records`
    (else as each starts, as a worker process's nodes do).
    """
    if (external or listen) and network is not None:
        raise ValueError("external peers and listen addresses need TCP, not the memory network")
    if faults is not None and network is not None:
        raise ValueError("the memory network has faults of its own")
    count = len(nodes)
    per_node = None if listen is None else tuple(listen_addrs(listen, count))
    setup = _Setup(
        network, upkeep, now_ms, bootstrap_count(count), probe, tuple(external), per_node, faults
    )
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                sim = SimNetwork(nursery, nodes, setup)
                if not publish_after_forming:
                    sim.formed.set()  # _formed_at stays -inf: no publish window
                yield sim
            except (trio.Cancelled, GeneratorExit):
                raise
            except BaseException as exc:  # raised below, not wrapped in an ExceptionGroup
                error = exc
            finally:
                nursery.cancel_scope.cancel()
    finally:
        for sim_node in nodes:
            if sim_node.local:
                sim_node.store.close()
    if error is not None:
        raise error


@asynccontextmanager
async def open_sim_network(
    count: int,
    *,
    seed: int = 0,
    network: MemoryNetwork | None = None,
    store_dir: Path | None = None,
    mailboxes: int = 1,
    contacts: int = DEFAULT_CONTACTS,
    upkeep: Upkeep = SIM_UPKEEP,
    now_ms: Callable[[], int] = wall_ms,
    probe: Probe | None = None,
    external: Sequence[str] = (),
    listen: str | None = None,
    faults: TcpFaults | None = None,
    spread_start: bool = False,
    planned_tables: bool = False,
    planned_records: bool = False,
) -> AsyncIterator[SimNetwork]:
    """``count`` running nodes with contacts; leaving the block stops them all.

    ``network``: a MemoryNetwork (virtual time, faults), else TCP on
    127.0.0.1. ``store_dir``: SQLite stores there (else in memory).
    ``mailboxes``: how many nodes offer the mailbox service. ``now_ms``:
    the nodes' wall clock (virtual time in a simulation). ``external``:
    peers outside the simulation for node 0 to join through (TCP only);
    the nodes then listen on every interface, not just loopback.
    ``listen``: where the nodes listen instead (TCP only; see
    :func:`listen_addrs`), e.g. ``/ip4/0.0.0.0/tcp/0`` for a simulation that
    other machines join.
    ``faults``: latency and loss on every TCP connection (without ``network``).
    ``spread_start`` (virtual clock): the nodes' first mailbox fetches and
    DHT joins are spread over a window (START_WINDOW_*); the network is
    formed once every node has joined. ``planned_tables``: those joins seed
    each routing table from the plan instead of looking the node up
    (:mod:`p2pdm.sim.tables`); without ``spread_start`` (real clock) every
    node listens first, then the joins come over a window
    (:func:`real_start_window`). ``planned_records`` (virtual clock): each
    node's first record is placed where its put would end
    (:attr:`SimNetwork.planned_records`) instead of put over the network.
    """
    if count < 2:
        raise ValueError("a simulated network needs at least 2 nodes")
    refuse_own_peers(external, seed, count)
    rng = random.Random(seed)
    nodes = make_sim_nodes(count, rng, store_dir=store_dir, mailboxes=mailboxes)
    async with serve_sim_nodes(
        nodes,
        network=network,
        upkeep=upkeep,
        now_ms=now_ms,
        probe=probe,
        external=external,
        listen=listen,
        faults=faults,
        publish_after_forming=True,
    ) as sim:
        sim.planned_tables = planned_tables
        if planned_records and network is None:
            raise ValueError("records are placed from the plan on the memory network only")
        sim.planned_records = planned_records
        if spread_start:
            per_node = (
                PLANNED_START_WINDOW_SECONDS_PER_NODE
                if planned_tables
                else START_WINDOW_SECONDS_PER_NODE
            )
            sim.start_window = min(START_WINDOW_MAX_SECONDS, per_node * count)
        elif planned_tables:
            sim.hold_joins()  # real clock: every node listens before any joins
        last, last_cpu = trio.current_time(), time.process_time()

        def step(name: str) -> None:
            nonlocal last, last_cpu
            sim.forming_steps[name] = round(trio.current_time() - last, 3)
            sim.forming_cpu[name] = round(time.process_time() - last_cpu, 1)
            last, last_cpu = trio.current_time(), time.process_time()

        for sim_node in nodes:
            await sim.start(sim_node)
        step("started")
        if planned_tables and not spread_start:
            await sim.release_joins(real_start_window(count))
            step("joined")
        elif spread_start:
            await sim.wait_joined(sim.start_window + WAIT_TIMEOUT_SECONDS)
            step("joined")
        sim.add_contacts(rng, contacts)
        await sim.publish_records()
        step("published")
        sim.start_window = 0.0  # a node started later (a restart) comes up alone
        yield sim
