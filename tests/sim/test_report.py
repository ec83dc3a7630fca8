"""`p2pdm sim`'s report and progress: the words match the numbers, the plots are shown.

One small virtual-time run (default links, a burst) serves most tests here.
"""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from rich.console import Console
from rich.progress import Progress as RichProgress

from p2pdm.cli.main import main
from p2pdm.cli.sim import PhaseBars
from p2pdm.errors import ConfigError, PeerUnreachable
from p2pdm.sim import Progress, SimOptions, simulate, summarize, write_report
from p2pdm.sim.metrics import LOOKUP_FAILURES, Tap
from p2pdm.sim.options import (
    DEFAULT_VIRTUAL_JITTER_SECONDS,
    DEFAULT_VIRTUAL_LATENCY_SECONDS,
    Outcome,
)
from p2pdm.sim.plots import NO_MATPLOTLIB
from p2pdm.sim.report import reproducible
from p2pdm.sim.timeline import Burst, Timeline

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OPTIONS = SimOptions(
    nodes=3,
    duration=6,
    rate=1,
    mailboxes=1,
    clock="virtual",
    seed=2,
    drain=120,
    timeline=Timeline(bursts=(Burst(at=3, messages=4),)),
)


@dataclass
class Run:
    outcome: Outcome
    summary: dict[str, Any]
    notes: list[str]
    out: Path
    progress: list[Progress]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    progress: list[Progress] = []
    clock = trio.testing.MockClock(autojump_threshold=0)
    outcome = trio.run(simulate, OPTIONS, progress.append, clock=clock)
    out = tmp_path_factory.mktemp("report")
    summary, notes = write_report(outcome, out)
    return Run(outcome, summary, notes, out, progress)


def test_virtual_default_links_have_latency(run: Run) -> None:
    """No --latency with the virtual clock: every link has the default delay,
    so no delivery takes 0 s, and the report says which links it measured."""
    assert OPTIONS.latency is None
    assert run.summary["links"] == {
        "latency": DEFAULT_VIRTUAL_LATENCY_SECONDS,
        "jitter": DEFAULT_VIRTUAL_JITTER_SECONDS,
        "loss": 0.0,
    }
    latency = run.summary["latency_seconds"]["all"]
    assert latency["count"] == run.summary["delivered"] > 0
    assert latency["p50"] >= DEFAULT_VIRTUAL_LATENCY_SECONDS
    assert min(r.latency_s or 0 for r in run.outcome.recorder.messages.values()) > 0
    report = (run.out / "report.md").read_text()
    assert "Links: 30 ms one way plus 0-20 ms of jitter (the virtual clock's default" in report


def test_lookups_say_why_they_found_nothing(run: Run) -> None:
    lookups = run.summary["dht_lookups"]
    for calls in lookups.values():
        assert sum(calls["not_found"].values()) == calls["count"] - calls["found"]
        assert set(calls["not_found"]) <= set(LOOKUP_FAILURES)
    report = (run.out / "report.md").read_text()
    assert "| call | asked | found | p50 | p95 | max | not found, why |" in report
    assert "secured by Noise, as on TCP" in report


def test_sim_links_are_stated_in_the_report(tmp_path: Path) -> None:
    options = replace(OPTIONS, link_auth="sim")
    outcome = trio.run(simulate, options, clock=trio.testing.MockClock(autojump_threshold=0))
    summary, _ = write_report(outcome, tmp_path)
    assert summary["delivery_rate"] == 1.0 and summary["options"]["link_auth"] == "sim"
    report = (tmp_path / "report.md").read_text()
    assert "authenticated by the memory network itself, not by Noise" in report
    with pytest.raises(ConfigError, match="--link-auth sim is for the memory network"):
        SimOptions(clock="real", link_auth="sim").check()
    with pytest.raises(ConfigError, match="--link-auth is noise or sim"):
        SimOptions(clock="virtual", link_auth="tls").check()


def test_explicit_latency_and_real_clock_keep_their_links() -> None:
    assert SimOptions(clock="virtual", latency=0.02).link_faults().jitter == 0
    assert SimOptions(clock="virtual", latency=0, jitter=0).link_faults().latency == 0
    real = SimOptions(clock="real").link_faults()
    assert (real.latency, real.jitter) == (0, 0)
    assert SimOptions(clock="virtual", jitter=0.01).link_faults().jitter == 0.01


