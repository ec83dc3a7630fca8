"""Same seed, same report: virtual-time simulations replay exactly (p2pdm.sim.determinism).

Each run is its own ``trio.run`` from virtual time 0, as ``p2pdm sim`` runs
it: deadlines are floats, and ``start + 0.1 + 0.2`` ties with ``start + 0.3``
or not depending on ``start``, so a run replays another only from the same
virtual start time.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from p2pdm.sim import SimOptions, simulate, summarize
from p2pdm.sim.determinism import (
    MONOTONIC_BASE_SECONDS,
    SIM_EPOCH_MS,
    VirtualTime,
    deterministic,
)
from p2pdm.sim.report import reproducible
from p2pdm.sim.scenario import Outcome, _simulate

#: A small scenario with every kind of fault, quick enough for the fast suite.
SMALL = SimOptions(
    nodes=4,
    duration=12,
    rate=1,
    offline=0.3,
    churn=4,
    latency=0.02,
    loss=0.02,
    partition=(3, 8),
    mailboxes=1,
    clock="virtual",
    seed=2,
    drain=120,
)


class StepTrace(trio.abc.Instrument):
    """Every task step of a run: (virtual time, task name).

    trio's system tasks (``<init>``, ``<TrioToken.run_sync_soon task>``) are
    left out: their first steps come before the simulation seeds the
    scheduler, and they touch nothing of it.
    """

    def __init__(self) -> None:
        self.steps: list[tuple[float, str]] = []

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if not task.name.startswith("<"):
            self.steps.append((trio.current_time(), task.name))


def run(options: SimOptions, *, replay: bool = True) -> tuple[Outcome, list[tuple[float, str]]]:
    """One simulation in its own trio run under the MockClock, and its task steps.

    ``replay=False`` leaves out :func:`deterministic` (trio's scheduler,
    libp2p's clock and randomness as they come).
    """

    async def unpatched(options: SimOptions) -> Outcome:
        return await _simulate(options, None, SIM_EPOCH_MS)

    trace = StepTrace()
    outcome = trio.run(
        simulate if replay else unpatched,
        options,
        clock=trio.testing.MockClock(autojump_threshold=0),
        instruments=[trace],
    )
    return outcome, trace.steps


def rows(outcome: Outcome) -> list[tuple[Any, ...]]:
    """messages.csv's rows."""
    return [
        (r.id, r.sender, r.recipient, r.sent_s, r.delivered_s, r.path, r.copies)
        for r in outcome.recorder.messages.values()
    ]


@pytest.mark.slow
def test_replays_event_for_event() -> None:
    """Two runs with one seed step the same tasks at the same virtual times;
    without :func:`deterministic` the same scenario does not."""
    (a, first), (b, second) = run(SMALL), run(SMALL)
    assert len(first) > 10_000
    assert first == second
    assert rows(a) == rows(b)
    assert reproducible(summarize(a)) == reproducible(summarize(b))
    (_, third), (_, fourth) = run(SMALL, replay=False), run(SMALL, replay=False)
    assert third != fourth


@pytest.mark.slow
def test_same_seed_same_report() -> None:
    options = SimOptions(
        nodes=8,
        duration=60,
        rate=1,
        offline=0.3,
        churn=3,
        latency=0.02,
        partition=(10, 30),
        clock="virtual",
        seed=5,
    )
    (a, _), (b, _) = run(options), run(options)
    first, second = summarize(a), summarize(b)
    assert first["sent"] > 30 and first["plan"]["absences"] > 2
    assert first["delivery_rate"] == 1.0, first["undelivered"]
    assert first["paths"]["mailbox"] > 0 and first["network"]["breaks"] > 0
    assert reproducible(first) == reproducible(second)
    assert rows(a) == rows(b)
    other, _ = run(dataclasses.replace(options, seed=6))
    assert reproducible(summarize(other)) != reproducible(first)


@pytest.mark.slow
def test_tables_from_the_plan_replay_too() -> None:
    options = SimOptions(
        nodes=10,
        duration=15,
        rate=1,
        offline=0.3,
        clock="virtual",
        seed=7,
        link_auth="sim",
        dht_forming="plan",
    )
    (a, _), (b, _) = run(options), run(options)
    first = summarize(a)
    assert first["dht_forming"] == "plan" and first["plan"]["absences"] > 0
    assert reproducible(first) == reproducible(summarize(b))
    assert rows(a) == rows(b)


@pytest.mark.slow
def test_two_processes_same_report(tmp_path: Path) -> None:
    """`p2pdm sim` fixes PYTHONHASHSEED itself: two commands, whatever the
    environment's hash seed, write the same report.json and messages.csv."""
    args = [
        sys.executable,
        "-m",
        "p2pdm",
        "sim",
        "--clock",
        "virtual",
        "--nodes",
        "6",
        "--duration",
        "30",
        "--offline",
        "0.3",
        "--churn",
        "3",
        "--partition",
        "5:15",
        "--latency",
        "0.02",
        "--seed",
        "3",
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    reports = []
    for name, hash_seed in (("a", None), ("b", "123")):
        out = tmp_path / name
        run_env = env if hash_seed is None else {**env, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [*args, "--out", str(out)], env=run_env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        report = json.loads((out / "report.json").read_text())
        reports.append((reproducible(report), (out / "messages.csv").read_text()))
    assert reports[0][0]["sent"] > 10
    assert reports[0] == reports[1]


async def test_patches_hold_only_inside(autojump_clock: trio.abc.Clock) -> None:
    """Inside: libp2p reads the virtual clock, draws refresh keys from the seed,
    picks the first of equally good connections, trio schedules by seed.
    Outside: all as before."""
    # As the patches see them: modules whose attributes are swapped at run time.
    routing_table: Any = importlib.import_module("libp2p.kad_dht.routing_table")
    swarm: Any = importlib.import_module("libp2p.network.swarm")
    import trio._core._run as trio_run

    scheduling = trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    best = swarm.Swarm._best_connection
    draws = []
    for _ in range(2):
        with deterministic(7):
            assert isinstance(swarm.time, VirtualTime)
            start = swarm.time.time()
            assert start == pytest.approx(SIM_EPOCH_MS / 1000)
            await trio.sleep(90)
            assert swarm.time.time() == pytest.approx(start + 90)
            assert swarm.time.monotonic() >= MONOTONIC_BASE_SECONDS + 90
            assert trio_run._ALLOW_DETERMINISTIC_SCHEDULING
            draws.append([routing_table.secrets.randbelow(1 << 160) for _ in range(3)])
            conns = [_Conn(1), _Conn(2), _Conn(2)]
            assert swarm.Swarm._best_connection(None, conns) is conns[1]
    assert draws[0] == draws[1]
    assert swarm.time is time and routing_table.secrets is secrets
    assert swarm.Swarm._best_connection is best
    assert scheduling == trio_run._ALLOW_DETERMINISTIC_SCHEDULING


class _Conn:
    """A connection as libp2p's choice sees it: direct, with some streams."""

    def __init__(self, streams: int) -> None:
        self._streams = [object()] * streams

    def get_connection_type(self) -> Any:
        from libp2p.connection_types import ConnectionType

        return ConnectionType.DIRECT

    def get_streams(self) -> list[object]:
        return self._streams


def test_needs_the_mock_clock() -> None:
    async def enter() -> None:
        with deterministic(1):
            pass

    with pytest.raises(RuntimeError, match="MockClock"):
        trio.run(enter)
