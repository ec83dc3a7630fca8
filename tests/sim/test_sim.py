"""`p2pdm sim`: whole nodes in one process, virtual and real time, and the command."""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trio

from p2pdm.cli.main import main
from p2pdm.core import records
from p2pdm.core.identity import Identity, PeerId
from p2pdm.errors import ConfigError, PeerUnreachable
from p2pdm.net import Host, open_host
from p2pdm.net.memory_transport import LinkFaults, MemoryNetwork
from p2pdm.net.testing import host_seed
from p2pdm.sim import (
    SimNetwork,
    SimOptions,
    invariants_hold,
    open_sim_network,
    simulate,
    summarize,
)
from p2pdm.sim.metrics import Recorder
from p2pdm.sim.network import serve_sim_nodes, wait_until
from p2pdm.sim.pytest_plugin import SimNetworkFactory
from p2pdm.sim.simnode import make_sim_nodes
from p2pdm.sim.tables import closest_to_key
from p2pdm.sim.timeline import LinkChange, Timeline


def ten_nodes_offline_and_split(**options: Any) -> SimOptions:
    """The issue's scenario: 10 nodes, recipients taken offline, one partition."""
    return SimOptions(nodes=10, rate=1, offline=0.3, **options)


def delivered_exactly_once(summary: dict[str, Any]) -> None:
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert summary["duplicates"] == 0
    assert invariants_hold(summary)


@pytest.mark.slow
async def test_virtual_ten_nodes_offline_and_partition(autojump_clock: trio.abc.Clock) -> None:
    options = ten_nodes_offline_and_split(
        duration=90, latency=0.02, partition=(20, 50), clock="virtual", seed=3
    )
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["sent"] > 50
    assert summary["sent_while_recipient_offline"] > 0
    assert summary["paths"]["mailbox"] > 0
    delivered_exactly_once(summary)
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
    assert summary["outside_peers"] == {"in_routing_tables": 0, "mailbox_providers": 0}


@pytest.mark.slow
@pytest.mark.net
async def test_real_clock_ten_nodes_offline_and_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    """The virtual test above over TCP on loopback: peer filters make the
    partition, TcpFaults the latency. Seed 34 plans an absence that ends at
    26 s (absences last 20-90 s and the traffic phase waits for them), so
    the run stays short."""
    splits: list[tuple[float, list[set[int]]]] = []
    heals: list[float] = []
    partition, heal = SimNetwork.partition, SimNetwork.heal

    def spy_partition(sim: SimNetwork, groups: Sequence[Collection[int]]) -> None:
        splits.append((trio.current_time(), [set(group) for group in groups]))
        partition(sim, groups)

    def spy_heal(sim: SimNetwork) -> None:
        heals.append(trio.current_time())
        heal(sim)

    monkeypatch.setattr(SimNetwork, "partition", spy_partition)
    monkeypatch.setattr(SimNetwork, "heal", spy_heal)
    options = ten_nodes_offline_and_split(
        duration=20, latency=0.02, partition=(4, 12), clock="real", seed=34, drain=90
    )
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["sent"] > 10
    assert summary["sent_while_recipient_offline"] > 0
    assert summary["plan"]["partitions"] == 1
    assert outcome.network_stats["dials"] > 0  # over the faulty transport
    delivered_exactly_once(summary)
    # The split held: what crossed it while it lasted arrived only after the heal.
    [(split_at, groups)] = splits
    heal_at = heals[0]
    t0 = trio.current_time() - outcome.recorder.clock()
    side = {index: n for n, group in enumerate(groups) for index in group}
    crossed = [
        record
        for record in outcome.recorder.messages.values()
        if split_at < t0 + record.sent_s < heal_at and side[record.sender] != side[record.recipient]
    ]
    assert crossed
    for record in crossed:
        assert record.delivered_s is not None and t0 + record.delivered_s >= heal_at


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
        # The one peer outside, seen from inside: the DHTs are one.
        assert summary["outside_peers"]["in_routing_tables"] == 1


