"""What a simulation run is asked to do (:class:`SimOptions`) and what it found.

How this works: :class:`SimOptions` holds a scenario as ``p2pdm sim``'s
options give it and checks it (:meth:`SimOptions.check`) before anything
runs; :class:`Progress` is what the progress callback sees while it runs;
:class:`Outcome` is everything it measured, for :mod:`p2pdm.sim.report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from p2pdm.errors import ConfigError
from p2pdm.net import LinkFaults
from p2pdm.sim.layout import fixed_count, listen_addrs, refuse_own_peers
from p2pdm.sim.metrics import Recorder
from p2pdm.sim.network import DEFAULT_CONTACTS
from p2pdm.sim.timeline import Timeline

if TYPE_CHECKING:
    from p2pdm.sim.groups import GroupLedger

__all__ = ["Clock", "Outcome", "Progress", "SimOptions"]

#: Largest simulated network (memory and CPU: docs/simulation.md).
MAX_NODES: Final = 1000
#: Longest traffic phase and drain, in (virtual or real) seconds: one day.
MAX_SECONDS: Final = 86_400.0
#: Most worker processes (``--workers``): one per core is the point; this
#: many pipes and processes stay cheap for the coordinator.
MAX_WORKERS: Final = 64
#: Highest message rate, per second across the network.
MAX_RATE: Final = 1000.0
#: One-way delay of every link in a virtual-time run unless ``--latency`` says
#: otherwise: two people's nodes on home broadband in one region are some
#: 20-50 ms apart one way. Without it every latency of a virtual run is 0 s
#: (the memory network moves bytes instantly) and its figures say nothing.
DEFAULT_VIRTUAL_LATENCY_SECONDS: Final = 0.03
#: Extra one-way delay, uniform in [0, this), on top of the default latency:
#: links vary, and a fixed delay would make every direct delivery take the
#: same time. Real-clock runs add neither: loopback plus the machine's own
#: load is their link, unless ``--latency``/``--jitter`` are given.
DEFAULT_VIRTUAL_JITTER_SECONDS: Final = 0.02

#: From this many nodes on, a virtual-time run's DHT forms from the plan
#: (``--dht-forming auto``, docs/simulation.md "Routing tables from the
#: plan"): each join's self-lookup is most of forming's CPU, which grows
#: faster than the node count. Below it, every join looks up as a real one
#: does (the 200-node test among them).
PLANNED_TABLES_MIN_NODES: Final = 300

Clock = Literal["real", "virtual"]
DhtForming = Literal["auto", "join", "plan"]
RecordForming = Literal["auto", "plan", "put"]


@dataclass(frozen=True, slots=True)
class SimOptions:
    """A scenario, as ``p2pdm sim``'s options give it."""

    nodes: int = 10
    duration: float = 60.0
    rate: float = 1.0
    offline: float = 0.0
    churn: float = 0.0
    mailboxes: int = 3
    loss: float = 0.0
    #: One-way link latency in seconds; None: DEFAULT_VIRTUAL_LATENCY_SECONDS
    #: with the virtual clock, 0 with the real one (see :meth:`link_faults`).
    latency: float | None = None
    #: Extra one-way delay, uniform in [0, jitter); None: the default jitter
    #: when the latency is the default too, else 0.
    jitter: float | None = None
    partition: tuple[float, float] | None = None
    seed: int = 0
    clock: Clock = "real"
    drain: float = 300.0
    contacts: int = DEFAULT_CONTACTS
    #: Scripted events (``--scenario FILE``).
    timeline: Timeline = field(default_factory=Timeline)
    #: Directory for SQLite stores; None keeps the stores in memory.
    store_dir: Path | None = None
    #: Peers outside this simulation (another machine's ``p2pdm sim``, any
    #: libp2p Kademlia node) that the first node joins through (real clock).
    bootstrap: tuple[str, ...] = ()
    #: Where the nodes listen (real clock; ``p2pdm.sim.network.listen_addrs``):
    #: None is loopback, or every interface with ``bootstrap``.
    listen: str | None = None
    #: Processes running the nodes (real clock): 1 runs them all in this
    #: process; more start ``python -m p2pdm.sim.worker`` processes.
    workers: int = 1
    #: Groups to make (``--groups``); their messages come at ``rate`` too.
    groups: int = 0
    #: Members of each group, its creator included (``--group-size``).
    group_size: int = 3
    #: How virtual-time links are secured (``--link-auth``): "noise", libp2p's
    #: Noise handshake as on TCP; "sim", the memory network's own knowledge of
    #: which node is at each end, no key agreement (docs/simulation.md).
    link_auth: str = "noise"
    #: How the nodes fill their DHT routing tables as they join
    #: (``--dht-forming``): "join", each looks itself up through its
    #: bootstrap peer, as a real node does; "plan", each starts with the peers
    #: that lookup would find, computed from the plan's identities (every
    #: later lookup is real; with the real clock every node listens before
    #: any joins, in one process or in workers); "auto", "plan" from
    #: PLANNED_TABLES_MIN_NODES on (never with ``bootstrap``: the plan knows
    #: only this simulation's nodes).
    dht_forming: DhtForming = "auto"
    #: Where each node's first record goes once the network has formed
    #: (``--record-forming``): "put", a put over the network (a lookup of the
    #: key's closest peers, then PUT_VALUE to them), as a real node does;
    #: "plan", placed at the nodes that put would end at, computed from the
    #: plan, each checking it as a PUT_VALUE (virtual clock; later
    #: publications, restarted nodes' among them, and every lookup are real);
    #: "auto", "plan" when the tables come from the plan with the virtual clock.
    record_forming: RecordForming = "auto"

    def planned_tables(self) -> bool:
        """Whether the joins seed their routing tables from the plan."""
        if self.dht_forming == "join" or (self.clock == "real" and self.bootstrap):
            return False
        return self.dht_forming == "plan" or self.nodes >= PLANNED_TABLES_MIN_NODES

    def planned_records(self) -> bool:
        """Whether the nodes' first records are placed from the plan, not put."""
        if self.record_forming == "put" or self.clock != "virtual":
            return False
        return self.record_forming == "plan" or self.planned_tables()

    def check(self) -> None:
        """Raise ConfigError for a scenario that cannot run."""
        if not 2 <= self.nodes <= MAX_NODES:
            raise ConfigError(f"--nodes must be between 2 and {MAX_NODES}")
        if not (0 < self.duration <= MAX_SECONDS and 0 <= self.drain <= MAX_SECONDS):
            raise ConfigError(f"--duration and --drain must be at most {MAX_SECONDS:.0f} s")
        if not 0 < self.rate <= MAX_RATE:
            raise ConfigError(f"--rate must be above 0 and at most {MAX_RATE:.0f}")
        if not 0 <= self.offline <= 1:
            raise ConfigError("--offline is a fraction between 0 and 1")
        if self.churn < 0 or self.mailboxes < 0 or self.contacts < 1:
            raise ConfigError("--churn and --mailboxes must not be negative, --contacts >= 1")
        if not (0 <= self.loss < 1 and (self.latency or 0) >= 0 and (self.jitter or 0) >= 0):
            raise ConfigError(
                "--loss is a probability below 1; --latency and --jitter must not be negative"
            )
        if self.partition is not None:
            start, end = self.partition
            if not 0 <= start < end:
                raise ConfigError("--partition is START:END seconds with START < END")
        if not 1 <= self.workers <= min(MAX_WORKERS, self.nodes):
            raise ConfigError(f"--workers must be between 1 and {MAX_WORKERS}, and at most --nodes")
        if self.workers > 1 and self.clock != "real":
            raise ConfigError(
                "--workers spreads real-clock nodes over processes; --clock virtual runs"
                " in one process (use --workers 1)"
            )
        if self.link_auth not in ("noise", "sim"):
            raise ConfigError("--link-auth is noise or sim")
        if self.link_auth == "sim" and self.clock != "virtual":
            raise ConfigError("--link-auth sim is for the memory network: use --clock virtual")
        if self.dht_forming not in ("auto", "join", "plan"):
            raise ConfigError("--dht-forming is auto, join or plan")
        if self.record_forming not in ("auto", "plan", "put"):
            raise ConfigError("--record-forming is auto, plan or put")
        if self.record_forming == "plan" and self.clock != "virtual":
            raise ConfigError(
                "--record-forming plan places records in one process's nodes: use --clock virtual"
            )
        if self.dht_forming == "plan" and self.bootstrap:
            raise ConfigError(
                "--dht-forming plan knows only this simulation's nodes: not with --bootstrap"
            )
        if self.bootstrap and self.clock != "real":
            raise ConfigError("--bootstrap joins other machines over TCP: use --clock real")
        refuse_own_peers(self.bootstrap, self.seed, self.nodes)
        if self.listen is not None:
            if self.clock != "real":
                raise ConfigError("--listen is for TCP: use --clock real")
            listen_addrs(self.listen, self.nodes)
        self._check_groups()
        self.timeline.check(self.nodes, fixed_count(self.nodes, self.mailboxes), self.duration)

    def _check_groups(self) -> None:
        from p2pdm.limits import MAX_GROUP_MEMBERS
        from p2pdm.sim.groups import MAX_GROUPS

        if not 0 <= self.groups <= MAX_GROUPS:
            raise ConfigError(f"--groups must be between 0 and {MAX_GROUPS}")
        if not self.groups:
            return
        if not 2 <= self.group_size <= min(MAX_GROUP_MEMBERS, self.nodes):
            raise ConfigError(
                f"--group-size must be between 2 and {MAX_GROUP_MEMBERS}, and at most --nodes"
            )
        if self.workers > 1:
            raise ConfigError("--groups runs every node in one process: add --workers 1")

    def link_faults(self) -> LinkFaults:
        """Every link's latency, jitter and loss, the clock's defaults filled in."""
        virtual = self.clock == "virtual"
        latency, jitter = self.latency, self.jitter
        if latency is None:
            latency = DEFAULT_VIRTUAL_LATENCY_SECONDS if virtual else 0.0
            if jitter is None:
                jitter = DEFAULT_VIRTUAL_JITTER_SECONDS if virtual else 0.0
        return LinkFaults(latency=latency, jitter=jitter or 0.0, loss=self.loss)


