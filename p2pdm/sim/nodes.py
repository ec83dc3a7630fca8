"""What a simulation run drives: nodes by index, in this process or in workers.

How this works: :class:`Nodes` is everything :func:`p2pdm.sim.simulate`'s
plan executor and its final collection need — start, stop, send, split,
heal, collect. :class:`LocalNodes` gives it over a
:class:`~p2pdm.sim.network.SimNetwork` in this process (``--workers 1``,
and always with ``--clock virtual``); :class:`p2pdm.sim.remote.RemoteNodes`
gives it over worker processes, each running its share of the nodes through
a SimNetwork of its own.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from p2pdm.errors import WireError
from p2pdm.net import LinkFaults, MemoryNetwork
from p2pdm.sim.network import SimNetwork
from p2pdm.sim.simnode import Collected
from p2pdm.sim.timeline import LinkChange

__all__ = [
    "LocalNodes",
    "Nodes",
    "changed_links",
    "first_error",
    "link_args",
    "link_faults",
    "rss_mb",
]

#: Link faults cross the worker pipe as integers (it carries no floats).
MICROS: Final = 1_000_000


def link_args(faults: LinkFaults) -> dict[str, int]:
    """``faults`` for the worker pipe: microseconds and parts per million."""
    return {
        "latency_us": round(faults.latency * MICROS),
        "jitter_us": round(faults.jitter * MICROS),
        "loss_ppm": round(faults.loss * MICROS),
    }


def link_faults(args: dict[str, Any]) -> LinkFaults:
    """The inverse of :func:`link_args`; raises WireError for impossible values."""
    try:
        return LinkFaults(
            latency=args["latency_us"] / MICROS,
            jitter=args["jitter_us"] / MICROS,
            loss=args["loss_ppm"] / MICROS,
        )
    except ValueError as exc:
        raise WireError(f"sim pipe: bad link faults: {exc}") from None


def changed_links(faults: LinkFaults, link: LinkChange) -> LinkFaults:
    """``faults`` after a scripted ``[[link]]`` change (what it leaves out stays)."""
    return LinkFaults(
        latency=faults.latency if link.latency is None else link.latency,
        jitter=faults.jitter,
        loss=faults.loss if link.loss is None else link.loss,
    )


def first_error(
    group: BaseExceptionGroup[Any], kind: type[BaseException] | tuple[type[BaseException], ...]
) -> BaseException:
    """The first error of ``kind`` in ``group`` (nested groups searched), else the group."""
    matched, _ = group.split(kind)
    if matched is None:
        return group
    error: BaseException = matched
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def rss_mb() -> float:
    """This process's resident set in MB (0.0 where /proc is missing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class Nodes(Protocol):
    """A simulation's running nodes, by index."""

    #: Each node's contacts, by index, in the order they were made.
    contacts: dict[int, list[int]]
    #: The memory network (``--clock virtual``), whose link faults a run changes.
    network: MemoryNetwork | None
    #: Resident memory of the processes running nodes before any node
    #: started (None: this process's, taken before forming).
    baseline_rss_mb: float | None
    #: Seconds each step of forming took, by name (for the report).
    forming_steps: dict[str, float]
    #: CPU seconds of this process in each step of forming (same names).
    forming_cpu: dict[str, float]

    def __len__(self) -> int: ...
    def online(self, index: int) -> bool: ...
    def online_count(self) -> int: ...
    @property
    def partitioned(self) -> bool: ...
    def join_addrs(self) -> list[str]: ...
    async def start(self, index: int) -> None: ...
    async def stop(self, index: int) -> None: ...
    async def send(self, sender: int, recipient: int, text: str) -> tuple[bytes, float | None]:
        """Send ``text``; the message id and when it was sent (simulation s; None: now)."""
        ...

    async def partition(self, groups: Sequence[Collection[int]]) -> None: ...
    async def heal(self) -> None: ...
    async def collect(self, undelivered: list[tuple[bytes, int, int]], now_ms: int) -> Collected:
        """See :meth:`SimNetwork.collect`, over every node."""
        ...

    async def rss_mb(self) -> float:
        """Resident memory of every process running nodes, this one included."""
        ...

    async def change_links(self, link: LinkChange) -> None:
        """Apply a scripted link change to every link (memory network or TCP faults)."""
        ...

    async def link_stats(self) -> dict[str, int]:
        """The fault layer's counters (dials, losses…), summed; empty without one."""
        ...

    async def outside_peers(self) -> dict[str, int]:
        """See :meth:`SimNetwork.outside_peers`, over every node."""
        ...


class LocalNodes:
    """:class:`Nodes` over a SimNetwork in this process."""

    def __init__(self, sim: SimNetwork) -> None:
        self.sim = sim
        self.contacts = sim.contacts
        self.network = sim.network
        self.baseline_rss_mb: float | None = None
        self.forming_steps = sim.forming_steps
        self.forming_cpu = sim.forming_cpu

    def __len__(self) -> int:
        return len(self.sim)

    def online(self, index: int) -> bool:
        return self.sim[index].online

    def online_count(self) -> int:
        return sum(1 for n in self.sim.nodes if n.online)

    @property
    def partitioned(self) -> bool:
        return self.sim.partitioned

    def join_addrs(self) -> list[str]:
        return self.sim[0].running.host.listen_addrs()

    async def start(self, index: int) -> None:
        await self.sim.start(self.sim[index])

    async def stop(self, index: int) -> None:
        await self.sim.stop(self.sim[index])

    async def send(self, sender: int, recipient: int, text: str) -> tuple[bytes, float | None]:
        node = self.sim[sender].running.node
        return node.send_text(self.sim[recipient].peer_id, text).id, None

    async def partition(self, groups: Sequence[Collection[int]]) -> None:
        self.sim.partition(groups)

    async def heal(self) -> None:
        self.sim.heal()

    async def collect(self, undelivered: list[tuple[bytes, int, int]], now_ms: int) -> Collected:
        return self.sim.collect(undelivered, now_ms)

    async def rss_mb(self) -> float:
        return rss_mb()

    async def change_links(self, link: LinkChange) -> None:
        links = self.sim.network or self.sim.faults
        assert links is not None  # simulate() gives TCP faults to a run with link changes
        links.faults = changed_links(links.faults, link)

    async def link_stats(self) -> dict[str, int]:
        links = self.sim.network or self.sim.faults
        return {} if links is None else dict(links.stats)

    async def outside_peers(self) -> dict[str, int]:
        return self.sim.outside_peers()
