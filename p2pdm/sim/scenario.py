"""One simulation run: form the network, send traffic with faults, drain, measure.

How this works: :func:`simulate` opens a :class:`~p2pdm.sim.network.SimNetwork`
(TCP on loopback with the real clock, or a MemoryNetwork under trio's
MockClock; latency and loss on either), then makes the run's plan
(:func:`p2pdm.sim.timeline.make_plan`, from the seed, the options, the
scenario's timeline and the contacts alone) and carries it out for
``duration`` seconds:

- traffic: messages at ``rate`` per second (exponential gaps) plus the
  timeline's bursts, from a node the plan has online to one of its contacts;
  with probability ``offline`` the recipient is first taken offline (if it
  may leave) for OFFLINE_SECONDS, its store kept;
- churn: ``churn`` times a minute a random node leaves and rejoins later;
- scripted absences, splits (partitions) and link changes at their times;
  ``--partition`` splits two random halves from START to END.

At one instant, nodes leave first, then splits and link changes, then sends;
restarts run in the background and a sender still restarting sends once it
serves. Then every node comes back and the run drains until every message is
delivered or ``drain`` seconds pass. :func:`simulate` returns the
:class:`Outcome`; :mod:`p2pdm.sim.report` turns it into report files.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final, Literal

import trio

from p2pdm.core.model import DeliveryStatus
from p2pdm.errors import ConfigError, P2PDMError
from p2pdm.mailbox import MAILBOX_PURGE_INTERVAL_SECONDS
from p2pdm.messenger import wall_ms
from p2pdm.net import LinkFaults, MemoryNetwork, TcpFaults
from p2pdm.net.addrs import is_loopback
from p2pdm.sim.determinism import SIM_EPOCH_MS, deterministic
from p2pdm.sim.metrics import Recorder
from p2pdm.sim.network import (
    DEFAULT_CONTACTS,
    NODE_START_TIMEOUT_SECONDS,
    SimNetwork,
    SimNode,
    fixed_count,
    listen_addrs,
    open_sim_network,
    refuse_own_peers,
)
from p2pdm.sim.timeline import LinkChange, Send, Timeline, make_plan

__all__ = ["Outcome", "Progress", "SimOptions", "simulate"]

#: How long a recipient taken offline for a message stays away (uniform).
OFFLINE_SECONDS: Final = (20.0, 90.0)
#: How long a churning node stays away (uniform).
CHURN_AWAY_SECONDS: Final = (10.0, 120.0)
#: Largest simulated network (memory and CPU: docs/simulation.md).
MAX_NODES: Final = 1000
#: Longest traffic phase and drain, in (virtual or real) seconds: one day.
MAX_SECONDS: Final = 86_400.0
#: Highest message rate, per second across the network.
MAX_RATE: Final = 1000.0
#: How often the progress callback hears from the run, in simulation seconds.
PROGRESS_SECONDS: Final = 1.0
#: Mailbox envelopes kept per recipient and page when checking expiry.
MAILBOX_CHECK_PAGE: Final = 500

Clock = Literal["real", "virtual"]


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
    latency: float = 0.0
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
        if not (0 <= self.loss < 1 and self.latency >= 0):
            raise ConfigError("--loss is a probability below 1; --latency must not be negative")
        if self.partition is not None:
            start, end = self.partition
            if not 0 <= start < end:
                raise ConfigError("--partition is START:END seconds with START < END")
        if self.bootstrap and self.clock != "real":
            raise ConfigError("--bootstrap joins other machines over TCP: use --clock real")
        refuse_own_peers(self.bootstrap, self.seed, self.nodes)
        if self.listen is not None:
            if self.clock != "real":
                raise ConfigError("--listen is for TCP: use --clock real")
            listen_addrs(self.listen, self.nodes)
        self.timeline.check(self.nodes, fixed_count(self.nodes, self.mailboxes), self.duration)


@dataclass(frozen=True, slots=True)
class Progress:
    """A glance at a running simulation."""

    elapsed_s: float
    phase: Literal["forming", "traffic", "draining", "done"]
    sent: int
    delivered: int
    online: int


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
    sim_s: float = 0.0
    wall_s: float = 0.0
    rss_mb: dict[str, float] = field(default_factory=dict)
    #: What the seeded plan held (the same for every run with this seed).
    plan_counts: dict[str, int] = field(default_factory=dict)
    #: Where other machines join this simulation (real clock): node 0's addresses.
    join_addrs: list[str] = field(default_factory=list)
    #: Peers outside this simulation its nodes knew of at the end (real clock).
    outside_peers: dict[str, int] = field(default_factory=dict)


def announce_join(addrs: list[str], seed: int) -> None:
    """Tell the tester, on stderr, how another machine joins this simulation."""
    if addrs:
        print(
            f"other machines join this simulation with: p2pdm sim --bootstrap {addrs[0]}"
            f" --seed {seed + 1}  (any seed but {seed}: the seed makes the identities)",
            file=sys.stderr,
        )
        if is_loopback(addrs[0]):
            print(
                "(that is loopback: for other machines, listen on their network too,"
                " e.g. --listen /ip4/0.0.0.0/tcp/0)",
                file=sys.stderr,
            )


def rss_mb() -> float:
    """This process's resident set in MB (0.0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Run:
    """Carries out a :class:`~p2pdm.sim.timeline.Plan` against running nodes."""

    def __init__(self, options: SimOptions, sim: SimNetwork, recorder: Recorder) -> None:
        self.options = options
        self.sim = sim
        self.recorder = recorder
        self.plan = make_plan(
            seed=options.seed,
            duration=options.duration,
            rate=options.rate,
            offline=options.offline,
            churn=options.churn,
            partition=options.partition,
            timeline=options.timeline,
            contacts=sim.contacts,
            fixed=fixed_count(options.nodes, options.mailboxes),
            offline_seconds=OFFLINE_SECONDS,
            churn_away_seconds=CHURN_AWAY_SECONDS,
        )
        #: Nodes restarting, by index: set once the node serves again.
        self.starting: dict[int, trio.Event] = {}
        self.counter = 0

    async def _settled(self, sim_node: SimNode) -> None:
        """Wait (bounded) until ``sim_node`` is not in the middle of a restart."""
        event = self.starting.get(sim_node.index)
        if event is not None:
            with trio.fail_after(NODE_START_TIMEOUT_SECONDS):
                await event.wait()

    async def _restart(self, sim_node: SimNode) -> None:
        event = self.starting[sim_node.index] = trio.Event()
        try:
            await self.sim.start(sim_node)
        finally:
            del self.starting[sim_node.index]
            event.set()

    def _send_now(self, send: Send) -> None:
        self.counter += 1
        node = self.sim[send.sender].running.node
        text = f"sim message {self.counter}"
        message = node.send_text(str(self.sim[send.recipient].peer_id), text)
        self.recorder.sent(message.id, send.sender, send.recipient, offline=send.recipient_offline)

    async def _send_later(self, send: Send) -> None:
        """The sender is still restarting (slower than planned): send once it serves."""
        await self._settled(self.sim[send.sender])
        self._send_now(send)

    async def run(self, nursery: trio.Nursery, t0: float) -> None:
        """Every planned event at its time; restarts and late sends go to ``nursery``."""
        events: list[tuple[float, int, Callable[[], Awaitable[None] | None]]] = []
        for absence in self.plan.absences:
            sim_node = self.sim[absence.node]
            events.append((absence.start, 0, partial(self._leave, sim_node)))
            events.append((absence.end, 3, partial(nursery.start_soon, self._restart, sim_node)))
        for part in self.plan.partitions:
            events.append((part.start, 1, partial(self.sim.partition, part.groups)))
            events.append((part.end, 1, self.sim.heal))
        for link in self.plan.links:
            events.append((link.at, 1, partial(self._link, link)))
        for send in self.plan.sends:
            events.append((send.at, 2, partial(self._send, nursery, send)))
        events.sort(key=lambda e: (e[0], e[1]))
        for at, _, action in events:
            await trio.sleep_until(t0 + at)
            result = action()
            if result is not None:
                await result

    async def _leave(self, sim_node: SimNode) -> None:
        await self._settled(sim_node)
        await self.sim.stop(sim_node)

    def _send(self, nursery: trio.Nursery, send: Send) -> None:
        if self.sim[send.sender].online:
            self._send_now(send)
        else:
            nursery.start_soon(self._send_later, send)

    def _link(self, link: LinkChange) -> None:
        links = self.sim.network or self.sim.faults
        assert links is not None  # simulate() gives TCP faults to a run with link changes
        faults = links.faults
        links.faults = LinkFaults(
            latency=faults.latency if link.latency is None else link.latency,
            jitter=faults.jitter,
            loss=faults.loss if link.loss is None else link.loss,
        )


