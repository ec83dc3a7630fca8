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

A share in a group's conversation goes to each other member connected now,
over each pairwise session, its inner ``conv`` naming the group (like a
group's typing, §19.5); a receiver shows it there only if it holds the group
active and the sender is a member. :func:`recipients_of` says who a
conversation's share goes to. A share that runs is sent again, at once, to
a peer whose connection comes back (:func:`resend_live_location`, called by
the peer watch), so a contact back within the period sees where the sharer
is without waiting for the next move. Starting a share dials a peer that is
not connected yet, within LIVE_LOCATION_DIAL_S (a node that just started
may not have reached it yet).

A restart ends this node's shares: what fed them positions (the browser's
``watchPosition``, an API client) is gone with it. So the store remembers
which shares run (``live_shares``: conversation, contact, end; never a
position), and :func:`stop_orphaned_shares`, at start-up, tells each
recipient of a share still within its period that it stopped (dialing, as a
start does); a recipient not reached then is told when its connection comes
back (:func:`resend_live_location`). The row goes once every recipient was
told, or at the period's end.
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
from p2pdm.errors import GroupRefused, P2PDMError, SchemaError
from p2pdm.limits import (
    LIVE_LOCATION_DIAL_S,
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
    "Orphan",
    "expire_live_locations",
    "live_location_loop",
    "own_shares_for",
    "receive_live_location",
    "recipients_of",
    "resend_live_location",
    "share_live_location",
    "stop_live_location",
    "stop_orphaned_shares",
]

log = logging.getLogger("p2pdm.node.live_location")

#: A receiver keeps at most one update per peer this often (half the
#: sender's interval, so a sender's own timer jitter loses nothing).
_MIN_GAP_MS: Final = LIVE_LOCATION_INTERVAL_S * 1000 // 2


#: A share is sent again to a peer whose connection came back, trying again
#: after each of these pauses: a node that is starting takes connections
#: before its services take streams (a few seconds of DHT bootstrap), and
#: 15 s in all covers that; a peer still unreachable gets the next update.
RESEND_PAUSES_S: Final = (1.0, 2.0, 4.0, 8.0)


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


@dataclass(slots=True)
class Orphan:
    """An own share that ran when the node stopped: its recipients are told it
    stopped (``told``: those who were), until its period ends."""

    conversation_id: bytes
    #: The contact of a one-to-one conversation; None for a group's.
    peer: PeerId | None
    until_ms: int
    told: set[PeerId]


class LiveLocations:
    """The live shares a node knows of, in memory only and bounded."""

    def __init__(self, cap: int = MAX_LIVE_LOCATIONS) -> None:
        self.cap = cap
        self._shares: dict[tuple[bytes, PeerId], LiveShare] = {}
        #: Own shares from before a restart, by conversation (at most one
        #: each, from the store's ``live_shares``; bounded like the shares).
        self.orphans: dict[bytes, Orphan] = {}
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

    def own(self, now_ms: int) -> list[LiveShare]:
        """This node's own shares that have not ended."""
        return [s for s in self._shares.values() if s.mine and s.until_ms > now_ms]

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


def recipients_of(node: Node, conversation_id: bytes, peer: PeerId) -> list[PeerId]:
    """Who a share in ``conversation_id`` goes to: the contact ``peer`` of a
    one-to-one conversation, or each other member of a group (not blocked).
    Raises GroupRefused for a group this node is not (or not yet) in."""
    row = node.store.get_group(conversation_id)
    if row is None:
        return [peer]
    if row.state != "active":
        raise GroupRefused("you are not in this group (or have not joined it)")
    members = node.group_wire.log(conversation_id).state().members
    me = node.peer_id
    return sorted(
        (p for p in members if p != me and not node.store.is_blocked(p)), key=lambda p: p.raw
    )


