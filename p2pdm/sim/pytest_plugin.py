"""pytest plugin: the ``sim_network`` fixture, N running p2pdm nodes for a test.

Installed with p2pdm (entry point ``pytest11``), so any project's tests can
ask for it; tests that do not are untouched: importing this module imports
neither trio nor libp2p, and it adds one fixture and nothing else.

::

    async def test_hello(sim_network, autojump_clock):
        async with sim_network(3) as net:          # virtual time, everyone a contact
            sent = await net.send(0, 2, "hello")
            await net.wait_delivered(0, sent)

How this works: the fixture hands the test a factory; each call opens
:func:`p2pdm.sim.network.open_sim_network` (whole nodes: host, DHT records,
delivery, mailboxes) when the test enters it and stops every node and
closes every socket when it leaves. ``clock="virtual"`` (the default) runs
the nodes over an in-memory network under the test's
``trio.testing.MockClock`` (pytest-trio's ``autojump_clock`` fixture), so
timeouts, retries and latency cost no wall time; ``clock="real"`` runs them
over TCP on 127.0.0.1. Either misuse — virtual time without a jumping
MockClock, real sockets under one — is refused with one line saying what to
change. The tests run under trio: pytest-trio's ``trio_mode`` or
``@pytest.mark.trio``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import pytest

if TYPE_CHECKING:
    from p2pdm.net.upkeep import Upkeep
    from p2pdm.sim.network import Probe, SimNetwork

__all__ = ["SimNetworkFactory", "sim_network"]

#: ``contacts=`` value: every node a contact of every other.
ALL: Final = "all"
#: Largest network the fixture opens: each node is a whole libp2p host, and
#: 50 of them take about a minute of CPU to form (docs/simulation.md, Scale);
#: larger runs belong in ``p2pdm sim``, not in a unit test.
MAX_TEST_NODES: Final = 50
#: Largest network for ``contacts="all"``: invites are exchanged pairwise.
MAX_ALL_CONTACTS_NODES: Final = 20

Contacts = int | Literal["all"] | Iterable[tuple[int, int]]


class SimNetworkFactory:
    """What the ``sim_network`` fixture gives a test: call it to open a network."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self._opened = 0

    def __call__(
        self,
        count: int = 3,
        *,
        clock: Literal["virtual", "real"] = "virtual",
        contacts: Contacts = ALL,
        mailboxes: int = 1,
        seed: int = 0,
        store: Literal["memory", "sqlite"] = "memory",
        latency: float = 0.0,
        loss: float = 0.0,
        upkeep: Upkeep | None = None,
        probe: Probe | None = None,
    ) -> AbstractAsyncContextManager[SimNetwork]:
        """``async with`` it for ``count`` running nodes; leaving stops them all.

        ``clock``: ``"virtual"`` (memory network; the test takes
        ``autojump_clock``) or ``"real"`` (TCP on loopback; no MockClock).
        ``contacts``: ``"all"``, a number of random contacts per node
        (mutual, from ``seed``), or pairs of node indices. ``mailboxes``:
        how many nodes (the first ones) offer the mailbox service.
        ``store``: ``"sqlite"`` keeps each node's store in a file under the
        test's ``tmp_path``. ``latency``, ``loss``: per link, virtual only.
        ``upkeep``: the hosts' connection upkeep (default: the simulation's).
        ``probe``: sees each node and delivery service first (e.g. the
        simulation's ``p2pdm.sim.metrics.Recorder``). Raises ValueError for
        bad values.
        """
        pairs = _check(count, clock, contacts, mailboxes, store, latency, loss)
        store_dir = None
        if store == "sqlite":
            self._opened += 1
            store_dir = self._store_root() / f"sim{self._opened}"
        return _open(
            count,
            clock=clock,
            pairs=pairs,
            random_contacts=contacts if isinstance(contacts, int) else 0,
            mailboxes=mailboxes,
            seed=seed,
            store_dir=store_dir,
            latency=latency,
            loss=loss,
            upkeep=upkeep,
            probe=probe,
        )

    def _store_root(self) -> Path:
        tmp_path: Path = self._request.getfixturevalue("tmp_path")  # made only when needed
        return tmp_path


