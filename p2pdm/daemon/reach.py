"""How reachable the running node is, as ``GET /v1/node`` shows it.

How this works: the host keeps the last reachability verdict
(:mod:`p2pdm.core.reachability`, checked in the background by the host) and
the DHT mode in force; :func:`reachability_json` turns them into the JSON
of the ``Reachability`` schema (``api/views.py``). A node that listens on
loopback only is shown as :data:`LOCAL_ONLY` whatever the verdict: the
peers that dialed it back run on this computer too, and no other can.
"""

from __future__ import annotations

from typing import Final

from p2pdm.net import Host
from p2pdm.net.addrs import is_loopback

__all__ = ["LOCAL_ONLY", "reachability_json", "shown_status"]

#: The status shown for a node only this computer can dial.
LOCAL_ONLY: Final = "local"


def shown_status(host: Host) -> str:
    """The verdict, or :data:`LOCAL_ONLY` when every address is loopback."""
    addrs = host.listen_addrs()
    if addrs and all(is_loopback(addr) for addr in addrs):
        return LOCAL_ONLY
    return host.reachability.status


def reachability_json(host: Host) -> dict[str, object]:
    """The host's reachability as JSON (``GET /v1/node``'s ``reachability``)."""
    verdict = host.reachability
    return {
        "status": shown_status(host),
        "reached": verdict.reached,
        "failed": verdict.failed,
        "silent": verdict.silent,
        "dht_mode": host.dht_mode(),
        "relayed_addrs": host.relayed_addrs(),
        "lan_peers": len(host.lan_peers),
        "relay": None if host.relay_limits is None else relay_json(host),
        "hole_punch": {
            "successes": host.hole_punch_stats.successes,
            "failures": host.hole_punch_stats.failures,
            "direct_dials": host.hole_punch_stats.direct_dials,
        },
    }


def relay_json(host: Host) -> dict[str, object]:
    """What our relay serves and refused."""
    stats = host.relay_stats
    return {
        "reservations": host.relay_reservations_held(),
        "circuits_open": stats.circuits_open,
        "circuits_total": stats.circuits_total,
        "circuits_cut": stats.circuits_cut,
        "refused": dict(stats.refused),
    }