def test_bootstrap_needs_the_real_clock(capsys: pytest.CaptureFixture[str]) -> None:
    addr = "/ip4/10.0.0.1/tcp/4701/p2p/12D3KooWGjssTSMGSG4tCMJCc5ju1r33TjS8GXjjaNVe3zGHAKcB"
    assert main(["sim", "--clock", "virtual", "--bootstrap", addr]) == 1
    assert "--clock real" in capsys.readouterr().err


def test_listen_needs_the_real_clock_and_a_tcp_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = ["--out", str(tmp_path)]
    assert main(["sim", "--clock", "virtual", "--listen", "/ip4/0.0.0.0/tcp/0", *out]) == 1
    assert "--clock real" in capsys.readouterr().err
    assert main(["sim", "--clock", "real", "--listen", "0.0.0.0:4001", *out]) == 1
    err = capsys.readouterr().err
    assert "--listen: a listen address is /ip4/ADDR/tcp/PORT" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["sim", "--nodes", "10", "--listen", "/ip4/0.0.0.0/tcp/65530", *out]) == 1
    assert "ports 65530 to 65539 pass 65535" in capsys.readouterr().err


def test_joining_a_simulation_with_the_same_seed_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Same seed, same identities: every node would meet its twin."""
    node0 = Identity(random.Random(4).randbytes(32)).peer_id  # node 0 of seed 4
    addr = f"/ip4/10.0.0.1/tcp/4701/p2p/{node0}"
    assert main(["sim", "--seed", "4", "--bootstrap", addr, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "same --seed" in err and len(err.strip().splitlines()) == 1


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
    assert report["dht_forming"] == "join"  # 5 nodes: real joins by default
    assert "DHT forming" not in (out / "report.md").read_text()


def test_cli_sim_forms_routing_tables_from_the_plan_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["sim", "--clock", "virtual", "--nodes", "6", "--duration", "10", "--out", str(out)]
    assert main([*argv, "--dht-forming", "plan", "--link-auth", "sim"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["dht_forming"] == "plan" and report["options"]["dht_forming"] == "plan"
    assert report["record_forming"] == "plan"  # auto: with the tables
    assert report["delivery_rate"] == 1.0 and invariants_hold(report)
    text = (out / "report.md").read_text()
    assert "DHT forming: each node's join put in its routing table" in text
    assert "every other lookup" in text
    assert "First records: once the network had formed" in text
    assert main([*argv, "--dht-forming", "plan", "--record-forming", "put"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["record_forming"] == "put" and report["delivery_rate"] == 1.0
    assert "First records" not in (out / "report.md").read_text()


@pytest.mark.slow
@pytest.mark.net
def test_cli_sim_splits_and_slows_the_network_in_real_time(tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["sim", "--clock", "real", "--nodes", "4", "--duration", "4", "--rate", "2"]
    argv += ["--partition", "1:3", "--latency", "0.01", "--loss", "0.01"]
    argv += ["--mailboxes", "1", "--drain", "30", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["plan"]["partitions"] == 1
    assert report["delivered"] == report["sent"] > 0


@pytest.mark.slow
@pytest.mark.net
async def test_real_clock_link_changes_apply_to_tcp() -> None:
    """Latency and loss over TCP, and a [[link]] change midway, as in virtual time."""
    change = LinkChange(at=4, loss=0.05, latency=0.03)
    options = SimOptions(nodes=4, duration=8, rate=2, mailboxes=1, latency=0.01, clock="real")
    options = replace(options, drain=40, seed=1, timeline=Timeline(links=(change,)))
    outcome = await simulate(options)
    summary = summarize(outcome)
    assert summary["plan"]["link_changes"] == 1
    delivered_exactly_once(summary)
    stats = outcome.network_stats
    assert stats["dials"] > 0 and stats["accepted"] > 0
    assert stats["lost"] > 0  # only the change brought loss


@pytest.mark.net
async def test_tcp_partition_holds_for_a_node_restarted_during_it() -> None:
    async with open_sim_network(4, mailboxes=1) as sim:
        sim.partition([[0, 1]])  # 2 and 3 are in no group: one more group
        await sim.stop(sim[3])
        await sim.start(sim[3])  # joins through node 0, across the split
        host = sim[3].running.host
        with pytest.raises(PeerUnreachable):
            await host.connect(sim[0].peer_id, sim[0].running.host.listen_addrs())
        await host.connect(sim[2].peer_id, sim[2].running.host.listen_addrs())
        assert not host.is_connected(sim[0].peer_id)
        sim.heal()
        await host.connect(sim[0].peer_id, sim[0].running.host.listen_addrs())


async def test_sim_network_fixture_sends_between_contacts(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    recorder = Recorder(clock=trio.current_time)
    async with sim_network(4, contacts=4, probe=recorder) as sim:
        a = sim[0]
        b = sim[sim.contacts[0][0]]
        # Queued and recorded with no checkpoint between: it cannot arrive unrecorded.
        message = a.running.node.send_text(b.peer_id, "hello")
        recorder.sent(message.id, a.index, b.index, offline=False)
        await wait_until(lambda: recorder.delivered >= 1, 30)
        record = recorder.messages[message.id]
        assert record.path == "direct"
        assert recorder.stored_at[message.id] == {b.index}


async def test_a_spread_start_forms_once_every_node_has_joined(
    autojump_clock: trio.abc.Clock,
) -> None:
    network = MemoryNetwork(LinkFaults(latency=0.03), seed=3, link_auth="sim")
    start = trio.current_time()
    async with open_sim_network(4, seed=3, network=network, mailboxes=1, spread_start=True) as sim:
        formed = trio.current_time() - start
        hosts = [sim_node.running.host for sim_node in sim.nodes]
        assert all(host.joined.is_set() for host in hosts)
        assert all(sim_node.publications > 0 for sim_node in sim.nodes)
        # The fixed nodes (bootstrap, mailbox) joined at once, the others
        # within 4 times START_WINDOW_SECONDS_PER_NODE, so forming took a while.
        assert formed > 1.0
        assert sim.start_window == 0.0  # a restart comes up alone
        await sim.stop(sim[3])
        await sim.start(sim[3])
        assert sim[3].running.host.joined.is_set()  # joined before start returned
        message = await sim.send(1, 2, "hello")
        await sim.wait_delivered(1, message)


async def test_the_traffic_waits_for_a_record_no_peer_took_to_be_put_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A first publication that reached no peer (here node 3 is cut off while it
    puts; on a busy machine, queries past their deadline) has ended, but the
    network is not formed until the node's retry has put the record where
    lookups look."""
    network = MemoryNetwork(LinkFaults(latency=0.03), seed=5, link_auth="sim")
    nodes = make_sim_nodes(4, random.Random(5), store_dir=None, mailboxes=1)
    async with serve_sim_nodes(nodes, network=network, publish_after_forming=True) as sim:
        for sim_node in nodes:
            await sim.start(sim_node)
        sim.partition([[3]])
        formed = trio.Event()

        async def publish() -> None:
            await sim.publish_records()
            formed.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            await wait_until(lambda: sim[3].publications > 0, 60)
            assert not sim[3].published and not formed.is_set()
            sim.heal()
        assert sim[3].published and all(n.published for n in nodes)
        key = records.record_key(sim[3].peer_id)
        assert await sim[1].running.host.get_record(key, 10) is not None


