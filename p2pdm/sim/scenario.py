"""One simulation run: form the network, send traffic with faults, drain, measure.

How this works: :func:`simulate` opens the nodes — a
:class:`~p2pdm.sim.network.SimNetwork` in this process (TCP on loopback with
the real clock, or a MemoryNetwork under trio's MockClock; latency and loss on
either), or with the real clock and ``workers`` > 1 worker processes
(:mod:`p2pdm.sim.remote`), both driven through one
:class:`~p2pdm.sim.nodes.Nodes` interface — then makes the run's plan
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

import gc
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Final

import trio

from p2pdm.net import MemoryNetwork, TcpFaults
from p2pdm.net.addrs import is_loopback
from p2pdm.node.messenger import wall_ms
from p2pdm.sim.determinism import SIM_EPOCH_MS, deterministic
from p2pdm.sim.groups import GroupDriver, GroupLedger, GroupSend, plan_groups
from p2pdm.sim.layout import fixed_count
from p2pdm.sim.metrics import Recorder
from p2pdm.sim.network import (
    NODE_START_TIMEOUT_SECONDS,
    REAL_SIM_UPKEEP,
    SIM_GC_THRESHOLDS,
    SIM_UPKEEP,
    open_sim_network,
)
from p2pdm.sim.nodes import LocalNodes, Nodes, rss_mb
from p2pdm.sim.options import Outcome, Progress, SimOptions
from p2pdm.sim.remote import open_worker_network
from p2pdm.sim.timeline import LinkChange, Send, make_plan

__all__ = ["Outcome", "Progress", "SimOptions", "simulate"]

#: How long a recipient taken offline for a message stays away (uniform).
OFFLINE_SECONDS: Final = (20.0, 90.0)
#: How long a churning node stays away (uniform).
CHURN_AWAY_SECONDS: Final = (10.0, 120.0)
#: How often the progress callback hears from the run, in simulation seconds.
PROGRESS_SECONDS: Final = 1.0


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


class _Run:
    """Carries out a :class:`~p2pdm.sim.timeline.Plan` against running nodes."""

    def __init__(self, options: SimOptions, sim: Nodes, recorder: Recorder) -> None:
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
        #: Group traffic (``--groups``), made by :meth:`form_groups`.
        self.groups: GroupDriver | None = None

    async def form_groups(self) -> GroupLedger | None:
        """Make the run's groups before the traffic (one process only); their ledger."""
        options = self.options
        if not options.groups:
            return None
        assert isinstance(self.sim, LocalNodes)  # SimOptions.check refuses workers
        plan = plan_groups(
            seed=options.seed,
            nodes=options.nodes,
            groups=options.groups,
            size=options.group_size,
            duration=options.duration,
            rate=options.rate,
        )
        ledger = self.recorder.groups = GroupLedger()
        self.groups = GroupDriver(self.sim, plan, ledger)
        await self.groups.form()
        return ledger

    async def _group_send(self, send: GroupSend) -> None:
        assert self.groups is not None
        await self.groups.send(send, self.recorder.clock())

    async def _settled(self, index: int) -> None:
        """Wait (bounded) until node ``index`` is not in the middle of a restart."""
        event = self.starting.get(index)
        if event is not None:
            with trio.fail_after(NODE_START_TIMEOUT_SECONDS):
                await event.wait()

    async def _restart(self, index: int) -> None:
        event = self.starting[index] = trio.Event()
        try:
            await self.sim.start(index)
        finally:
            del self.starting[index]
            event.set()

    async def _send_now(self, send: Send) -> None:
        self.counter += 1
        text = f"sim message {self.counter}"
        message_id, at = await self.sim.send(send.sender, send.recipient, text)
        self.recorder.sent(
            message_id, send.sender, send.recipient, offline=send.recipient_offline, at=at
        )

    async def _send_later(self, send: Send) -> None:
        """The sender is still restarting (slower than planned): send once it serves."""
        await self._settled(send.sender)
        await self._send_now(send)

    async def run(self, nursery: trio.Nursery, t0: float, traffic_over: Callable[[], None]) -> None:
        """Every planned event at its time; restarts and late sends go to ``nursery``.

        Calls ``traffic_over`` at ``duration``, before the returns planned
        after it.
        """
        duration = self.options.duration
        over = False
        events: list[tuple[float, int, Callable[[], Awaitable[None] | None]]] = []
        for absence in self.plan.absences:
            events.append((absence.start, 0, partial(self._leave, absence.node)))
            events.append(
                (absence.end, 3, partial(nursery.start_soon, self._restart, absence.node))
            )
        for part in self.plan.partitions:
            events.append((part.start, 1, partial(self.sim.partition, part.groups)))
            events.append((part.end, 1, self.sim.heal))
        for link in self.plan.links:
            events.append((link.at, 1, partial(self._link, link)))
        for send in self.plan.sends:
            events.append((send.at, 2, partial(self._send, nursery, send)))
        for group_send in self.groups.plan.sends if self.groups else ():
            events.append((group_send.at, 2, partial(self._group_send, group_send)))
        events.sort(key=lambda e: (e[0], e[1]))
        for at, _, action in events:
            if not over and at > duration:
                await trio.sleep_until(t0 + duration)
                traffic_over()
                over = True
            await trio.sleep_until(t0 + at)
            result = action()
            if result is not None:
                await result
        if not over:
            await trio.sleep_until(t0 + duration)
            traffic_over()

    async def _leave(self, index: int) -> None:
        await self._settled(index)
        await self.sim.stop(index)

    async def _send(self, nursery: trio.Nursery, send: Send) -> None:
        if self.sim.online(send.sender):
            await self._send_now(send)
        else:
            nursery.start_soon(self._send_later, send)

    async def _link(self, link: LinkChange) -> None:
        await self.sim.change_links(link)