async def simulate(
    options: SimOptions, progress: Callable[[Progress], None] | None = None
) -> Outcome:
    """Run the scenario; raises ConfigError for a bad one.

    With the virtual clock (under trio's MockClock) the run is replayed
    exactly by the same seed (:mod:`p2pdm.sim.determinism`).
    """
    options.check()
    if options.clock != "virtual":
        return await _simulate(options, progress, wall_ms())
    with deterministic(options.seed):
        return await _simulate(options, progress, SIM_EPOCH_MS)


async def _simulate(
    options: SimOptions, progress: Callable[[Progress], None] | None, start_ms: int
) -> Outcome:
    t0 = trio.current_time()
    recorder = Recorder(clock=lambda: trio.current_time() - t0)
    outcome = Outcome(options, recorder)
    wall0 = time.monotonic()
    network = tcp_faults = None
    link_faults = LinkFaults(latency=options.latency, loss=options.loss)
    if options.clock == "virtual":
        network = MemoryNetwork(link_faults, seed=options.seed)
    elif options.loss or options.latency or options.timeline.links:
        tcp_faults = TcpFaults(link_faults, seed=options.seed)

    def now_ms() -> int:
        return start_ms + int((trio.current_time() - t0) * 1000)

    phase: list[str] = ["forming"]

    def report(sim: SimNetwork | None) -> None:
        if progress is not None:
            online = sum(1 for n in sim.nodes if n.online) if sim else 0
            progress(
                Progress(
                    trio.current_time() - t0,
                    phase[0],  # type: ignore[arg-type]
                    len(recorder.messages),
                    recorder.delivered,
                    online,
                )
            )

    outcome.rss_mb["start"] = rss_mb()
    report(None)
    async with open_sim_network(
        options.nodes,
        seed=options.seed,
        network=network,
        store_dir=options.store_dir,
        mailboxes=options.mailboxes,
        contacts=options.contacts,
        now_ms=now_ms,
        probe=recorder,
        external=options.bootstrap,
        listen=options.listen,
        faults=tcp_faults,
    ) as sim:
        outcome.form_s = trio.current_time() - t0
        if options.clock == "real":
            outcome.join_addrs = sim.join_addrs()
            announce_join(outcome.join_addrs, options.seed)
        outcome.rss_mb["formed"] = rss_mb()
        run = _Run(options, sim, recorder)
        plan, timeline = run.plan, options.timeline
        outcome.plan_counts = {
            "sends": len(plan.sends),
            "sends_to_absent": sum(1 for send in plan.sends if send.recipient_offline),
            "absences": len(plan.absences),
            "partitions": len(plan.partitions),
            "link_changes": len(plan.links),
            "scripted": len(timeline.offline)
            + len(timeline.partitions)
            + len(timeline.bursts)
            + len(timeline.links),
        }
        traffic_start = trio.current_time()
        until = traffic_start + options.duration
        phase[0] = "traffic"
        async with trio.open_nursery() as nursery:

            async def tick() -> None:
                while True:
                    report(sim)
                    await trio.sleep(PROGRESS_SECONDS)

            nursery.start_soon(tick)
            async with trio.open_nursery() as faults:
                await run.run(faults, traffic_start)
                await trio.sleep_until(until)
            # Every absence has ended (the nursery waited for them): drain.
            if sim.partitioned:
                sim.heal()
            phase[0] = "draining"
            with trio.move_on_after(options.drain):
                while recorder.delivered < len(recorder.messages):  # noqa: ASYNC110
                    await trio.sleep(PROGRESS_SECONDS)
            phase[0] = "done"
            report(sim)
            nursery.cancel_scope.cancel()
        outcome.sim_s = trio.current_time() - t0
        outcome.rss_mb["end"] = rss_mb()
        _collect(outcome, sim, now_ms())
    outcome.wall_s = time.monotonic() - wall0
    return outcome