def _group_of(node: Node, conversation_id: bytes) -> bytes | None:
    """``conversation_id`` if it is a group's (its shares name it), else None."""
    return conversation_id if node.store.get_group(conversation_id) is not None else None


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
        node.live_locations.orphans.pop(conversation_id, None)  # this share replaces it
        contact = None if _group_of(node, conversation_id) else recipients[0]
        with node.store.transaction():
            node.store.put_live_share(conversation_id, contact, until_ms)
            log_event(node.store, live_location_event(node.peer_id, conversation_id, now, until_ms))
    body = LiveLocationBody(until_ms // 1000, lat_e7, lon_e7, accuracy_m)
    why_not = await _send(node, conversation_id, recipients, body, force=fresh, dial=fresh)
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
    with node.store.transaction():
        node.store.remove_live_share(conversation_id)
        log_event(
            node.store,
            live_location_event(node.peer_id, conversation_id, now, share.until_ms, stopped=True),
        )
    if share.until_ms > now:
        stop = LiveLocationBody(now // 1000, stop=True)
        await _send(node, conversation_id, recipients, stop, force=True, dial=False)
    return True


async def _send(
    node: Node,
    conversation_id: bytes,
    recipients: Sequence[PeerId],
    body: LiveLocationBody,
    *,
    force: bool,
    dial: bool,
) -> str | None:
    """Hand ``body`` to each recipient that may have it and is connected (with
    ``dial``: dialed, within LIVE_LOCATION_DIAL_S, if not), all at once; None
    if one took it, else why none did (the last reason)."""
    group = _group_of(node, conversation_id)
    reason = "no recipient"
    now = node.now_ms()
    due: list[tuple[PeerId, bytes, bool]] = []
    for peer in recipients:
        # In a group, members are the audience, contacts or not (§19.5).
        if group is None and not accepted(node.store, peer):
            reason = "a live location is shared only with contacts"
            continue
        connected = node.send_now is not None and node.connected_to(peer)
        if not connected and not (dial and node.send_dialing is not None):
            reason = "not connected to the peer now: the next update goes when it is"
            continue
        if not (force or body.stop) and node.live_locations.sent_recently(
            conversation_id, peer, now
        ):
            reason = f"sent less than {LIVE_LOCATION_INTERVAL_S} s ago"
            continue
        try:
            envelope = node.messenger.seal_ephemeral(
                peer, body, LIVE_LOCATION_ENVELOPE_TTL_S, group
            )
        except P2PDMError as exc:  # a member with no session yet: no reason to start one
            reason = str(exc)
            continue
        node.live_locations.note_sent(conversation_id, peer, now)
        due.append((peer, envelope, connected))
    took: list[PeerId] = []

    async def hand(peer: PeerId, envelope: bytes, connected: bool) -> None:
        send = node.send_now if connected else node.send_dialing
        assert send is not None
        if await send(peer, envelope):
            took.append(peer)

    async with trio.open_nursery() as nursery:
        for peer, envelope, connected in due:
            nursery.start_soon(hand, peer, envelope, connected)
    if took:
        return None
    if due:
        dialed = any(not connected for _, _, connected in due)
        reason = (
            f"the peer could not be reached within {LIVE_LOCATION_DIAL_S} s: "
            "the next update goes when it is connected"
            if dialed
            else "the peer did not take it"
        )
    return reason


def own_shares_for(node: Node, peer: PeerId) -> list[LiveShare]:
    """This node's running shares that ``peer`` is a recipient of: the one with
    it, and those of active groups it is a member of."""
    now = node.now_ms()
    direct = direct_conversation_id(node.peer_id, peer)
    found = []
    for share in node.live_locations.own(now):
        if share.conversation_id == direct:
            found.append(share)
            continue
        row = node.store.get_group(share.conversation_id)
        active = row is not None and row.state == "active"
        if active and peer in recipients_of(node, share.conversation_id, peer):
            found.append(share)
    return found


def orphans_for(node: Node, peer: PeerId) -> list[Orphan]:
    """The shares from before a restart that ``peer`` has not been told stopped."""
    found = []
    for orphan in list(node.live_locations.orphans.values()):
        if peer in orphan.told or orphan.until_ms <= node.now_ms():
            continue
        try:
            if peer in _orphan_recipients(node, orphan):
                found.append(orphan)
        except P2PDMError:  # a group left meanwhile: nobody to tell
            continue
    return found


def _orphan_recipients(node: Node, orphan: Orphan) -> list[PeerId]:
    return recipients_of(node, orphan.conversation_id, orphan.peer or node.peer_id)


async def _tell_stopped(node: Node, orphan: Orphan, peers: Sequence[PeerId], dial: bool) -> int:
    """Send ``peers`` the stop of ``orphan``; forget it (and its row) once every
    recipient was told. How many took it now."""
    stop = LiveLocationBody(node.now_ms() // 1000, stop=True)
    took: list[PeerId] = []

    async def tell(peer: PeerId) -> None:  # one each: _send says only whether anyone took it
        why_not = await _send(node, orphan.conversation_id, [peer], stop, force=True, dial=dial)
        if why_not is None:
            took.append(peer)
        else:
            log.debug("could not tell %s a live location stopped: %s", peer.short(), why_not)

    async with trio.open_nursery() as nursery:  # all at once: each dial is bounded
        for peer in peers:
            nursery.start_soon(tell, peer)
    orphan.told.update(took)
    told = len(took)
    try:
        left = set(_orphan_recipients(node, orphan)) - orphan.told
    except P2PDMError:
        left = set()
    if not left and node.live_locations.orphans.get(orphan.conversation_id) is orphan:
        del node.live_locations.orphans[orphan.conversation_id]
        node.store.remove_live_share(orphan.conversation_id)
    return told


async def stop_orphaned_shares(node: Node) -> int:
    """At start-up: take the shares that ran when the node last stopped (or
    crashed) from the store and tell their recipients they stopped, dialing
    each within LIVE_LOCATION_DIAL_S; those not reached are told when they
    connect. Returns how many recipients were told now."""
    now = node.now_ms()
    orphans = node.live_locations.orphans
    for conversation_id, peer, until_ms in node.store.live_shares():
        mine = node.live_locations.get(conversation_id, node.peer_id)
        if mine is not None and mine.until_ms == until_ms:
            continue  # started in this run
        if until_ms <= now or len(orphans) >= node.live_locations.cap:
            node.store.remove_live_share(conversation_id)
            continue
        orphans[conversation_id] = Orphan(conversation_id, peer, until_ms, set())
    told = 0
    for orphan in list(orphans.values()):
        try:
            recipients = _orphan_recipients(node, orphan)
        except P2PDMError:  # a group left: nobody to tell
            orphans.pop(orphan.conversation_id, None)
            node.store.remove_live_share(orphan.conversation_id)
            continue
        log_event(
            node.store,
            live_location_event(
                node.peer_id, orphan.conversation_id, now, orphan.until_ms, stopped=True
            ),
        )
        told += await _tell_stopped(node, orphan, recipients, dial=True)
    return told


async def resend_live_location(node: Node, peer: PeerId) -> int:
    """Send ``peer`` (whose connection just came back) the current position of
    each share of this node's it is a recipient of, at once (a connection
    just up may not take streams yet: tried again after each of
    RESEND_PAUSES_S), and the stop of each share from before a restart it
    was not told of yet; how many went."""
    went = 0
    for orphan in orphans_for(node, peer):
        for pause in (0.0, *RESEND_PAUSES_S):
            await trio.sleep(pause)
            if orphan.conversation_id not in node.live_locations.orphans:
                break  # replaced by a new share, or ended
            try:
                if await _tell_stopped(node, orphan, [peer], dial=False):
                    went += 1
                    break
            except P2PDMError as exc:
                log.debug("stop not sent to %s: %s", peer.short(), exc)
    for share in own_shares_for(node, peer):
        for pause in (0.0, *RESEND_PAUSES_S):
            await trio.sleep(pause)
            current = node.live_locations.get(share.conversation_id, node.peer_id)
            if current is None or current.until_ms <= node.now_ms():
                break  # stopped or ended meanwhile
            body = LiveLocationBody(
                current.until_ms // 1000, current.lat_e7, current.lon_e7, current.accuracy_m
            )
            try:
                why_not = await _send(
                    node, current.conversation_id, [peer], body, force=True, dial=False
                )
            except P2PDMError as exc:
                why_not = str(exc)
            if why_not is None:
                went += 1
                break
            log.debug("live location not sent again to %s: %s", peer.short(), why_not)
    return went


def receive_live_location(
    node: Node,
    sender: PeerId,
    body: LiveLocationBody,
    *,
    direct: bool,
    conversation_id: bytes | None = None,
) -> LiveShare | None:
    """Apply a contact's update or stop in the one-to-one conversation, or a
    member's in a group's (``conversation_id``, the inner ``conv``), only one
    that came directly (never from a mailbox); returns the share as it is
    now, None if dropped or stopped."""
    if not direct:
        return None
    own = direct_conversation_id(node.peer_id, sender)
    if conversation_id is None or conversation_id == own:
        conversation_id = own
        if not accepted(node.store, sender):
            return None
    elif not _member_of(node, conversation_id, sender):
        return None
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


def _member_of(node: Node, group: bytes, sender: PeerId) -> bool:
    """True if ``group`` is a group this node holds active with ``sender`` in it."""
    row = node.store.get_group(group)
    if row is None or row.state != "active" or node.store.is_blocked(sender):
        return False
    return sender in node.group_wire.log(group).state().members


def expire_live_locations(node: Node) -> list[LiveShare]:
    """Forget the shares whose period ran out, each with a ``location.stopped``."""
    now = node.now_ms()
    gone = node.live_locations.ended(now)
    for share in gone:
        event = live_location_event(
            share.peer, share.conversation_id, now, share.until_ms, stopped=True
        )
        if share.mine:
            node.store.remove_live_share(share.conversation_id)
        log_event(node.store, event)
    orphans = node.live_locations.orphans
    for orphan in [o for o in orphans.values() if o.until_ms <= now]:
        del orphans[orphan.conversation_id]
        node.store.remove_live_share(orphan.conversation_id)
    return gone


async def live_location_loop(node: Node, interval_s: float = LIVE_LOCATION_INTERVAL_S) -> None:
    """:func:`expire_live_locations` every ``interval_s`` seconds, forever."""
    while True:
        try:
            expire_live_locations(node)
        except P2PDMError as exc:  # the store is gone or full: the next pass tries again
            log.warning("could not end live locations: %s", exc)
        await trio.sleep(interval_s)
