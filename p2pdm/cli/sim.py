"""``p2pdm sim``: run a simulated network and write its report.

How this works: the options become a :class:`~p2pdm.sim.SimOptions`;
:func:`p2pdm.sim.simulate` runs under ``trio.run`` — with trio's
``MockClock(autojump_threshold=0)`` for ``--clock virtual``; with ``--clock
real`` the nodes run in ``--workers`` processes, one per core by default — while
``rich`` progress bars (:class:`PhaseBars`, one per phase) show how far the run
is, nodes online, messages sent and delivered. The report goes to ``--out``.
Exit status 0 when the invariants hold (delivery rate is a figure, not a
failure), 1 when one is broken.

A virtual-time run replays exactly from its seed within one process
(:mod:`p2pdm.sim.determinism`); across processes the order of sets of
strings and bytes must match too, so the ``p2pdm sim`` command first runs
itself again with ``PYTHONHASHSEED`` fixed to SIM_HASH_SEED unless it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Final, TextIO

import trio
import trio.testing
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
)

from p2pdm.daemon.home import Home
from p2pdm.errors import ConfigError, P2PDMError
from p2pdm.sim import Progress as SimProgress
from p2pdm.sim import SimOptions, invariants_hold, simulate, write_report
from p2pdm.sim.nodes import first_error
from p2pdm.sim.options import (
    DEFAULT_VIRTUAL_JITTER_SECONDS,
    DEFAULT_VIRTUAL_LATENCY_SECONDS,
    MAX_WORKERS,
    PLANNED_TABLES_MIN_NODES,
)
from p2pdm.sim.timeline import OPTION_KEYS, Timeline, load_scenario

__all__ = ["PhaseBars", "sim", "sim_arguments", "sim_options"]

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
#: Python's string hash seed for virtual-time runs: set iteration order
#: (libp2p's peer sets, ours) then matches between processes, so two
#: ``p2pdm sim`` runs with one ``--seed`` write the same report.
SIM_HASH_SEED: Final = "0"
#: Characters of each phase's progress bar: the figures beside it must fit
#: an 80-column terminal.
BAR_WIDTH: Final = 16


def _partition(text: str) -> tuple[float, float]:
    start, sep, end = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(start), float(end)
    except ValueError:
        raise argparse.ArgumentTypeError("expected START:END in seconds, e.g. 60:120") from None


def sim_arguments(parser: argparse.ArgumentParser) -> None:
    d = SimOptions()
    add = parser.add_argument
    add("--nodes", type=int, default=None, metavar="N", help=f"nodes (default {d.nodes})")
    add(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds of traffic (default {d.duration:g})",
    )
    add(
        "--rate",
        type=float,
        default=None,
        metavar="R",
        help=f"mean messages per second across the network, Poisson arrivals (default {d.rate:g})",
    )
    add(
        "--groups",
        type=int,
        default=None,
        metavar="N",
        help="also make N group chats and send group messages at --rate too (default 0)",
    )
    add(
        "--group-size",
        type=int,
        default=None,
        metavar="K",
        help=f"members of each group, its creator included (default {d.group_size})",
    )
    add(
        "--offline",
        type=float,
        default=None,
        metavar="FRACTION",
        help="fraction of messages whose recipient is taken offline when sent, back 20-90 s later",
    )
    add(
        "--churn",
        type=float,
        default=None,
        metavar="PER_MIN",
        help="nodes leaving (and rejoining 10-120 s later) per minute",
    )
    add(
        "--mailboxes",
        type=int,
        default=None,
        metavar="K",
        help=f"nodes offering the mailbox service (default {d.mailboxes})",
    )
    add(
        "--contacts",
        type=int,
        default=None,
        metavar="C",
        help=f"random contacts each node picks, mutual (default {d.contacts})",
    )
    add(
        "--loss",
        type=float,
        default=None,
        metavar="P",
        help="per-packet loss probability (delay, not lost bytes)",
    )
    add(
        "--latency",
        type=float,
        default=None,
        metavar="S",
        help="one-way link latency in seconds (default: virtual clock"
        f" {DEFAULT_VIRTUAL_LATENCY_SECONDS:g} s plus up to {DEFAULT_VIRTUAL_JITTER_SECONDS:g} s"
        " of jitter; real clock 0, loopback as it is)",
    )
    add(
        "--jitter",
        type=float,
        default=None,
        metavar="S",
        help="extra one-way delay, uniform from 0 to S seconds, per write"
        " (default: with the default latency its jitter, else 0)",
    )
    add(
        "--partition",
        type=_partition,
        metavar="START:END",
        help="split the network in two halves from START to END seconds",
    )
    add(
        "--drain",
        type=float,
        default=None,
        metavar="S",
        help=f"after the traffic, wait at most this long for deliveries (default {d.drain:g})",
    )
    add(
        "--seed",
        type=int,
        default=None,
        help=f"seed of identities, traffic and faults (default {d.seed})",
    )
    add(
        "--clock",
        choices=("real", "virtual"),
        default=None,
        help="real: TCP on 127.0.0.1 in real time (default); virtual: in-memory network, "
        "virtual time",
    )
    add(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes running the nodes with --clock real (default: one per core);"
        " 1 runs them all in this process; --clock virtual always uses 1",
    )
    add(
        "--store",
        choices=("sqlite", "memory"),
        default="sqlite",
        help="node stores: SQLite files under --out/stores (default) or memory",
    )
    add(
        "--link-auth",
        choices=("noise", "sim"),
        default=None,
        help="virtual clock: secure links with Noise as on TCP (default), or let the memory"
        " network vouch for each end (sim: no key agreement, the CPU goes to p2pdm)",
    )
    add(
        "--dht-forming",
        choices=("auto", "join", "plan"),
        default=None,
        help="how routing tables form as nodes join; join: each looks"
        " itself up, as a real node does; plan: each starts with the peers that lookup"
        " would find, computed from the plan (every later lookup is real); auto"
        f" (default): plan from {PLANNED_TABLES_MIN_NODES} nodes on",
    )
    add(
        "--record-forming",
        choices=("auto", "plan", "put"),
        default=None,
        help="virtual clock: where each node's first record goes once the network has"
        " formed; put: over the network, as a real node does; plan: placed at the nodes"
        " that put would end at (later puts and every lookup are real); auto (default):"
        " plan when the routing tables come from the plan",
    )
    add(
        "--scenario",
        type=Path,
        metavar="FILE",
        help="TOML scenario: these options and a timeline (docs/simulation.md);"
        " options given here override the file's",
    )
    add(
        "--bootstrap",
        action="append",
        default=[],
        metavar="MULTIADDR",
        help="join a simulation running on another machine (or any libp2p Kademlia node)"
        " through this peer; real clock only, repeatable",
    )
    add(
        "--listen",
        metavar="MULTIADDR",
        help="where the nodes listen, real clock only: /ip4/0.0.0.0/tcp/0 lets other machines"
        " join (a free port each), /ip4/0.0.0.0/tcp/P gives node i port P+i"
        " (default: 127.0.0.1; every interface with --bootstrap)",
    )
    add("--out", type=Path, metavar="DIR", help="report directory (default: a new temp dir)")
    add("--log-level", choices=LOG_LEVELS, default="error")


def sim_options(args: argparse.Namespace, *, store_dir: Path | None) -> SimOptions:
    """The options: SimOptions' defaults, then the scenario file, then the command line."""
    chosen: dict[str, Any] = {}
    timeline = Timeline()
    if args.scenario is not None:
        chosen, timeline = load_scenario(args.scenario)
    for key in OPTION_KEYS:
        value = getattr(args, key)
        if value is not None:
            chosen[key] = value
    workers = args.workers
    if workers is None:  # one per core for real time, never more than there are nodes
        defaults = SimOptions()
        real = chosen.get("clock", defaults.clock) == "real"
        nodes = chosen.get("nodes", defaults.nodes)
        workers = min(os.cpu_count() or 1, MAX_WORKERS, max(nodes, 1)) if real else 1
        if chosen.get("groups"):
            workers = 1  # group traffic runs every node in this process
    options = SimOptions(
        **chosen,
        timeline=timeline,
        store_dir=store_dir,
        bootstrap=tuple(args.bootstrap),
        listen=args.listen,
        workers=workers,
    )
    try:
        options.check()
    except ConfigError as exc:
        if args.scenario is None:
            raise
        raise ConfigError(f"{args.scenario}: {exc}") from None
    return options