def _collect(outcome: Outcome, sim: SimNetwork, now: int) -> None:
    """Undelivered messages by reason, mailbox expiry, restarts, network counters."""
    reasons: dict[str, int] = {}
    for record in outcome.recorder.messages.values():
        if record.delivered_s is not None:
            continue
        store = sim[record.sender].store
        try:
            message = store.get_message(record.id)
            history = store.status_history(record.id)
        except P2PDMError:
            message, history = None, []
        status = message.status if message is not None else DeliveryStatus.FAILED
        detail = history[-1].detail if history else ""
        outbox = [
            i for i in store.outbox_for(sim[record.recipient].peer_id) if i.message_id == record.id
        ]
        last_error = outbox[0].last_error if outbox else ""
        reason = f"{status.value}: {detail or last_error or 'no detail'}"[:160]
        reasons[reason] = reasons.get(reason, 0) + 1
    outcome.undelivered = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    grace_ms = int(MAILBOX_PURGE_INTERVAL_SECONDS * 1000)
    for sim_node in sim.nodes:
        if not sim_node.offers_mailbox:
            continue
        held, _ = sim_node.store.mailbox_usage()
        outcome.held_in_mailboxes += held
        for other in sim.nodes:
            page = sim_node.store.mailbox_fetch(other.peer_id, 0, 0, MAILBOX_CHECK_PAGE)
            # Purged every MAILBOX_PURGE_INTERVAL_SECONDS: expired past that is a breach.
            outcome.expired_in_mailboxes += sum(
                1 for item in page if item.expires_at_ms + grace_ms < now
            )
    outcome.restarts = sum(n.starts - 1 for n in sim.nodes)
    if sim.network is None:
        outcome.outside_peers = sim.outside_peers()
    links = sim.network or sim.faults
    if links is not None:
        outcome.network_stats = dict(links.stats)
