"""How long and how much memory N hosts take to form a DHT over the memory network.

Everything runs in virtual time (``trio.testing.MockClock``, autojump): the
virtual seconds are what the network experienced, the CPU seconds are what
this machine's CPU paid for them. ``scripts/bench_memnet 50 100 200`` runs one
process per size and prints one Markdown table row each (docs/simulation.md).

Measured per size: forming the network (hosts join one after another, each
through one of the first BOOTSTRAP_HOSTS hosts, by
:func:`p2pdm.net.testing.open_hosts`), then a quiet spell of ``hold``
virtual seconds (background upkeep only), then one more host joins and
looks up ``lookups`` random peers with find_peer (as NOTES-libp2p.md's
"find_peer from a new joiner"). CPU seconds are this process's; on a shared
machine they are the figure to compare, wall seconds drift with the load.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time
from dataclasses import dataclass

import trio
import trio.testing

from p2pdm.errors import PeerUnreachable
from p2pdm.net import open_host
from p2pdm.net.memory_transport import LinkFaults, MemoryNetwork
from p2pdm.net.testing import host_seed, open_hosts
from p2pdm.net.upkeep import DEFAULT_UPKEEP, Upkeep

__all__ = ["FormReport", "measure_formation"]

#: Hosts the others join through, in turn: each keeps an inbound connection
#: from every host that joined through it, and a host takes at most
#: MAX_INBOUND_CONNECTIONS (192), so 200 hosts cannot all join through one.
BOOTSTRAP_HOSTS = 4
#: Longest virtual wait for one benchmark lookup.
LOOKUP_TIMEOUT_SECONDS = 30.0
#: Page size for reading the resident set from /proc/self/statm.
_PAGE_BYTES = resource.getpagesize()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


@dataclass(frozen=True, slots=True)
class FormReport:
    nodes: int
    form_virtual_s: float
    form_wall_s: float
    form_cpu_s: float
    rss_per_node_mb: float
    links_after_form: int
    routing_table_median: float
    hold_virtual_s: float
    hold_cpu_s: float
    links_after_hold: int
    lookups_found: int
    lookups: int
    lookup_virtual_median_s: float
    lookup_cpu_s: float

    def row(self) -> str:
        return (
            f"| {self.nodes} | {self.form_virtual_s:.0f} s | {self.form_cpu_s:.1f} s "
            f"({self.form_wall_s:.0f} s) | {self.rss_per_node_mb:.1f} MB "
            f"| {self.links_after_form} | {self.routing_table_median:.0f} "
            f"| {self.hold_virtual_s:.0f} s: {self.hold_cpu_s:.1f} s, "
            f"{self.links_after_hold} links "
            f"| {self.lookups_found}/{self.lookups}, {self.lookup_virtual_median_s:.2f} s, "
            f"{self.lookup_cpu_s:.1f} s |"
        )


async def measure_formation(
    nodes: int,
    *,
    faults: LinkFaults | None = None,
    upkeep: Upkeep | None = None,
    seed: int = 0,
    hold: float = 120.0,
    lookups: int = 10,
) -> FormReport:
    """Form a ``nodes``-host DHT on a fresh memory network and measure it (run under MockClock)."""
    net = MemoryNetwork(faults or LinkFaults(latency=0.02), seed=seed)
    rss_before = _rss_bytes()
    wall, cpu = time.perf_counter(), time.process_time()
    start = trio.current_time()
    upkeep = upkeep or DEFAULT_UPKEEP
    async with open_hosts(nodes, bootstraps=BOOTSTRAP_HOSTS, network=net, upkeep=upkeep) as hosts:
        form_virtual = trio.current_time() - start
        form_wall = time.perf_counter() - wall
        form_cpu = time.process_time() - cpu
        rss_per_node = (_rss_bytes() - rss_before) / nodes / 1e6
        links_after_form = net.link_count()
        table_median = statistics.median(len(host.dht_peers()) for host in hosts)

        cpu = time.process_time()
        await trio.sleep(hold)
        hold_cpu = time.process_time() - cpu
        links_after_hold = net.link_count()

        targets = random.Random(seed).sample(hosts[1:], min(lookups, nodes - 1))
        found, durations = 0, []
        cpu = time.process_time()
        async with open_host(
            host_seed(nodes),
            bootstrap=hosts[0].listen_addrs(),
            network=net,
            upkeep=upkeep,
        ) as joiner:
            for target in targets:
                begun = trio.current_time()
                try:
                    await joiner.find_peer(target.peer_id, LOOKUP_TIMEOUT_SECONDS)
                    found += 1
                except PeerUnreachable:
                    pass
                durations.append(trio.current_time() - begun)
        lookup_cpu = time.process_time() - cpu
    return FormReport(
        nodes=nodes,
        form_virtual_s=form_virtual,
        form_wall_s=form_wall,
        form_cpu_s=form_cpu,
        rss_per_node_mb=rss_per_node,
        links_after_form=links_after_form,
        routing_table_median=table_median,
        hold_virtual_s=hold,
        hold_cpu_s=hold_cpu,
        links_after_hold=links_after_hold,
        lookups_found=found,
        lookups=len(targets),
        lookup_virtual_median_s=statistics.median(durations) if durations else 0.0,
        lookup_cpu_s=lookup_cpu,
    )


HEADER = (
    "| nodes | form: virtual | form: CPU (wall) | RSS/node | links | routing table (median) "
    "| quiet spell: CPU, links after | new joiner's find_peer: found, median virtual, CPU |\n"
    "|---|---|---|---|---|---|---|---|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nodes", type=int)
    parser.add_argument("--latency", type=float, default=0.02, help="one-way seconds")
    parser.add_argument("--loss", type=float, default=0.0)
    parser.add_argument("--hold", type=float, default=120.0, help="quiet virtual seconds")
    parser.add_argument("--lookups", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_UPKEEP.idle_timeout,
        help="close connections idle this long (seconds); upkeep runs every quarter of it",
    )
    parser.add_argument("--header", action="store_true", help="print the table header first")
    parser.add_argument(
        "--dht-refresh",
        type=float,
        default=DEFAULT_UPKEEP.dht_refresh_interval,
        help="seconds between a host's DHT routing-table refreshes",
    )
    args = parser.parse_args(argv)
    faults = LinkFaults(latency=args.latency, loss=args.loss)
    upkeep = Upkeep(
        interval=min(DEFAULT_UPKEEP.interval, args.idle_timeout / 4),
        idle_timeout=args.idle_timeout,
        dht_refresh_interval=args.dht_refresh,
    )
    report = trio.run(
        lambda: measure_formation(
            args.nodes,
            faults=faults,
            upkeep=upkeep,
            seed=args.seed,
            hold=args.hold,
            lookups=args.lookups,
        ),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    if args.header:
        print(HEADER)
    print(report.row(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