def _run_again_with_fixed_hash_seed() -> None:
    """Replace this process by the same command with PYTHONHASHSEED=SIM_HASH_SEED.

    Returns only if it is set already, or (with a note) if this platform
    cannot re-execute.
    """
    if os.environ.get("PYTHONHASHSEED") == SIM_HASH_SEED:
        return
    env = {**os.environ, "PYTHONHASHSEED": SIM_HASH_SEED}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as exc:
        print(
            f"note: cannot run again with PYTHONHASHSEED={SIM_HASH_SEED} ({exc.strerror});"
            " this run's report may differ from another process's with the same seed",
            file=sys.stderr,
        )


class PhaseBars:
    """One progress bar per phase of a run, each with that phase's own total.

    Forming has no known length (it ends when the nodes have joined);
    traffic counts to ``--duration`` seconds; "returning" (nodes the plan
    took away coming back after the traffic) to the plan's last return;
    draining counts delivered messages to the number sent, and ends early
    when they are all delivered (``--drain`` caps its seconds). When a phase
    ends, its bar stops and shows the seconds it really took.
    """

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.last: SimProgress | None = None
        self.task: TaskID | None = None

    @staticmethod
    def columns() -> tuple[ProgressColumn, ...]:
        return (
            TextColumn("{task.description:<9}"),
            BarColumn(bar_width=BAR_WIDTH),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[nodes]}"),
        )

    def show(self, p: SimProgress) -> None:
        if self.last is None or p.phase != self.last.phase:
            self._end_phase()
            if p.phase == "done":
                self.task = None
            else:
                self.task = self.bar.add_task(p.phase, count="", nodes="")
        self.last = p
        if self.task is not None:
            self.bar.update(self.task, **self._state(p))

    @staticmethod
    def _state(p: SimProgress) -> dict[str, Any]:
        if p.phase == "draining":
            limit = "" if p.phase_limit_s is None else f" of at most {p.phase_limit_s:g}"
            return {
                "total": max(p.sent, 1),
                "completed": p.delivered if p.sent else 1,
                "count": f"{p.delivered}/{p.sent} delivered",
                "nodes": f"{p.phase_s:.0f} s{limit}",
            }
        nodes = f"{p.online} online"
        if p.phase != "forming":
            nodes += f", {p.sent} sent, {p.delivered} delivered"
        if p.phase_limit_s is None:
            return {"total": None, "completed": 0, "count": f"{p.phase_s:.0f} s", "nodes": nodes}
        return {
            "total": p.phase_limit_s,
            "completed": min(p.phase_s, p.phase_limit_s),
            "count": f"{p.phase_s:.0f}/{p.phase_limit_s:g} s",
            "nodes": nodes,
        }

    def _end_phase(self) -> None:
        """Stop the current bar at what its phase really took."""
        if self.task is None or self.last is None:
            return
        p = self.last
        if p.phase != "draining":
            # A phase in seconds ends full, at its true length: a restart
            # after the traffic may take a little longer than planned.
            self.bar.update(
                self.task,
                total=max(p.phase_s, 1e-9),
                completed=p.phase_s,
                count=f"{p.phase_s:.0f} s",
            )
        self.bar.stop_task(self.task)