def test_the_stated_count_is_the_count_sent(run: Run) -> None:
    """The sentence about the traffic adds up to the messages sent: Poisson
    arrivals at the rate plus the scripted burst."""
    summary, plan = run.summary, run.summary["plan"]
    assert summary["sent"] == plan["sends"] == plan["sends_at_rate"] + plan["sends_in_bursts"]
    assert plan["sends_in_bursts"] == 4
    assert plan["sends_dropped"] == 0
    report = (run.out / "report.md").read_text()
    assert (
        f"{summary['sent']} messages sent in 6 s of traffic: {plan['sends_at_rate']} at random"
        " times at a mean rate of 1/s (6 expected: Poisson arrivals, so the count varies by"
        " about ±2) plus 4 in 1 scripted burst (4)." in report
    )


def test_report_md_shows_its_plots(run: Run) -> None:
    report = (run.out / "report.md").read_text()
    for name in ("latency_cdf.png", "deliveries.png"):
        assert f"]({name})" in report
        assert (run.out / name).read_bytes().startswith(PNG_MAGIC)
    assert run.notes == []


def test_without_matplotlib_the_report_says_how_to_get_plots(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    _, notes = write_report(run.outcome, tmp_path)
    assert notes == [NO_MATPLOTLIB]
    report = (tmp_path / "report.md").read_text()
    assert "](" not in report and not list(tmp_path.glob("*.png"))
    assert "No plots: matplotlib is not installed" in report
    assert "scripts/simulate` installs it" in report and "p2pdm[sim]" in report


def bars_for(progress: list[Progress]) -> dict[str, Any]:
    """The CLI's phase bars after these progress reports, by phase."""
    bar = RichProgress(*PhaseBars.columns(), console=Console(file=io.StringIO(), width=80))
    bars = PhaseBars(bar)
    for p in progress:
        bars.show(p)
    return {task.description: task for task in bar.tasks}


def test_progress_phases_have_their_own_totals(run: Run) -> None:
    """Traffic counts to --duration, draining to the messages sent (not
    --duration + --drain seconds); a phase's last report is its length."""
    order = list(dict.fromkeys(p.phase for p in run.progress))
    assert order == ["forming", "traffic", "draining", "done"]
    last = {p.phase: p for p in run.progress}
    assert last["traffic"].phase_limit_s == OPTIONS.duration
    assert last["traffic"].phase_s == pytest.approx(OPTIONS.duration)
    assert last["draining"].phase_limit_s == OPTIONS.drain
    assert run.summary["seconds"]["phases"]["traffic"] == pytest.approx(OPTIONS.duration)
    cpu = run.summary["seconds"]["cpu"]
    assert list(cpu) == list(run.summary["seconds"]["phases"])
    assert sum(cpu.values()) > 0

    tasks = bars_for(run.progress)
    assert list(tasks) == ["forming", "traffic", "draining"]
    assert tasks["traffic"].total == tasks["traffic"].completed == pytest.approx(6)
    assert tasks["traffic"].fields["count"] == "6 s"
    assert tasks["draining"].total == run.summary["sent"]
    assert tasks["draining"].completed == run.summary["delivered"]
    assert all(task.total != OPTIONS.duration + OPTIONS.drain for task in tasks.values())


@pytest.mark.slow
async def test_returning_nodes_are_a_phase_of_their_own(autojump_clock: trio.abc.Clock) -> None:
    """Recipients taken away near the end come back after the traffic: the
    traffic bar still ends at --duration, then "returning" counts to the
    plan's last return (the restart takes a moment more)."""
    progress: list[Progress] = []
    options = SimOptions(
        nodes=4, duration=10, rate=1, offline=0.5, mailboxes=1, clock="virtual", seed=2
    )
    outcome = await simulate(options, progress.append)
    order = list(dict.fromkeys(p.phase for p in progress))
    assert order == ["forming", "traffic", "returning", "draining", "done"]
    last = {p.phase: p for p in progress}
    assert last["traffic"].phase_s == pytest.approx(10)
    planned = last["returning"].phase_limit_s
    assert planned is not None and 0 < planned <= last["returning"].phase_s
    assert outcome.phase_s["returning"] == last["returning"].phase_s
    tasks = bars_for(progress)
    assert tasks["traffic"].total == pytest.approx(10)
    assert tasks["returning"].total == pytest.approx(last["returning"].phase_s)


def test_the_command_ends_with_how_to_get_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    argv = ["sim", "--clock", "virtual", "--nodes", "3", "--duration", "4", "--rate", "1"]
    argv += ["--mailboxes", "0", "--store", "memory", "--out", str(tmp_path)]
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == f"note: {NO_MATPLOTLIB}"
    assert lines[-1].startswith("sent ")


@pytest.mark.slow  # a fresh interpreter importing libp2p: ~5 s on a busy machine
def test_importing_the_node_and_cli_loads_no_matplotlib() -> None:
    code = (
        "import sys, p2pdm, p2pdm.cli.main, p2pdm.cli.sim, p2pdm.sim, p2pdm.daemon.runner\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_default_jittery_links_replay_exactly(run: Run) -> None:
    """The default jitter is drawn from the seed: a second run is the same run."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    again = trio.run(simulate, OPTIONS, clock=clock)
    assert reproducible(summarize(again)) == reproducible(run.summary)
    times = [(r.sent_s, r.delivered_s) for r in run.outcome.recorder.messages.values()]
    assert [(r.sent_s, r.delivered_s) for r in again.recorder.messages.values()] == times


@dataclass
class _Node:
    peer_id: str
    online: bool


class _FakeHost:
    """A network that finds nothing and stores nowhere; tests override a call."""

    async def find_peer(self, peer: object, timeout: float) -> list[str]:  # noqa: ASYNC109
        return []

    async def get_record(self, key: str, timeout: float) -> bytes | None:  # noqa: ASYNC109
        return None

    async def put_record(self, key: str, value: bytes) -> int:
        return 0


class _LookupSink:
    """A metrics sink that keeps only what lookups reported."""

    def __init__(self, seen: list[tuple[str, bool, str]]) -> None:
        self.seen = seen

    def stored(self, index: int, message_id: bytes, path: object) -> None: ...
    def refused(self, error: str) -> None: ...
    def looked_up(self, call: str, seconds: float, found: bool, why: str = "") -> None:
        self.seen.append((call, found, why))


async def test_a_find_peer_of_an_offline_node_says_so() -> None:
    """find_peer finds nothing for a node the simulation has stopped: the
    report counts that as *offline*, not as a lookup that failed."""

    class Host(_FakeHost):
        async def find_peer(self, peer: object, timeout: float) -> list[str]:  # noqa: ASYNC109
            raise PeerUnreachable("not found in the DHT", "not found")

    seen: list[tuple[str, bool, str]] = []
    tap = Tap(_LookupSink(seen), trio.current_time)
    host = Host()
    tap.delivery_created(_Node("away", online=False), SimpleNamespace(network=host))  # type: ignore[arg-type]
    tap.delivery_created(_Node("here", online=True), SimpleNamespace(network=Host()))  # type: ignore[arg-type]
    for peer in ("away", "here", "stranger"):
        with pytest.raises(PeerUnreachable):
            await host.find_peer(peer, 1.0)
    assert seen == [
        ("find_peer", False, "offline"),
        ("find_peer", False, "not_found"),
        ("find_peer", False, "not_found"),
    ]


async def test_a_record_lookup_cancelled_by_its_caller_counts_as_cancelled() -> None:
    """A lookup whose caller's scope ends (the node stops, its sender gives up)
    raises its queries' cancellations as a group: *cancelled*, not *error*."""

    class Host(_FakeHost):
        async def get_record(self, key: str, timeout: float) -> bytes | None:  # noqa: ASYNC109
            async with trio.open_nursery() as nursery:  # queries in flight
                nursery.start_soon(trio.sleep_forever)
                nursery.start_soon(trio.sleep_forever)
            return None

    seen: list[tuple[str, bool, str]] = []
    tap = Tap(_LookupSink(seen), trio.current_time)
    host = Host()
    tap.delivery_created(_Node("here", online=True), SimpleNamespace(network=host))  # type: ignore[arg-type]
    with trio.move_on_after(0.01):
        await host.get_record("/p2pdm/x", 1.0)
    assert seen == [("get_record", False, "cancelled")]
