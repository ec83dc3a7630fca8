"""The ``sim_network`` pytest fixture (p2pdm.sim.pytest_plugin) and SimNetwork's test helpers."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from p2pdm.core.model import DeliveryStatus, Direction
from p2pdm.sim.network import wait_until
from p2pdm.sim.pytest_plugin import MAX_TEST_NODES, SimNetworkFactory

DOCS = Path(__file__).resolve().parents[2] / "docs" / "simulation.md"


async def test_nodes_run_with_contacts_and_deliver(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(4) as net:
        assert len(net) == 4 and all(n.online for n in net.nodes)
        assert [n.offers_mailbox for n in net.nodes] == [True, False, False, False]
        for sim_node in net.nodes:  # contacts="all": everyone knows everyone
            others = {o.peer_id for o in net.nodes if o is not sim_node}
            assert {c.peer_id for c in sim_node.running.node.contacts()} == others
            assert sorted(net.contacts[sim_node.index]) == sorted(
                o.index for o in net.nodes if o is not sim_node
            )
        sent = await net.send(1, 3, "hello")
        assert sent.status is DeliveryStatus.QUEUED
        delivered = await net.wait_delivered(1, sent)
        assert delivered.id == sent.id and delivered.status is DeliveryStatus.DELIVERED
        got = await net.wait_received(3, sent)
        assert got.direction is Direction.IN and got.peer == net[1].peer_id
        assert net[3].running.node.messages(net[1].peer_id).messages[0].id == sent.id
        # Virtual wall clock: message times follow trio's clock, not the machine's.
        assert got.sent_at_ms <= net[3].running.node.now_ms()


async def test_contacts_as_pairs_or_none(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(3, contacts=[(0, 2)], mailboxes=0) as net:
        assert net.contacts == {0: [2], 1: [], 2: [0]}
        assert not net[1].running.node.contacts()
        assert not any(n.offers_mailbox for n in net.nodes)
    async with sim_network(3, contacts=0) as net:
        assert all(not n.running.node.contacts() for n in net.nodes)
        # A PeerID is enough: the bundle comes from the DHT, once published
        # (the record publisher runs as the node starts serving).
        await wait_until(lambda: net[2].running.host.dht_store_stats().records > 0)
        sent = await net.send(1, 2, "found you")
        await net.wait_delivered(1, sent)


async def test_stop_and_start_keep_the_store(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(3, store="sqlite") as net:
        first = await net.send(1, 2, "before")
        await net.wait_received(2, first)
        old_node, store = net[2].running.node, net[2].store
        await net.stop(net[2])
        assert not net[2].online
        with pytest.raises(RuntimeError, match="not running"):
            net[2].running  # noqa: B018
        second = await net.send(1, 2, "while away")
        await net.wait_status(1, second, "deposited")  # held by node 0's mailbox
        await net.start(net[2])
        assert net[2].online and net[2].starts == 2
        assert net[2].running.node is not old_node and net[2].running.node.store is store
        await net.wait_received(2, second)
        await net.wait_delivered(1, second)
        ids = [m.id for m in net[2].running.node.messages(net[1].peer_id).messages]
        assert sorted(ids) == sorted([first.id, second.id])  # the first one was kept


async def test_sqlite_stores_go_under_the_tests_tmp_path(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock, request: pytest.FixtureRequest
) -> None:
    async with sim_network(2, store="sqlite"), sim_network(2, store="sqlite"):
        tmp_path = request.getfixturevalue("tmp_path")  # the one the fixture used
        files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.db"))
    assert files == ["sim1/node0000.db", "sim1/node0001.db", "sim2/node0000.db", "sim2/node0001.db"]


async def test_a_wait_that_times_out_says_what_it_saw(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    async with sim_network(2) as net:
        await net.stop(net[1])
        sent = await net.send(0, 1, "nobody home")
        with pytest.raises(trio.TooSlowError, match=r"from node 0 is \w+, not delivered"):
            await net.wait_delivered(0, sent, timeout=5)
        with pytest.raises(trio.TooSlowError, match="node 1 has not received"):
            await net.wait_received(1, sent, timeout=1)
    with pytest.raises(trio.TooSlowError, match="not done after 1"):
        await wait_until(lambda: False, 1)


async def refused(sim_network: SimNetworkFactory, clock: str, message: str) -> None:
    """Entering a network with this clock fails at once, saying ``message``."""
    with pytest.raises(pytest.UsageError, match=message):
        async with sim_network(2, clock=clock):  # type: ignore[arg-type]
            pass


async def test_virtual_time_without_a_mock_clock_is_refused(
    sim_network: SimNetworkFactory,
) -> None:
    await refused(sim_network, "virtual", "add the autojump_clock fixture")


async def test_virtual_time_with_a_clock_that_never_jumps_is_refused(
    sim_network: SimNetworkFactory, mock_clock: trio.abc.Clock
) -> None:
    await refused(sim_network, "virtual", "not mock_clock")


async def test_real_sockets_under_a_mock_clock_are_refused(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    await refused(sim_network, "real", "drop autojump_clock")


def test_entering_outside_trio_is_refused(sim_network: SimNetworkFactory) -> None:
    async def enter() -> None:
        async with sim_network(2):
            pass

    coroutine = enter()
    with pytest.raises(pytest.UsageError, match="inside a trio test"):
        coroutine.send(None)
    coroutine.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 1}, "count must be 2"),
        ({"count": MAX_TEST_NODES + 1}, "count must be 2"),
        ({"clock": "wall"}, "clock must be"),
        ({"store": "disk"}, "store must be"),
        ({"mailboxes": 4}, "mailboxes must be"),
        ({"clock": "real", "latency": 0.1}, "need clock='virtual'"),
        ({"loss": 1.0}, "loss in"),
        ({"contacts": -1}, "contacts must be >= 0"),
        ({"contacts": [(0, 0)]}, "two different node indices"),
        ({"contacts": [(0, 3)]}, "two different node indices"),
        ({"count": 21}, "contacts='all' is for up to 20"),
    ],
)
def test_bad_options_are_refused_at_once(
    sim_network: SimNetworkFactory, kwargs: dict[str, object], message: str
) -> None:
    options = {"count": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        sim_network(**options)  # type: ignore[arg-type]


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.net
async def test_real_clock_delivers_and_leaves_no_socket_open(
    sim_network: SimNetworkFactory,
) -> None:
    before = _fds()
    async with sim_network(3, clock="real", contacts=[(0, 1)]) as net:
        assert all(addr.startswith("/ip4/127.0.0.1/tcp/") for addr in net[0].running.node.addrs)
        assert len(_fds() - before) >= 3  # each node listens
        sent = await net.send(0, 1, "over tcp")
        await net.wait_delivered(0, sent, timeout=30)
    gc.collect()  # an unclosed socket would warn here, and warnings are errors
    assert _fds() - before == set()


async def test_virtual_network_opens_no_socket(
    sim_network: SimNetworkFactory, autojump_clock: trio.abc.Clock
) -> None:
    before = _fds()
    async with sim_network(3) as net:
        await net.wait_delivered(0, await net.send(0, 2, "x"))
        assert _fds() - before == set()
    gc.collect()


def test_the_plugin_imports_neither_trio_nor_libp2p() -> None:
    """pytest loads the plugin in every project that installs p2pdm: it must cost
    nothing there until a test enters a network."""
    code = (
        "import sys, p2pdm.sim.pytest_plugin; "
        "heavy = ('trio', 'libp2p', 'p2pdm.sim.network', 'p2pdm.net'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def _docs_example() -> str:
    text = DOCS.read_text()
    section = text.split("### Tests use the same machinery", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/simulation.md: no python example under 'Tests use the same machinery'"
    return match.group(1)


def test_the_docs_example_passes_in_another_project(tmp_path: Path) -> None:
    """The guide's example, run by pytest in a bare directory: the fixture comes
    from the installed entry point, with warnings as errors."""
    (tmp_path / "test_example.py").write_text(_docs_example())
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[1-9]\d* passed", result.stdout), result.stdout