async def test_planned_tables_seed_the_joins_from_the_plan(
    autojump_clock: trio.abc.Clock,
) -> None:
    network = MemoryNetwork(LinkFaults(latency=0.03), seed=4, link_auth="sim")
    async with open_sim_network(
        8, seed=4, network=network, mailboxes=1, spread_start=True, planned_tables=True
    ) as sim:
        everyone = {sim_node.peer_id for sim_node in sim.nodes}
        for sim_node in sim.nodes:
            # Fewer nodes than CLOSEST: every table holds every other node,
            # the fixed nodes' too (seeded once the others had joined).
            host = sim_node.running.host
            assert host.table_seed is None or not sim_node.fixed
            assert set(host.dht_peers()) == everyone - {sim_node.peer_id}
        # The joins dialled their bootstrap node and looked nobody up: besides
        # the contacts' invites and record publications, few dials.
        await sim.stop(sim[5])
        await sim.start(sim[5])  # a restart joins with a real lookup
        assert sim[5].running.host.table_seed is None
        message = await sim.send(4, 6, "hello")
        await sim.wait_delivered(4, message)


async def test_first_records_are_placed_where_their_puts_would_end(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--record-forming plan: no first record goes over the network; each is
    held by its owner and the RECORD_LOOKUP_CLOSEST (20) nodes closest to its
    key, and found by a real lookup; a restarted node puts its record again."""
    puts: list[str] = []
    put_record = Host.put_record

    async def counted(self: Host, key: str, value: bytes) -> int:
        puts.append(key)
        return await put_record(self, key, value)

    monkeypatch.setattr(Host, "put_record", counted)
    network = MemoryNetwork(LinkFaults(latency=0.03), seed=4, link_auth="sim")
    async with open_sim_network(
        24,
        seed=4,
        network=network,
        mailboxes=1,
        spread_start=True,
        planned_tables=True,
        planned_records=True,
    ) as sim:
        assert puts == []
        servers = [(n.peer_id, n.running.host) for n in sim.nodes]
        for sim_node in sim.nodes:
            key = records.record_key(sim_node.peer_id)
            others = [entry for entry in servers if entry[0] != sim_node.peer_id]
            expected = {peer for peer, _ in closest_to_key(key.encode(), others, 20)}
            holding = {peer for peer, host in servers if host.holds_record(key)}
            assert holding == expected | {sim_node.peer_id}
            assert sim_node.published
        key = records.record_key(sim[9].peer_id)
        assert await sim[4].running.host.get_record(key, 10, keep=False) is not None
        await sim.stop(sim[5])
        await sim.start(sim[5])
        await wait_until(lambda: sim[5].publications > 0, 30)
        assert puts == [records.record_key(sim[5].peer_id)]


@pytest.mark.slow
@pytest.mark.net
async def test_real_clock_planned_tables_join_once_every_node_listens() -> None:
    """Real clock, tables from the plan: the joins wait until every node
    listens, then each table holds the plan's peers (here every other node)."""
    async with open_sim_network(8, seed=5, mailboxes=1, planned_tables=True) as sim:
        assert set(sim.forming_steps) == {"started", "joined", "published"}
        everyone = {sim_node.peer_id for sim_node in sim.nodes}
        for sim_node in sim.nodes:
            host = sim_node.running.host
            assert host.joined.is_set() and host.table_seed is not None
            assert set(host.dht_peers()) == everyone - {sim_node.peer_id}
            assert sim_node.publications > 0  # published once formed
        await sim.stop(sim[5])
        await sim.start(sim[5])  # a restart joins with a real lookup, at once
        assert sim[5].running.host.table_seed is None
        assert sim[5].running.host.joined.is_set()
        message = await sim.send(4, 6, "hello")
        await sim.wait_delivered(4, message)


def test_the_dht_forming_option_resolves_by_size_and_clock() -> None:
    assert not SimOptions(nodes=200, clock="virtual").planned_tables()
    assert SimOptions(nodes=300, clock="virtual").planned_tables()
    assert not SimOptions(nodes=300, clock="virtual", dht_forming="join").planned_tables()
    assert SimOptions(nodes=10, clock="virtual", dht_forming="plan").planned_tables()
    # The real clock plans too (every node listens first, then joins).
    assert SimOptions(nodes=300, clock="real", workers=2).planned_tables()
    assert not SimOptions(nodes=200, clock="real", workers=2).planned_tables()
    SimOptions(nodes=10, clock="real", dht_forming="plan").check()
    # The plan knows only this simulation's nodes: never with outside peers.
    outside = ("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWGRUVh7X5wY1u6ZuWaeHs3D1MPs8uGgRSb7X1vVkWMdHt",)
    assert not SimOptions(nodes=300, clock="real", bootstrap=outside).planned_tables()
    with pytest.raises(ConfigError, match="dht-forming plan"):
        SimOptions(nodes=10, clock="real", dht_forming="plan", bootstrap=outside).check()


def test_the_record_forming_option_follows_the_tables_with_the_virtual_clock() -> None:
    assert SimOptions(nodes=300, clock="virtual").planned_records()
    assert not SimOptions(nodes=200, clock="virtual").planned_records()
    assert SimOptions(nodes=10, clock="virtual", record_forming="plan").planned_records()
    assert not SimOptions(nodes=300, clock="virtual", record_forming="put").planned_records()
    # Real-clock nodes put their records over TCP, whatever the tables.
    assert not SimOptions(nodes=300, clock="real", workers=2).planned_records()
    with pytest.raises(ConfigError, match="record-forming plan"):
        SimOptions(nodes=10, clock="real", record_forming="plan").check()


#: The scale goal's memory bound for 1,000 nodes (8 GiB; they use ~1.1 GB).
SCALE_GOAL_MB = 8 * 1024


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
    published_records_found(summary)


@pytest.mark.slow
async def test_two_hundred_nodes_deliver_everything(autojump_clock: trio.abc.Clock) -> None:
    # `p2pdm sim --clock virtual --nodes 200 --duration 120 --link-auth sim`
    # (memory stores): most of its CPU forms the DHT (docs/simulation.md,
    # Scale). Links are authenticated by the memory network, not Noise, to
    # keep it within the suite's budget; the fifty-node test runs Noise.
    options = SimOptions(nodes=200, duration=120, clock="virtual", link_auth="sim")
    summary = summarize(await simulate(options))
    assert summary["sent"] > 80
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert invariants_hold(summary)
    published_records_found(summary)


@pytest.mark.slow
async def test_a_thousand_nodes_deliver_everything(autojump_clock: trio.abc.Clock) -> None:
    # The scale goal's scenario (docs/simulation.md, "The issue's run at 1,000
    # nodes within the goal"; ~7 min of one core): routing tables and first
    # records from the plan, every later lookup, put and message over the
    # memory network. Its wall time is measured by scripts/sim_scale.
    options = SimOptions(
        nodes=1000,
        duration=60,
        rate=5,
        offline=0.2,
        seed=11,
        clock="virtual",
        link_auth="sim",
    )
    summary = summarize(await simulate(options))
    assert summary["dht_forming"] == summary["record_forming"] == "plan"
    assert summary["sent"] > 250 and summary["plan"]["absences"] > 20
    assert summary["delivery_rate"] == 1.0, summary["undelivered"]
    assert invariants_hold(summary)
    published_records_found(summary)
    assert summary["memory_mb"]["end"] < SCALE_GOAL_MB


def published_records_found(summary: dict[str, Any]) -> None:
    """At least 99 % of the nodes' lookups of published records found them, of
    those the node lived through (docs/simulation.md, "DHT records at scale")."""
    lookups = summary["dht_lookups"]["get_record"]
    why = lookups["not_found"]
    published = lookups["count"] - why.get("not_published", 0) - why.get("cancelled", 0)
    assert lookups["found"] >= 0.99 * published, lookups