@dataclass(frozen=True, slots=True)
class Progress:
    """A glance at a running simulation."""

    elapsed_s: float
    #: "returning": the traffic is over; nodes the plan took away are still
    #: to come back (their absences end after the traffic).
    phase: Literal["forming", "traffic", "returning", "draining", "done"]
    sent: int
    delivered: int
    online: int
    #: Seconds since the current phase began.
    phase_s: float = 0.0
    #: How long the phase lasts, in seconds: the traffic's duration; the
    #: plan's last return for "returning" (a restart may take a little
    #: longer); the ``drain`` cap for "draining", which ends as soon as every
    #: message is delivered. None while forming (it ends when the nodes
    #: have joined) and when done.
    phase_limit_s: float | None = None


@dataclass
class Outcome:
    """Everything a run measured, for the report."""

    options: SimOptions
    recorder: Recorder
    undelivered: dict[str, int] = field(default_factory=dict)
    expired_in_mailboxes: int = 0
    held_in_mailboxes: int = 0
    restarts: int = 0
    network_stats: dict[str, int] = field(default_factory=dict)
    form_s: float = 0.0
    #: Seconds each step of forming took (started, joined, contacts, published).
    forming_steps: dict[str, float] = field(default_factory=dict)
    #: CPU seconds of this process in each step of forming (virtual clock).
    forming_cpu: dict[str, float] = field(default_factory=dict)
    #: How long each phase took (forming, traffic, returning, draining), in
    #: simulation seconds.
    phase_s: dict[str, float] = field(default_factory=dict)
    sim_s: float = 0.0
    wall_s: float = 0.0
    #: CPU seconds of this process (not of worker processes) in each phase.
    cpu_s: dict[str, float] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    #: What the seeded plan held (the same for every run with this seed).
    plan_counts: dict[str, int] = field(default_factory=dict)
    #: Where other machines join this simulation (real clock): node 0's addresses.
    join_addrs: list[str] = field(default_factory=list)
    #: Peers outside this simulation its nodes knew of at the end (real clock).
    outside_peers: dict[str, int] = field(default_factory=dict)
    #: Group messages' fates (``--groups``); None without groups.
    groups: GroupLedger | None = None