@asynccontextmanager
async def _open_nodes(
    options: SimOptions,
    recorder: Recorder,
    now_ms: Callable[[], int],
    zero_ns: int,
) -> AsyncIterator[Nodes]:
    """The run's nodes, formed: in worker processes, or in this one."""
    link_faults = options.link_faults()
    faulty_tcp = bool(
        link_faults.loss or link_faults.latency or link_faults.jitter or options.timeline.links
    )
    if options.workers > 1:
        async with open_worker_network(
            nodes=options.nodes,
            workers=options.workers,
            seed=options.seed,
            mailboxes=options.mailboxes,
            contacts=options.contacts,
            store_dir=options.store_dir,
            external=options.bootstrap,
            listen=options.listen,
            faults=link_faults if faulty_tcp else None,
            recorder=recorder,
            zero_ns=zero_ns,
            planned_tables=options.planned_tables(),
        ) as nodes:
            yield nodes
        return
    network = tcp_faults = None
    if options.clock == "virtual":
        network = MemoryNetwork(link_faults, seed=options.seed, link_auth=options.link_auth)
    elif faulty_tcp:
        tcp_faults = TcpFaults(link_faults, seed=options.seed)
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
        upkeep=SIM_UPKEEP if network is not None else REAL_SIM_UPKEEP,
        spread_start=network is not None,
        planned_tables=options.planned_tables(),
        planned_records=options.planned_records(),
    ) as sim:
        yield LocalNodes(sim)


async def simulate(
    options: SimOptions, progress: Callable[[Progress], None] | None = None
) -> Outcome:
    """Run the scenario; raises ConfigError for a bad one, SimWorkerError if a
    worker process fails.

    With the virtual clock (under trio's MockClock) the run is replayed
    exactly by the same seed (:mod:`p2pdm.sim.determinism`).
    """
    options.check()
    with _collector_thresholds(SIM_GC_THRESHOLDS):
        if options.clock != "virtual":
            return await _simulate(options, progress, wall_ms())
        with deterministic(options.seed):
            return await _simulate(options, progress, SIM_EPOCH_MS)


