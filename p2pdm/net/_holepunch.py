"""Hole punching: DCUtR (``/libp2p/dcutr``) after a relayed connection, counted.

How this works: py-libp2p 0.8.1's :class:`DCUtRProtocol` runs on every TCP
host. Every two seconds it looks for peers connected only through a relay
and tries, in order, a plain direct dial to their known addresses and the
DCUtR exchange over the relayed connection (both sides dial each other's
NAT-mapped address from their listening port at once: TCP simultaneous
open). p2pdm counts each punch (:class:`HolePunchStats`, shown in
``GET /v1/node``) and, when one succeeds, closes the relayed connection at
once, so the dm stream (whose unacknowledged envelopes are resent) reopens
on the direct connection instead of waiting out libp2p's 60 s grace period.
When it fails, the relayed connection stays and carries the conversation.
Best effort: go/rust hole-punching interop is unfinished upstream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol

from p2pdm.net._edge import quietly

__all__ = ["HolePunchStats", "hole_punching"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class HolePunchStats:
    """Hole punches since start, either side having begun them."""

    successes: int = 0
    failures: int = 0
    #: Relayed peers reached by a plain direct dial (no punch needed).
    direct_dials: int = 0


def _is_relayed(conn: Any) -> bool:
    try:
        return any("p2p-circuit" in str(a) for a in conn.get_transport_addresses())
    except Exception:  # no addresses: not a circuit we know of
        return False


def hole_punching(host: IHost, stats: HolePunchStats) -> DCUtRProtocol:
    """The DCUtR service of ``host``, counting into ``stats``."""
    dcutr = DCUtRProtocol(host)
    punch = dcutr._perform_hole_punch
    unilateral = dcutr._try_unilateral_upgrade

    async def close_relayed(peer_id: ID) -> None:
        for conn in list(host.get_network().get_connections(peer_id)):
            if _is_relayed(conn):
                await quietly(conn.close, "closing a relayed connection after a hole punch")

    async def counted_punch(peer_id: ID, addrs: list[Any], as_responder: bool = False) -> bool:
        succeeded = await punch(peer_id, addrs, as_responder)
        if succeeded:
            stats.successes += 1
            logger.info("hole punch to %s succeeded: the connection is direct now", peer_id)
            await close_relayed(peer_id)
        else:
            stats.failures += 1
            logger.info("hole punch to %s failed: staying on the relay", peer_id)
        return succeeded

    async def counted_unilateral(peer_id: ID) -> bool:
        succeeded = await unilateral(peer_id)
        if succeeded:
            stats.direct_dials += 1
            await close_relayed(peer_id)
        return succeeded

    dcutr._perform_hole_punch = counted_punch  # type: ignore[method-assign]
    dcutr._try_unilateral_upgrade = counted_unilateral  # type: ignore[method-assign]
    return dcutr
