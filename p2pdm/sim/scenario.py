"""One simulation run: form the network, send traffic with faults, drain, measure.

How this works: :func:`simulate` opens a :class:`~p2pdm.sim.network.SimNetwork`
(TCP on loopback with the real clock, or a MemoryNetwork with latency and
loss under trio's MockClock), then for ``duration`` seconds runs side by side:

- traffic: messages at ``rate`` per second (exponential gaps, seeded) from a
  random running node to one of its contacts; with probability ``offline``
  the recipient is first taken offline (if it may leave) for
  OFFLINE_SECONDS, its store kept;
- churn: ``churn`` times a minute a random node leaves and rejoins later;
- a partition: two random halves lose touch from START to END.

Then every node comes back and the run drains until every message is
delivered or ``drain`` seconds pass. :func:`simulate` returns the
:class:`Outcome`; :mod:`p2pdm.sim.report` turns it into report files.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import trio

from p2pdm.core.model import DeliveryStatus
from p2pdm.errors import ConfigError, P2PDMError
from p2pdm.mailbox import MAILBOX_PURGE_INTERVAL_SECONDS
from p2pdm.messenger import wall_ms
from p2pdm.net import LinkFaults, MemoryNetwork
from p2pdm.sim.metrics import Recorder
from p2pdm.sim.network import DEFAULT_CONTACTS, SimNetwork, SimNode, open_sim_network

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
    #: False: invites' bundles without one-time prekeys (works around
    #: one-time prekeys shared by every invite until used; see the docs).
    #: Directory for SQLite stores; None keeps the stores in memory.
    store_dir: Path | None = None

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
        if self.clock == "real" and (self.loss or self.latency or self.partition):
            raise ConfigError(
                "--loss, --latency and --partition need the memory network: use --clock virtual"
            )


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


def rss_mb() -> float:
    """This process's resident set in MB (0.0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class _Run:
    def __init__(self, options: SimOptions, sim: SimNetwork, recorder: Recorder) -> None:
        self.options = options
        self.sim = sim
        self.recorder = recorder
        self.rng = random.Random(options.seed + 1)
        self.away: set[int] = set()  # nodes taken away (stopping, stopped, starting)

    def movable(self) -> list[SimNode]:
        return [n for n in self.sim.nodes if not n.fixed and n.index not in self.away]

    async def absence(self, sim_node: SimNode, seconds: float) -> None:
        self.away.add(sim_node.index)
        try:
            await self.sim.stop(sim_node)
            await trio.sleep(seconds)
            await self.sim.start(sim_node)
        finally:
            self.away.discard(sim_node.index)

    async def traffic(self, nursery: trio.Nursery, until: float) -> None:
        options, rng = self.options, self.rng
        counter = 0
        while (now := trio.current_time()) < until:
            await trio.sleep(min(rng.expovariate(options.rate), until - now))
            senders = [n for n in self.sim.nodes if n.online and n.index not in self.away]
            senders = [n for n in senders if self.sim.contacts[n.index]]
            if not senders or trio.current_time() >= until:
                continue
            sender = rng.choice(senders)
            recipient = self.sim[rng.choice(self.sim.contacts[sender.index])]
            offline = recipient.index in self.away
            chosen = options.offline and rng.random() < options.offline
            if chosen and not offline and not recipient.fixed:
                offline = True
                away = rng.uniform(*OFFLINE_SECONDS)
                self.away.add(recipient.index)  # before the send, not when the task runs
                nursery.start_soon(self.absence, recipient, away)
            counter += 1
            node = sender.running.node
            message = node.send_text(str(recipient.peer_id), f"sim message {counter}")
            self.recorder.sent(message.id, sender.index, recipient.index, offline=offline)

    async def churn(self, nursery: trio.Nursery, until: float) -> None:
        rng = self.rng
        while (now := trio.current_time()) < until:
            await trio.sleep(min(rng.expovariate(self.options.churn / 60.0), until - now))
            candidates = [n for n in self.movable() if n.online]
            if candidates and trio.current_time() < until:
                leaving = rng.choice(candidates)
                self.away.add(leaving.index)
                nursery.start_soon(self.absence, leaving, rng.uniform(*CHURN_AWAY_SECONDS))

    async def partition(self, t0: float) -> None:
        assert self.options.partition is not None
        start, end = self.options.partition
        await trio.sleep_until(t0 + start)
        indices = list(range(len(self.sim)))
        self.rng.shuffle(indices)
        half = len(indices) // 2
        self.sim.partition([indices[:half], indices[half:]])
        await trio.sleep_until(t0 + end)
        self.sim.heal()


async def simulate(
    options: SimOptions, progress: Callable[[Progress], None] | None = None
) -> Outcome:
    """Run the scenario; raises ConfigError for a bad one."""
    options.check()
    t0 = trio.current_time()
    start_ms = wall_ms()
    recorder = Recorder(clock=lambda: trio.current_time() - t0)
    outcome = Outcome(options, recorder)
    wall0 = time.monotonic()
    network = None
    if options.clock == "virtual":
        network = MemoryNetwork(
            LinkFaults(latency=options.latency, loss=options.loss), seed=options.seed
        )

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
    ) as sim:
        outcome.form_s = trio.current_time() - t0
        outcome.rss_mb["formed"] = rss_mb()
        run = _Run(options, sim, recorder)
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
                faults.start_soon(run.traffic, faults, until)
                if options.churn:
                    faults.start_soon(run.churn, faults, until)
                if options.partition is not None:
                    faults.start_soon(run.partition, traffic_start)
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
    if sim.network is not None:
        outcome.network_stats = dict(sim.network.stats)
