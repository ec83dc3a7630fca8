"""Live location: sharing where one is for a chosen period, and following a
contact's share (docs/protocol.md §6.9).

How this works: a share lives only in memory (:class:`LiveLocations` on the
node), never in the store: the sharer's own last position and each peer's
last update, until the share's end at the latest. An update goes as a
``live_location`` envelope straight to each connected recipient
(:meth:`~p2pdm.node.messenger.Messenger.seal_ephemeral` and the node's
``send_now``, as typing does): never queued, retried or deposited, at most
one per peer every LIVE_LOCATION_INTERVAL_S (a stop always goes). The event
log says a share started, moved or stopped (``location.live``,
``location.stopped``) and when it ends, never where anyone is;
:func:`live_location_loop` ends shares whose period ran out and forgets them.

Recipients are given as a list, so a group's share is the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import trio

from p2pdm.core.eventlog import live_location_event
from p2pdm.core.identity import PeerId
from p2pdm.core.kinds.live_location import LiveLocationBody
from p2pdm.core.model import direct_conversation_id
from p2pdm.errors import P2PDMError, SchemaError
from p2pdm.limits import (
    LIVE_LOCATION_ENVELOPE_TTL_S,
    LIVE_LOCATION_INTERVAL_S,
    LIVE_LOCATION_PERIODS_S,
    LIVE_LOCATION_SKEW_S,
    MAX_LIVE_LOCATIONS,
)
from p2pdm.node.requests import accepted
from p2pdm.store.base import log_event

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = [
    "LiveLocations",
    "LiveShare",
    "expire_live_locations",
    "live_location_loop",
    "receive_live_location",
    "share_live_location",
    "stop_live_location",
]

log = logging.getLogger("p2pdm.node.live_location")

#: A receiver keeps at most one update per peer this often (half the
#: sender's interval, so a sender's own timer jitter loses nothing).
_MIN_GAP_MS: Final = LIVE_LOCATION_INTERVAL_S * 1000 // 2


@dataclass(frozen=True, slots=True)
class LiveShare:
    """One live location: whose, in which conversation, where and until when."""

    conversation_id: bytes
    #: Who shares it (this node's own PeerID for its own share).
    peer: PeerId
    mine: bool
    lat_e7: int
    lon_e7: int
    accuracy_m: int | None
    until_ms: int
    updated_ms: int


class LiveLocations:
    """The live shares a node knows of, in memory only and bounded."""

    def __init__(self, cap: int = MAX_LIVE_LOCATIONS) -> None:
        self.cap = cap
        self._shares: dict[tuple[bytes, PeerId], LiveShare] = {}
        #: When an own share's update last went to each recipient.
        self._sent_ms: dict[tuple[bytes, PeerId], int] = {}

    def get(self, conversation_id: bytes, peer: PeerId) -> LiveShare | None:
        return self._shares.get((conversation_id, peer))

    def put(self, share: LiveShare) -> None:
        self._shares[(share.conversation_id, share.peer)] = share
        while len(self._shares) > self.cap:  # the one ending soonest goes
            soonest = min(self._shares.values(), key=lambda s: s.until_ms)
            self.drop(soonest.conversation_id, soonest.peer)

    def drop(self, conversation_id: bytes, peer: PeerId) -> LiveShare | None:
        share = self._shares.pop((conversation_id, peer), None)
        if share is not None and share.mine:
            for key in [k for k in self._sent_ms if k[0] == conversation_id]:
                del self._sent_ms[key]
        return share

    def active(self, conversation_id: bytes, now_ms: int) -> list[LiveShare]:
        """The shares of a conversation that have not ended, own first."""
        found = [
            s
            for (cid, _), s in self._shares.items()
            if cid == conversation_id and s.until_ms > now_ms
        ]
        return sorted(found, key=lambda s: (not s.mine, str(s.peer)))

    def ended(self, now_ms: int) -> list[LiveShare]:
        """Forget every share whose period ran out; returns them."""
        gone = [s for s in self._shares.values() if s.until_ms <= now_ms]
        for share in gone:
            self.drop(share.conversation_id, share.peer)
        return gone

    def sent_recently(self, conversation_id: bytes, to: PeerId, now_ms: int) -> bool:
        last = self._sent_ms.get((conversation_id, to))
        return last is not None and now_ms - last < LIVE_LOCATION_INTERVAL_S * 1000

    def note_sent(self, conversation_id: bytes, to: PeerId, now_ms: int) -> None:
        self._sent_ms[(conversation_id, to)] = now_ms


def check_period(duration_s: int) -> None:
    """Raises SchemaError unless ``duration_s`` is one of LIVE_LOCATION_PERIODS_S."""
    if duration_s not in LIVE_LOCATION_PERIODS_S:
        periods = ", ".join(str(p) for p in LIVE_LOCATION_PERIODS_S)
        raise SchemaError(f"duration_s must be one of {periods} (15 minutes, 1 hour, 8 hours)")


async def share_live_location(
    node: Node,
    conversation_id: bytes,
    recipients: Sequence[PeerId],
    lat_e7: int,
    lon_e7: int,
    accuracy_m: int | None,
    duration_s: int | None,
) -> tuple[LiveShare, str | None]:
    """Start (``duration_s`` given: one of LIVE_LOCATION_PERIODS_S, from now) or
    move the node's live location in a conversation and send the update to
    its connected recipients; returns the share and, if it reached nobody
    now, why. Raises SchemaError for a bad period or no share to move."""
    now = node.now_ms()
    current = node.live_locations.get(conversation_id, node.peer_id)
    if current is not None and current.until_ms <= now:
        current = None
    if duration_s is None:
        if current is None:
            raise SchemaError("not sharing a live location here: give duration_s to start")
        until_ms = current.until_ms
    else:
        check_period(duration_s)
        until_ms = now + duration_s * 1000
    share = LiveShare(
        conversation_id, node.peer_id, True, lat_e7, lon_e7, accuracy_m, until_ms, now
    )
    node.live_locations.put(share)
    fresh = current is None or current.until_ms != until_ms
    if fresh:
        log_event(node.store, live_location_event(node.peer_id, conversation_id, now, until_ms))
    body = LiveLocationBody(until_ms // 1000, lat_e7, lon_e7, accuracy_m)
    why_not = await _send(node, conversation_id, recipients, body, force=fresh)
    return share, why_not


async def stop_live_location(
    node: Node, conversation_id: bytes, recipients: Sequence[PeerId]
) -> bool:
    """Stop the node's live location in a conversation and tell the connected
    recipients; False if it was not sharing there."""
    share = node.live_locations.drop(conversation_id, node.peer_id)
    if share is None:
        return False
    now = node.now_ms()
    log_event(
        node.store,
        live_location_event(node.peer_id, conversation_id, now, share.until_ms, stopped=True),
    )
    if share.until_ms > now:
        await _send(
            node, conversation_id, recipients, LiveLocationBody(now // 1000, stop=True), force=True
        )
    return True


async def _send(
    node: Node,
    conversation_id: bytes,
    recipients: Sequence[PeerId],
    body: LiveLocationBody,
    *,
    force: bool,
) -> str | None:
    """Hand ``body`` to each recipient that is a connected contact; None if one
    took it, else why none did (the last reason)."""
    reason = "no recipient"
    took = False
    now = node.now_ms()
    for peer in recipients:
        if not accepted(node.store, peer):
            reason = "a live location is shared only with contacts"
            continue
        if node.send_now is None or peer not in node.online:
            reason = "not connected to the peer now: the next update goes when it is"
            continue
        if not (force or body.stop) and node.live_locations.sent_recently(
            conversation_id, peer, now
        ):
            reason = f"sent less than {LIVE_LOCATION_INTERVAL_S} s ago"
            continue
        try:
            envelope = node.messenger.seal_ephemeral(peer, body, LIVE_LOCATION_ENVELOPE_TTL_S)
        except P2PDMError as exc:
            reason = str(exc)
            continue
        node.live_locations.note_sent(conversation_id, peer, now)
        if await node.send_now(peer, envelope):
            took = True
        else:
            reason = "the peer did not take it"
    return None if took else reason


def receive_live_location(
    node: Node, sender: PeerId, body: LiveLocationBody, *, direct: bool
) -> LiveShare | None:
    """Apply a contact's update or stop (only one that came directly: never from
    a mailbox); returns the share as it is now, None if dropped or stopped."""
    if not direct or not accepted(node.store, sender):
        return None
    conversation_id = direct_conversation_id(node.peer_id, sender)
    now = node.now_ms()
    if body.stop:
        gone = node.live_locations.drop(conversation_id, sender)
        if gone is not None:
            event = live_location_event(sender, conversation_id, now, now, stopped=True)
            log_event(node.store, event)
        return None
    until_ms = body.until_s * 1000
    latest = now + (max(LIVE_LOCATION_PERIODS_S) + LIVE_LOCATION_SKEW_S) * 1000
    if until_ms <= now or until_ms > latest:
        log.info("live location from %s dropped: it ends outside its period", sender.short())
        return None
    assert body.lat_e7 is not None and body.lon_e7 is not None  # the decoder's rule
    last = node.live_locations.get(conversation_id, sender)
    if last is not None and now - last.updated_ms < _MIN_GAP_MS:
        return last  # faster than the interval: acknowledged and dropped
    share = LiveShare(
        conversation_id, sender, False, body.lat_e7, body.lon_e7, body.accuracy_m, until_ms, now
    )
    node.live_locations.put(share)
    log_event(node.store, live_location_event(sender, conversation_id, now, until_ms))
    return share


def expire_live_locations(node: Node) -> list[LiveShare]:
    """Forget the shares whose period ran out, each with a ``location.stopped``."""
    now = node.now_ms()
    gone = node.live_locations.ended(now)
    for share in gone:
        event = live_location_event(
            share.peer, share.conversation_id, now, share.until_ms, stopped=True
        )
        log_event(node.store, event)
    return gone


async def live_location_loop(node: Node, interval_s: float = LIVE_LOCATION_INTERVAL_S) -> None:
    """:func:`expire_live_locations` every ``interval_s`` seconds, forever."""
    while True:
        try:
            expire_live_locations(node)
        except P2PDMError as exc:  # the store is gone or full: the next pass tries again
            log.warning("could not end live locations: %s", exc)
        await trio.sleep(interval_s)
