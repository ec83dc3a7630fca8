"""Handles in the DHT: providing our own, and finding and checking others' claims.

How this works: a node whose profile has a handle provides the DHT key
:func:`~p2pdm.core.profile.handle_key` of it (on the wire its SHA-256
multihash, as every provider key), renewed every HANDLE_PROVIDE_INTERVAL_SECONDS
like libp2p's own providers, and at once when the handle changes.
:meth:`HandleDirectory.claims` finds the providers of a handle, fetches
each one's signed node record (at most HANDLE_MAX_RECORD_FETCHES at once)
and keeps only those whose record is validly signed by that peer *and*
names that very handle: a provider record alone proves nothing, since
anyone can provide any key. What it returns is ranked by the node
(:mod:`p2pdm.node.profiles`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import trio

from p2pdm.core import records
from p2pdm.core.identity import PeerId
from p2pdm.core.profile import Profile, handle_key
from p2pdm.errors import P2PDMError, SignatureError, WireError
from p2pdm.limits import MAX_HANDLE_CLAIMANTS
from p2pdm.net.limits import MAX_PROVIDERS
from p2pdm.services.limits import (
    HANDLE_LOOKUP_TIMEOUT,
    HANDLE_MAX_RECORD_FETCHES,
    HANDLE_PROVIDE_INTERVAL_SECONDS,
    HANDLE_PROVIDE_RETRY_SECONDS,
)
from p2pdm.services.ports import Network

__all__ = ["HandleDirectory"]

log = logging.getLogger("p2pdm.services.directory")


class HandleDirectory:
    """Provides our handle and checks the claims of others."""

    def __init__(self, network: Network, own: PeerId) -> None:
        self.network = network
        self.own = own
        self._changed = trio.Event()

    def changed(self) -> None:
        """Our handle may have changed: provide the new one now."""
        self._changed.set()

    async def claims(self, handle: str, known: Sequence[PeerId] = ()) -> dict[PeerId, Profile]:
        """The peers whose valid record names ``handle`` (normalised), with their profiles.

        Asks the providers of the handle's key, plus ``known`` (claimants seen
        before); a peer whose record is missing, badly signed or names
        another handle is left out. Raises PeerUnreachable only if the
        lookup itself fails.
        """
        key = handle_key(handle)
        providers = await self.network.find_providers(key, HANDLE_LOOKUP_TIMEOUT)
        candidates = list(dict.fromkeys([*known, *(peer for peer, _ in providers)]))
        candidates = candidates[: MAX_PROVIDERS + MAX_HANDLE_CLAIMANTS]
        found: dict[PeerId, Profile] = {}
        limiter = trio.Semaphore(HANDLE_MAX_RECORD_FETCHES)

        async def check(peer: PeerId) -> None:
            async with limiter:
                profile = await self._claim_of(peer, handle)
            if profile is not None:
                found[peer] = profile

        with trio.move_on_after(HANDLE_LOOKUP_TIMEOUT):
            async with trio.open_nursery() as nursery:
                for peer in candidates:
                    nursery.start_soon(check, peer)
        return found

    async def _claim_of(self, peer: PeerId, handle: str) -> Profile | None:
        """``peer``'s profile if its newest valid record names ``handle``; else None."""
        key = records.record_key(peer)
        try:
            # Claimants are mostly strangers: their records are not kept here.
            value = await self.network.get_record(key, HANDLE_LOOKUP_TIMEOUT, keep=False)
            if value is None:
                log.debug("claimant %s of %r: no record found", peer.short(), handle)
                return None
            record = records.validate(key, value)
        except (WireError, SignatureError) as exc:
            log.info("claimant %s of %r: record refused: %s", peer.short(), handle, exc)
            return None
        except P2PDMError as exc:
            log.debug("claimant %s of %r: %s", peer.short(), handle, exc)
            return None
        if record.profile is None or record.profile.handle != handle:
            log.info("claimant %s does not name %r in its record", peer.short(), handle)
            return None
        return record.profile

    async def provide(self, handle_of: Callable[[], str]) -> None:
        """Provide the key of our handle (``handle_of()``, '' for none) until cancelled."""
        while True:
            self._changed = trio.Event()
            handle = handle_of()
            pause = HANDLE_PROVIDE_INTERVAL_SECONDS
            if handle:
                try:
                    await self.network.provide(handle_key(handle))
                except P2PDMError as exc:
                    log.info("providing handle %r failed (retrying): %s", handle, exc)
                    pause = HANDLE_PROVIDE_RETRY_SECONDS
            with trio.move_on_after(pause):
                await self._changed.wait()