@contextmanager
def _collector_thresholds(thresholds: tuple[int, int, int]) -> Iterator[None]:
    """The garbage collector runs with ``thresholds`` inside, as before after."""
    before = gc.get_threshold()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def _simulate(
    options: SimOptions, progress: Callable[[Progress], None] | None, start_ms: int
) -> Outcome:
    t0 = trio.current_time()
    zero_ns = time.monotonic_ns()
    if options.workers > 1:
        # Workers time events with the system-wide monotonic clock.
        recorder = Recorder(clock=lambda: (time.monotonic_ns() - zero_ns) / 1e9)
    else:
        recorder = Recorder(clock=lambda: trio.current_time() - t0)
    outcome = Outcome(options, recorder)
    wall0 = time.monotonic()

    def now_ms() -> int:
        return start_ms + int((trio.current_time() - t0) * 1000)

    phase: list[str] = ["forming"]
    phase_start: list[float] = [t0]
    phase_limit: list[float | None] = [None]
    phase_cpu: list[float] = [time.process_time()]

    def report(sim: Nodes | None) -> None:
        if progress is not None:
            now = trio.current_time()
            progress(
                Progress(
                    now - t0,
                    phase[0],  # type: ignore[arg-type]
                    len(recorder.messages),
                    recorder.delivered,
                    sim.online_count() if sim else 0,
                    now - phase_start[0],
                    phase_limit[0],
                )
            )

    def enter(name: str, limit: float | None, sim: Nodes) -> None:
        """End the current phase (its last report, its length kept) and start ``name``."""
        report(sim)
        now = trio.current_time()
        outcome.phase_s[phase[0]] = now - phase_start[0]
        cpu = time.process_time()
        outcome.cpu_s[phase[0]] = cpu - phase_cpu[0]
        phase[0], phase_start[0], phase_limit[0], phase_cpu[0] = name, now, limit, cpu
        report(sim)

    outcome.rss_mb["start"] = rss_mb()
    report(None)
    async with _open_nodes(options, recorder, now_ms, zero_ns) as sim:
        outcome.form_s = trio.current_time() - t0
        outcome.forming_steps = dict(sim.forming_steps)
        outcome.forming_cpu = dict(sim.forming_cpu)
        if options.clock == "real":
            outcome.join_addrs = sim.join_addrs()
            announce_join(outcome.join_addrs, options.seed)
        if sim.baseline_rss_mb is not None:
            outcome.rss_mb["start"] = sim.baseline_rss_mb
        outcome.rss_mb["formed"] = await sim.rss_mb()
        run = _Run(options, sim, recorder)
        outcome.groups = await run.form_groups()
        plan, timeline = run.plan, options.timeline
        outcome.plan_counts = {
            **plan.counts(),
            "scripted": len(timeline.offline)
            + len(timeline.partitions)
            + len(timeline.bursts)
            + len(timeline.links),
        }
        traffic_start = trio.current_time()
        enter("traffic", options.duration, sim)
        # Absences may end after the traffic: the run waits for those nodes.
        last_return = max((a.end for a in plan.absences), default=0.0)

        def returning(sim: Nodes) -> None:
            if last_return > options.duration:
                enter("returning", last_return - options.duration, sim)

        async with trio.open_nursery() as nursery:

            async def tick() -> None:
                while True:
                    report(sim)
                    await trio.sleep(PROGRESS_SECONDS)

            nursery.start_soon(tick)
            async with trio.open_nursery() as faults:
                # Then nodes whose absences end after the traffic come back.
                await run.run(faults, traffic_start, partial(returning, sim))
            # Every absence has ended (the nursery waited for them): drain.
            if sim.partitioned:
                await sim.heal()
            enter("draining", options.drain, sim)
            with trio.move_on_after(options.drain):
                while recorder.delivered < len(recorder.messages) or not (  # noqa: ASYNC110
                    outcome.groups is None or outcome.groups.all_delivered()
                ):
                    await trio.sleep(PROGRESS_SECONDS)
            enter("done", None, sim)
            nursery.cancel_scope.cancel()
        outcome.sim_s = trio.current_time() - t0
        outcome.rss_mb["end"] = await sim.rss_mb()
        undelivered = [
            (r.id, r.sender, r.recipient)
            for r in recorder.messages.values()
            if r.delivered_s is None
        ]
        collected = await sim.collect(undelivered, now_ms())
        outcome.undelivered = dict(sorted(collected.undelivered.items(), key=lambda kv: -kv[1]))
        outcome.held_in_mailboxes = collected.held_in_mailboxes
        outcome.expired_in_mailboxes = collected.expired_in_mailboxes
        outcome.restarts = collected.restarts
        if options.clock == "real":
            outcome.outside_peers = await sim.outside_peers()
        outcome.network_stats = await sim.link_stats()
    outcome.wall_s = time.monotonic() - wall0
    return outcome
