"""`p2pdm sim`: whole nodes in one process, virtual and real time, and the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from p2pdm.cli import main
from p2pdm.core.identity import PeerId
from p2pdm.net import open_host
from p2pdm.net.testing import host_seed
from p2pdm.sim import SimOptions, invariants_hold, open_sim_network, simulate, summarize
from p2pdm.sim.metrics import Recorder


@pytest.mark.slow
async def test_virtual_ten_nodes_offline_and_partition(autojump_clock: trio.abc.Clock) -> None:
    options = SimOptions(
        nodes=10,
        duration=90,
        rate=1,
        offline=0.3,
        latency=0.02,
        partition=(20, 50),
        clock="virtual",
        seed=3,
    )
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["sent"] > 50
    assert summary["sent_while_recipient_offline"] > 0
    assert summary["paths"]["mailbox"] > 0
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert summary["duplicates"] == 0
    assert invariants_hold(summary)
    assert outcome.network_stats["breaks"] > 0  # the partition broke links


@pytest.mark.slow
@pytest.mark.net
async def test_real_clock_loopback_delivers_everything() -> None:
    options = SimOptions(nodes=5, duration=10, rate=2, mailboxes=1, clock="real", drain=30)
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["sent"] > 5
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert summary["duplicates"] == 0
    assert invariants_hold(summary)


@pytest.mark.slow
@pytest.mark.net
async def test_a_simulation_joins_peers_outside_it() -> None:
    """`--bootstrap`: the first node joins through a peer outside the simulation
    (here a plain host; in use, another machine's `p2pdm sim`), so both DHTs
    become one; the report says where others join this one."""
    async with open_host(host_seed(77), ["/ip4/127.0.0.1/tcp/0"]) as outside:
        options = SimOptions(
            nodes=3,
            duration=3,
            rate=1,
            mailboxes=1,
            clock="real",
            drain=20,
            bootstrap=(outside.listen_addrs()[0],),
        )
        outcome = await simulate(options)
        summary = summarize(outcome)
        first = PeerId.parse(outcome.join_addrs[0].rsplit("/p2p/", 1)[1])
        assert first in outside.dht_peers()
        assert summary["join_addrs"] == outcome.join_addrs
        assert summary["delivery_rate"] == 1.0 and invariants_hold(summary)


def test_bootstrap_needs_the_real_clock(capsys: pytest.CaptureFixture[str]) -> None:
    addr = "/ip4/10.0.0.1/tcp/4701/p2p/12D3KooWGjssTSMGSG4tCMJCc5ju1r33TjS8GXjjaNVe3zGHAKcB"
    assert main(["sim", "--clock", "virtual", "--bootstrap", addr]) == 1
    assert "--clock real" in capsys.readouterr().err


def test_cli_sim_writes_reports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(
        ["sim", "--clock", "virtual", "--nodes", "5", "--duration", "30", "--out", str(out)]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["sent"] > 0
    assert report["invariants"]["exactly_once"]
    assert "delivery rate" in (out / "report.md").read_text()
    assert (out / "messages.csv").read_text().count("\n") == report["sent"] + 1


def test_cli_sim_refuses_faults_in_real_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--clock", "real", "--partition", "1:2"]) == 1
    assert "--clock virtual" in capsys.readouterr().err


async def test_sim_network_fixture_sends_between_contacts(autojump_clock: trio.abc.Clock) -> None:
    from p2pdm.net import MemoryNetwork

    recorder = Recorder(clock=trio.current_time)
    async with open_sim_network(4, network=MemoryNetwork(), probe=recorder) as sim:
        a = sim[0]
        b = sim[sim.contacts[0][0]]
        message = a.running.node.send_text(str(b.peer_id), "hello")
        recorder.sent(message.id, a.index, b.index, offline=False)
        with trio.fail_after(30):
            while recorder.delivered < 1:  # noqa: ASYNC110
                await trio.sleep(0.1)
        record = recorder.messages[message.id]
        assert record.path == "direct"
        assert recorder.stored_at[message.id] == {b.index}


@pytest.mark.slow
async def test_fifty_nodes_deliver_everything(autojump_clock: trio.abc.Clock) -> None:
    # The largest size that runs in about 2 minutes here (docs/simulation.md,
    # Scale: 200 nodes take ~10 min of CPU, too long for the test suite).
    options = SimOptions(
        nodes=50, duration=60, rate=1, offline=0.2, latency=0.02, clock="virtual", seed=2
    )
    summary = summarize(await simulate(options))
    assert summary["sent"] > 40 and summary["sent_while_recipient_offline"] > 0
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert invariants_hold(summary)


@pytest.mark.slow
async def test_two_hundred_nodes_deliver_everything(autojump_clock: trio.abc.Clock) -> None:
    # `p2pdm sim --clock virtual --nodes 200 --duration 120` (memory stores):
    # ~8 min of CPU, most of it forming the DHT (docs/simulation.md, Scale).
    options = SimOptions(nodes=200, duration=120, clock="virtual")
    summary = summarize(await simulate(options))
    assert summary["sent"] > 80
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert invariants_hold(summary)
