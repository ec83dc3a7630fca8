"""A node behind NAT keeps reservations on relays; a relay announces itself.

How this works: :class:`RelayKeeper` runs while the host runs. Once the
reachability check says ``private`` (or ``unknown`` with relays configured
by hand), it keeps reservations on RELAYS_KEPT relays: the configured ones
(``--relay-peer``) first, then relays found as providers of
:data:`~p2pdm.core.reachability.RELAY_SERVICE_KEY` in the DHT. It renews a
reservation when less than RELAY_RENEW_MARGIN_SECONDS is left or the
connection to the relay was lost, replaces a relay that refuses or fails
(not asking it again for RELAY_RETRY_SECONDS), and calls ``changed`` when
our relayed addresses change (the node then republishes its signed record,
which carries them). Once the node is public it drops its reservations.
:func:`announce_relay` re-provides the relay key every RELAY_PROVIDE_SECONDS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import trio

from p2pdm.core.identity import PeerId
from p2pdm.core.reachability import RELAY_SERVICE_KEY
from p2pdm.errors import P2PDMError
from p2pdm.net._host import Host
from p2pdm.net.addrs import parse_bootstrap
from p2pdm.net.limits import (
    MAX_RELAY_CANDIDATES,
    RELAY_CHECK_SECONDS,
    RELAY_PROVIDE_SECONDS,
    RELAY_RENEW_MARGIN_SECONDS,
    RELAY_REQUEST_TIMEOUT_SECONDS,
    RELAY_RETRY_SECONDS,
    RELAYS_KEPT,
)

__all__ = ["RelayKeeper", "announce_relay"]

logger = logging.getLogger(__name__)

#: Retry of a failed relay announcement (no DHT peer yet, say).
_ANNOUNCE_RETRY_SECONDS = 30.0


async def announce_relay(host: Host) -> None:
    """Provide the relay key now and every RELAY_PROVIDE_SECONDS (sooner after a failure)."""
    while True:
        try:
            await host.provide(RELAY_SERVICE_KEY)
            pause = RELAY_PROVIDE_SECONDS
        except P2PDMError as exc:
            logger.info("announcing our relay failed: %s", exc)
            pause = _ANNOUNCE_RETRY_SECONDS
        await trio.sleep(pause)


class RelayKeeper:
    """Keeps reservations on RELAYS_KEPT relays while the node is not public."""

    def __init__(
        self,
        host: Host,
        configured: Sequence[str] = (),
        changed: Callable[[], None] = lambda: None,
        kept: int = RELAYS_KEPT,
    ) -> None:
        self.host = host
        self.changed = changed
        self.kept = kept
        self.configured: list[tuple[PeerId, list[str]]] = []
        for text in configured:
            try:
                peer, addr = parse_bootstrap(text)
            except P2PDMError as exc:
                logger.warning("relay peer %s ignored: %s", text[:120], exc)
                continue
            self.configured.append((peer, [str(addr)]))
        #: Relays that refused or failed, and when we may ask them again.
        self.resting: dict[PeerId, float] = {}
        self.wake = trio.Event()
        host.reachability_listeners.append(lambda: self.wake.set())

    def needed(self) -> bool:
        status = self.host.reachability.status
        return status == "private" or (status == "unknown" and bool(self.configured))

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except P2PDMError as exc:
                logger.info("keeping relay reservations: %s", exc)
            with trio.move_on_after(RELAY_CHECK_SECONDS):
                await self.wake.wait()
            self.wake = trio.Event()

    async def check(self) -> None:
        before = self.host.relayed_addrs()
        if not self.needed():
            self.host.reservations.clear()
        else:
            await self._renew()
            if len(self.host.reservations) < self.kept:
                await self._fill()
        if self.host.relayed_addrs() != before:
            logger.info(
                "reachable through %d relays: %s",
                len(self.host.reservations),
                ", ".join(self.host.relayed_addrs()) or "none",
            )
            self.changed()

    async def _renew(self) -> None:
        now = time.time()
        for relay, held in list(self.host.reservations.items()):
            lapsing = held.expires - now < RELAY_RENEW_MARGIN_SECONDS
            if not lapsing and self.host.is_connected(relay):
                continue
            addrs = [a.split("/p2p-circuit", 1)[0] for a in held.addrs]
            try:
                await self.host.reserve(relay, addrs)
            except P2PDMError as exc:
                logger.info("renewing the reservation on %s failed: %s", relay.short(), exc)
                del self.host.reservations[relay]
                self.resting[relay] = trio.current_time() + RELAY_RETRY_SECONDS

    async def _candidates(self) -> list[tuple[PeerId, list[str]]]:
        found = list(self.configured)
        if len(found) < self.kept + len(self.host.reservations):
            try:
                providers = await self.host.find_providers(
                    RELAY_SERVICE_KEY, RELAY_REQUEST_TIMEOUT_SECONDS
                )
            except P2PDMError as exc:
                logger.debug("finding relays failed: %s", exc)
                providers = []
            found += providers[:MAX_RELAY_CANDIDATES]
        return found

    async def _fill(self) -> None:
        now = trio.current_time()
        for relay, addrs in await self._candidates():
            if len(self.host.reservations) >= self.kept:
                return
            if (
                relay == self.host.peer_id
                or relay in self.host.reservations
                or self.resting.get(relay, 0.0) > now
            ):
                continue
            try:
                await self.host.reserve(relay, addrs)
            except P2PDMError as exc:
                logger.info("relay %s refused or failed: %s", relay.short(), exc)
                self.resting[relay] = now + RELAY_RETRY_SECONDS