def _check(
    count: int,
    clock: str,
    contacts: Contacts,
    mailboxes: int,
    store: str,
    latency: float,
    loss: float,
) -> list[tuple[int, int]] | None:
    """The contact pairs to make (None: every pair; [] for none or random); raises ValueError."""
    if not 2 <= count <= MAX_TEST_NODES:
        raise ValueError(f"sim_network: count must be 2..{MAX_TEST_NODES}, not {count}")
    if clock not in ("virtual", "real"):
        raise ValueError(f"sim_network: clock must be 'virtual' or 'real', not {clock!r}")
    if store not in ("memory", "sqlite"):
        raise ValueError(f"sim_network: store must be 'memory' or 'sqlite', not {store!r}")
    if not 0 <= mailboxes <= count:
        raise ValueError(f"sim_network: mailboxes must be 0..{count}, not {mailboxes}")
    if clock == "real" and (latency or loss):
        raise ValueError("sim_network: latency and loss need clock='virtual' (memory network)")
    if latency < 0 or not 0 <= loss < 1:
        raise ValueError("sim_network: latency must be >= 0 and loss in [0, 1)")
    if contacts == ALL:
        if count > MAX_ALL_CONTACTS_NODES:
            raise ValueError(
                f"sim_network: contacts='all' is for up to {MAX_ALL_CONTACTS_NODES} nodes; "
                "give a number of random contacts per node"
            )
        return None
    if isinstance(contacts, (bool, str)):
        raise ValueError(
            f"sim_network: contacts must be 'all', a number or pairs, not {contacts!r}"
        )
    if isinstance(contacts, int):
        if contacts < 0:
            raise ValueError(f"sim_network: contacts must be >= 0, not {contacts}")
        return []
    pairs = [tuple(pair) for pair in contacts]
    for pair in pairs:
        if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= i < count for i in pair):
            raise ValueError(
                f"sim_network: contact pair {pair!r} must be two different node indices "
                f"0..{count - 1}"
            )
    return [(a, b) for a, b in pairs]


def _check_clock(clock: str) -> None:
    """Refuses a clock that cannot work for ``clock``; raises pytest.UsageError."""
    import trio
    import trio.testing

    try:
        current = trio.lowlevel.current_clock()
    except RuntimeError:
        raise pytest.UsageError(
            "sim_network must be entered inside a trio test: use pytest-trio "
            "(trio_mode = true, or @pytest.mark.trio)"
        ) from None
    mock = isinstance(current, trio.testing.MockClock)
    if clock == "virtual" and not mock:
        raise pytest.UsageError(
            "sim_network(clock='virtual') needs trio's MockClock: add the autojump_clock "
            "fixture to the test function's arguments (pytest-trio only uses a clock the "
            "test itself takes), or use clock='real'"
        )
    if clock == "virtual" and current.autojump_threshold == float("inf"):  # type: ignore[attr-defined]
        raise pytest.UsageError(
            "sim_network(clock='virtual') needs a MockClock that jumps by itself: take "
            "autojump_clock, not mock_clock"
        )
    if clock == "real" and mock:
        raise pytest.UsageError(
            "sim_network(clock='real') uses TCP sockets, and under a MockClock every "
            "timeout fires while they wait: drop autojump_clock/mock_clock, or use "
            "clock='virtual'"
        )


@asynccontextmanager
async def _open(
    count: int,
    *,
    clock: str,
    pairs: list[tuple[int, int]] | None,
    random_contacts: int,
    mailboxes: int,
    seed: int,
    store_dir: Path | None,
    latency: float,
    loss: float,
    upkeep: Upkeep | None,
    probe: Probe | None,
) -> AsyncIterator[SimNetwork]:
    _check_clock(clock)
    from p2pdm.net import LinkFaults, MemoryNetwork
    from p2pdm.node.messenger import wall_ms
    from p2pdm.sim.network import SIM_UPKEEP, open_sim_network, virtual_wall_ms

    virtual = clock == "virtual"
    network = MemoryNetwork(LinkFaults(latency=latency, loss=loss), seed=seed) if virtual else None
    async with open_sim_network(
        count,
        seed=seed,
        network=network,
        store_dir=store_dir,
        mailboxes=mailboxes,
        contacts=random_contacts,
        upkeep=upkeep or SIM_UPKEEP,
        now_ms=virtual_wall_ms() if virtual else wall_ms,
        probe=probe,
    ) as net:
        everyone = [(a, b) for a in range(count) for b in range(a + 1, count)]
        for a, b in everyone if pairs is None else pairs:
            net.befriend(a, b)
        yield net


@pytest.fixture
def sim_network(request: pytest.FixtureRequest) -> SimNetworkFactory:
    """Opens running p2pdm networks: ``async with sim_network(5) as net:``.

    See :class:`SimNetworkFactory` for the options and docs/simulation.md
    ("Tests use the same machinery") for a guide.
    """
    return SimNetworkFactory(request=request)