def sim(args: argparse.Namespace, home: Home, out: TextIO) -> int:
    del home  # a simulation makes its own identities
    options = sim_options(args, store_dir=None)
    if options.clock == "virtual" and getattr(args, "own_process", False):
        _run_again_with_fixed_hash_seed()
    out_dir: Path = args.out or Path(tempfile.mkdtemp(prefix="p2pdm-sim-"))
    if args.store == "sqlite":
        options = dataclasses.replace(options, store_dir=out_dir / "stores")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    console = Console(file=sys.stderr)
    with Progress(*PhaseBars.columns(), console=console, transient=False) as bar:
        show = PhaseBars(bar).show
        virtual = options.clock == "virtual"
        clock = trio.testing.MockClock(autojump_threshold=0) if virtual else None
        try:
            outcome = trio.run(simulate, options, show, clock=clock)
        except BaseExceptionGroup as group:
            # Ctrl-C or a one-line error, however deep in nested nurseries.
            error = first_error(group, (KeyboardInterrupt, P2PDMError))
            if error is group and len(group.exceptions) == 1:
                error = group.exceptions[0]
            raise error from None
    summary, notes = write_report(outcome, out_dir)
    for note in notes:
        print(f"note: {note}", file=out)
    rate = summary["delivery_rate"]
    print(
        f"sent {summary['sent']}, delivered {summary['delivered']}"
        f" ({'-' if rate is None else f'{rate:.2%}'}), duplicates {summary['duplicates']};"
        f" report in {out_dir}/report.md",
        file=out,
    )
    groups = summary.get("groups")
    if groups:
        rate = groups["delivery_rate"]
        print(
            f"group messages {groups['messages']} to {len(groups['groups'])} groups:"
            f" {groups['stored']} of {groups['due']} member copies stored"
            f" ({'-' if rate is None else f'{rate:.2%}'}), second copies {groups['duplicates']},"
            f" copies outside a group {groups['stored_outside_group']}",
            file=out,
        )
    if not invariants_hold(summary):
        raise ConfigError(f"an invariant was broken; see {out_dir}/report.md")
    return 0
