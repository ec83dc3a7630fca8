"""The node: what a person can do with p2pdm, over one identity and one store.

How this works: :class:`Node` owns the :class:`~p2pdm.node.messenger.Messenger`
(everything about messages that needs no network), the commit batcher and
the event bus, and offers hooks the network services use (``on_outbox``,
``on_received``, ``fetch_bundle``, ``observer``). It runs nothing itself:
the composition root, :mod:`p2pdm.daemon.runner`, starts the libp2p host,
the protocol services (:mod:`p2pdm.services`) and the local API around it
in one trio nursery. The methods below are what the local API and the CLI call; they
check input and report failures as :class:`P2PDMError` subclasses with one
clear sentence each. They take contacts as :class:`PeerId`: the caller
resolves what the user typed once, with :meth:`Node.resolve`
(:mod:`p2pdm.node.contact_names`).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from p2pdm import __version__
from p2pdm.core.identity import Identity, PeerId
from p2pdm.core.model import (
    CONVERSATION_ID_BYTES,
    Contact,
    Conversation,
    DeliveryStatus,
    Direction,
    Event,
    EventType,
    MessagePage,
    StatusChange,
    StoredMessage,
    direct_conversation_id,
)
from p2pdm.core.strangers import StrangerGate
from p2pdm.core.wire import PrekeyBundle
from p2pdm.errors import (
    ConfigError,
    IdempotencyConflict,
    NotFound,
    SchemaError,
    SessionError,
)
from p2pdm.homefiles import DEFAULT_API_PORT  # re-exported: the port is the SDK's default too
from p2pdm.limits import INVITE_TTL_SECONDS, MAX_PAGE_SIZE
from p2pdm.node.actions import MessageActions
from p2pdm.node.batch_send import BatchSend, SendItem, Sent
from p2pdm.node.batching import CommitBatcher
from p2pdm.node.contact_names import (
    check_name,
    choose_name,
    fix_contact_names,
    name_from_invite,
    resolve_contact,
)
from p2pdm.node.events import EventBus
from p2pdm.node.groups import Groups
from p2pdm.node.housekeeping import ConversationUpkeep
from p2pdm.node.key_waits import KeyWaits
from p2pdm.node.live_location import LiveLocations
from p2pdm.node.media import (
    AUTO_DOWNLOAD_SETTING,
    DEFAULT_AUTO_DOWNLOAD_BYTES,
    STRIP_METADATA_SETTING,
    MediaLibrary,
)
from p2pdm.node.messenger import READ_RECEIPTS_SETTING, Messenger, Received, message_text, wall_ms
from p2pdm.node.observer import NO_OBSERVER, NodeObserver
from p2pdm.node.offloop import OffLoopCommits
from p2pdm.node.profiles import Profiles
from p2pdm.node.requests import RequestsAndBlocks
from p2pdm.store.base import Store

__all__ = [
    "DEFAULT_API_PORT",
    "DEFAULT_LISTEN",
    "SETTINGS",
    "AddedContact",
    "EventPage",
    "Node",
    "SendItem",
    "Sent",
]

log = logging.getLogger("p2pdm.node.node")

#: Default libp2p listen address: all interfaces, a fixed port so contacts'
#: address books stay valid across restarts.
DEFAULT_LISTEN: Final = ("/ip4/0.0.0.0/tcp/4701",)

#: Statuses whose latest note is shown with the message.
_DETAILED_STATUSES: Final = frozenset(
    {
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENT,
        DeliveryStatus.DEPOSITED,
        DeliveryStatus.FAILED,
        DeliveryStatus.EXPIRED,
    }
)

#: Outbox entries per recipient searched for a waiting message's next try
#: (oldest first): the waiting messages a person looks at are the oldest.
_NEXT_TRY_SCAN: Final = 256


def _clock(at_ms: int) -> str:
    """A time of day for a status note: ``15:18 UTC``."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%H:%M UTC")


#: Settings the API may read and change, with their type and default.
SETTINGS: Final[dict[str, tuple[type, object]]] = {
    READ_RECEIPTS_SETTING: (bool, True),
    "name": (str, ""),
    STRIP_METADATA_SETTING: (bool, True),
    AUTO_DOWNLOAD_SETTING: (int, DEFAULT_AUTO_DOWNLOAD_BYTES),
    # The web app offers a newcomer the local demo bot (p2pdm.daemon.demo).
    "demo_offer": (bool, True),
}


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events after a cursor, oldest first, and the cursor to ask from next."""

    events: tuple[Event, ...]
    #: Pass as ``since`` next time: past every event looked at, shown or not.
    cursor: int
    #: True if events after the given cursor were dropped (log retention, or
    #: a cursor from before the store was replaced); the client missed some.
    #: Request events, pruned on their own, never set it.
    gap: bool
    #: True if request events (about strangers' message requests) after the
    #: cursor were pruned; a reader that lists requests should reload them.
    requests_gap: bool = False


@dataclass(frozen=True, slots=True)
class AddedContact:
    """A contact just added, and the name its invite gave if that had to change."""

    contact: Contact
    #: The invite's name when it was a PeerID or another contact's name
    #: (see :mod:`p2pdm.node.contact_names`); None when saved as given.
    renamed_from: str | None = None


class Node(Groups, MessageActions, ConversationUpkeep, BatchSend, RequestsAndBlocks, KeyWaits):
    """One p2pdm node's local operations; :mod:`p2pdm.daemon.runner` runs its network services."""

    def __init__(
        self,
        identity: Identity,
        store: Store,
        *,
        now_ms: Callable[[], int] = wall_ms,
        random_bytes: Callable[[int], bytes] = os.urandom,
        strangers: StrangerGate | None = None,
        observer: NodeObserver = NO_OBSERVER,
        request_stamp_bits: int | None = None,
    ) -> None:
        self.identity = identity
        self.store = store
        self.now_ms = now_ms
        #: The node's randomness (ids, nonces, retry jitter); seeded in simulations.
        self.random_bytes = random_bytes
        self.messenger = Messenger(
            identity,
            store,
            now_ms=now_ms,
            random_bytes=random_bytes,
            strangers=strangers,
            request_stamp_bits=request_stamp_bits,
        )
        #: Group commit for concurrent sends (its task runs while the node runs).
        #: Hot paths' commits in a worker thread (receive, acks, group sends).
        self.commits = OffLoopCommits(store)
        self.batcher = CommitBatcher(store, self.messenger.reload, self.commits)
        #: Files: uploads, attachments, fetched chunks (memory until the home's
        #: blob folder is given: ``media.files``).
        self.media = MediaLibrary(store, now_ms=now_ms, random_bytes=random_bytes)
        # A received message's files are recorded in the transaction that stores it.
        self.messenger.on_stored = self.media.on_received
        #: Live locations, own and contacts', in memory only (never stored).
        self.live_locations = LiveLocations()
        #: Multiaddrs we listen on, once running (full, with /p2p/<id>).
        self.addrs: list[str] = []
        #: Called after anything is queued, so the delivery loop wakes up.
        self.on_outbox: Callable[[PeerId], None] = lambda peer: None
        #: Called after an envelope was accepted and committed (by default: a
        #: session with its sender may now exist, so what waits for its keys goes).
        self.on_received: Callable[[Received], None] = lambda got: self.keys_came(got.sender)
        #: Told how each envelope that reached us fared (measurements; see NodeObserver).
        self.observer = observer
        #: Hands an ephemeral envelope (typing) to a connected peer now, or drops
        #: it; True if the peer took it (set while running).
        self.send_now: Callable[[PeerId, bytes], Awaitable[bool]] | None = None
        #: :attr:`send_now`, dialing the peer first (bounded) if it is not
        #: connected: a live location's start (set while running).
        self.send_dialing: Callable[[PeerId, bytes], Awaitable[bool]] | None = None
        #: Whether a connection to a peer is open now, contact or not (the
        #: host's view while running; :attr:`online` lags it and has contacts only).
        self.connected_to: Callable[[PeerId], bool] = lambda peer: peer in self.online
        #: When each conversation last sent a typing signal (bounded).
        self.typing_sent: OrderedDict[bytes, int] = OrderedDict()
        #: Looks up a peer's prekey bundle in the DHT (set while running).
        self.fetch_bundle: Callable[[PeerId], Awaitable[PrekeyBundle | None]] | None = None
        #: What our DHT node holds for others and refused (records, bytes,
        #: refusals by reason, evictions), as JSON; set while networked.
        self.dht_stats: Callable[[], Mapping[str, object]] | None = None
        #: Whether others can dial us, our relays and hole punching, as
        #: JSON; set while networked.
        self.reachability: Callable[[], Mapping[str, object]] | None = None
        #: The mailboxes we use and the one we offer, as JSON; set while networked.
        self.mailboxes: Callable[[], Mapping[str, object]] | None = None
        #: When this node object was made: its uptime, in :meth:`info`.
        self.started_at_ms = now_ms()
        #: Wakes API clients waiting for events; the store calls it after adding any.
        self.events = EventBus()
        store.set_event_listener(self.events.notify)
        self.messenger.publish = self.events.publish  # typing: live, never stored
        #: Peers with a live connection, as reported by :meth:`peer_online`.
        self.online: set[PeerId] = set()
        #: The profile this node publishes (opt-in) and handle lookups.
        self.profiles = Profiles(store, identity.peer_id, now_ms)
        #: Groups: their logs, and the messenger's hooks for their traffic.
        self._init_groups()
        #: Messages waiting for their recipient's prekeys, and when to look again.
        self._init_key_waits()
        with store.transaction():
            renamed = fix_contact_names(store)
        for old, new in renamed:
            log.warning(
                "contact %s was called %r, a PeerID or another contact's name; renamed to %r",
                old.peer_id,
                old.name,
                new,
            )

    @property
    def peer_id(self) -> PeerId:
        return self.identity.peer_id

    @property
    def name(self) -> str:
        name = self.store.get_setting("name", "")
        return name if isinstance(name, str) else ""

    def info(self) -> dict[str, Any]:
        return {
            "peer_id": str(self.peer_id),
            "name": self.name,
            "addrs": list(self.addrs),
            "version": __version__,
            "started_at_ms": self.started_at_ms,
            "counts": {
                **self.store.counts(),
                "dropped_blocked": self.messenger.dropped_blocked,
                "dropped_unstamped": self.messenger.dropped_unstamped,
                "group_messages_refused": self.group_wire.refused_messages,
                "group_changes_refused": self.group_wire.refused_changes,
            },
            "event_cursor": self.store.event_bounds()[1],
            "dht": None if self.dht_stats is None else dict(self.dht_stats()),
            "reachability": None if self.reachability is None else dict(self.reachability()),
        }

    def invite(self, ttl_s: int = INVITE_TTL_SECONDS) -> str:
        from p2pdm.core.invite import make_invite  # invites: loaded on first use

        return make_invite(
            self.identity,
            self.name,
            self.addrs,
            self.messenger.bundle(),
            self.now_ms() // 1000,
            ttl_s,
        )

    # --- contacts -------------------------------------------------------------

    def contacts(self) -> list[Contact]:
        return self.store.list_contacts()

    def add_contact_from_invite(self, invite: str, name: str | None = None) -> AddedContact:
        """Add a contact from a ``p2pdm:`` invite, named ``name`` or else as the invite
        says (changed if that is a PeerID or taken, see :mod:`p2pdm.node.contact_names`).

        Raises InviteError subclasses, NameRefused for a ``name`` that is a
        PeerID or another contact's.
        """
        from p2pdm.core.invite import parse_invite

        parsed = parse_invite(invite, self.now_ms() // 1000)
        peer = parsed.peer_id
        old = self.store.get_contact(peer)
        if name is not None:
            chosen, from_invite = choose_name(self.store, peer, name), False
        elif old is not None and not old.name_from_invite:
            chosen, from_invite = old.name, False  # the user's name for them wins
        else:
            chosen, from_invite = name_from_invite(self.store, peer, parsed.name), True
        contact = self.messenger.add_contact(
            peer, chosen, parsed.bundle, parsed.addrs, name_from_invite=from_invite
        )
        renamed = parsed.name if from_invite and chosen != parsed.name.strip() else None
        self.keys_came(peer)  # messages waiting for its keys go now
        return AddedContact(contact, renamed)

    def add_contact_by_peer_id(self, peer_id: str, name: str | None = None) -> AddedContact:
        """Add a contact knowing only its PeerID; its prekey bundle is fetched when needed.

        Raises SchemaError for a bad PeerID, NameRefused as above.
        """
        peer = parse_peer(peer_id)
        old = self.store.get_contact(peer)
        if name is not None:
            chosen = choose_name(self.store, peer, name)
        elif old is not None:
            chosen = old.name
        else:
            chosen = name_from_invite(self.store, peer, "")  # the fingerprint
        from_invite = name is None and old is not None and old.name_from_invite
        return AddedContact(self.messenger.add_contact(peer, chosen, name_from_invite=from_invite))

    def delete_contact(self, peer: PeerId) -> None:
        """Forget a contact (the conversation stays); raises NotFound."""
        _check_peer(peer)
        if not self.store.delete_contact(peer):
            raise NotFound(f"no contact {peer}")

    def resolve(self, who: str) -> PeerId:
        """What the user typed, as a PeerId: a PeerID is always itself, else a
        contact's name (ignoring case); raises NotFound. Call it once, at the edge."""
        return resolve_contact(self.store, who)

    def set_contact_addrs(self, peer: PeerId, addrs: list[str]) -> None:
        """Remember a contact's latest addresses and when it was last seen."""
        contact = self.store.get_contact(peer)
        if contact is not None:
            self.store.put_contact(
                replace(contact, addrs=tuple(addrs) or contact.addrs, last_seen_ms=self.now_ms())
            )

    # --- messages -------------------------------------------------------------

    def send_text(
        self,
        peer: PeerId,
        text: str,
        *,
        idempotency: tuple[str, str] | None = None,
        reply_to: bytes | None = None,
    ) -> StoredMessage:
        """Queue a text message to ``peer``; returns it ``queued``.

        With ``idempotency`` (``(scope, key)``), a key used before returns the
        message it made instead of sending again; raises IdempotencyConflict
        if that message went to someone else or said something else.
        """
        return self._send_once(peer, text, idempotency, reply_to).message

    def _send_once(
        self,
        peer: PeerId,
        text: str,
        idempotency: tuple[str, str] | None,
        reply_to: bytes | None = None,
    ) -> Sent:
        """:meth:`send_text`, saying whether the idempotency key had made the message
        before. The one place a send's idempotency key is checked."""
        _check_peer(peer)
        earlier = self._sent_with(idempotency, peer, text)
        if earlier is not None:
            return Sent(earlier, replayed=True)
        self._check_reply(peer, reply_to)
        out = self.messenger.send_text(peer, text, reply_to, idempotency=idempotency)
        self.on_outbox(peer)
        assert out.message is not None
        return Sent(out.message)

    def _check_reply(self, peer: PeerId, reply_to: bytes | None) -> None:
        """Refuse a reply to a message that is not in the conversation with ``peer``."""
        if reply_to is None:
            return
        original = self.store.get_message(reply_to)
        if original is None or original.conversation_id != direct_conversation_id(
            self.peer_id, peer
        ):
            raise SchemaError(
                f"'reply_to' {reply_to.hex()} is not a message of the conversation with {peer}"
            )

    def _sent_with(
        self, idempotency: tuple[str, str] | None, peer: PeerId, text: str
    ) -> StoredMessage | None:
        """The message an idempotency key already made, if any; raises IdempotencyConflict."""
        if idempotency is None:
            return None
        message_id = self.store.sent_with(*idempotency)
        if message_id is None:
            return None
        earlier = self.store.get_message(message_id)
        if earlier is None or earlier.peer != peer or message_text(earlier) != text:
            raise IdempotencyConflict(
                f"idempotency key {idempotency[1][:60]!r} was used for another message; "
                "use a new key for a new message"
            )
        return earlier

    async def send(
        self,
        peer: PeerId,
        text: str,
        *,
        idempotency: tuple[str, str] | None = None,
        reply_to: bytes | None = None,
    ) -> StoredMessage:
        """Like :meth:`send_text`, first fetching the contact's prekey bundle from
        the DHT when there is no session yet and no bundle from an invite; if
        it is not found, the message waits for it (see :meth:`submit`)."""
        return (await self.submit(peer, text, idempotency=idempotency, reply_to=reply_to)).message

    async def submit(
        self,
        peer: PeerId,
        text: str,
        *,
        idempotency: tuple[str, str] | None = None,
        reply_to: bytes | None = None,
    ) -> Sent:
        """:meth:`send`, saying whether the idempotency key had made the message before
        (the API answers a replayed send differently from a new one).

        When ``peer``'s prekeys are not found in the network (or earlier
        messages wait for them), the message is kept ``queued`` and sent once
        they are (:mod:`p2pdm.node.key_waits`)."""
        if await self.keys_or_wait(peer):
            return await self.batcher.submit(
                lambda: self._send_once(peer, text, idempotency, reply_to)
            )
        return await self.batcher.submit(lambda: self._hold_once(peer, text, idempotency, reply_to))

    def _hold_once(
        self,
        peer: PeerId,
        text: str,
        idempotency: tuple[str, str] | None,
        reply_to: bytes | None = None,
    ) -> Sent:
        """:meth:`_send_once` for a message that waits for ``peer``'s prekeys."""
        earlier = self._sent_with(idempotency, peer, text)
        if earlier is not None:
            return Sent(earlier, replayed=True)
        self._check_reply(peer, reply_to)
        return Sent(self.hold_text(peer, text, reply_to, idempotency=idempotency))

    async def keys_or_wait(self, peer: PeerId) -> bool:
        """True if a message to ``peer`` can be sent now (see :meth:`find_keys`);
        False if it must wait for ``peer``'s prekeys: they are not found in the
        network, or earlier messages wait for them. Raises what :meth:`find_keys` raises."""
        if self.waiting_for_keys(peer):
            _check_peer(peer)
            self.messenger.refuse_if_blocked(peer)
            return False
        return await self.find_keys(peer)

    async def ensure_session(self, peer: PeerId) -> None:
        """:meth:`find_keys`, raising SessionError if the prekeys are not found."""
        if not await self.find_keys(peer):
            raise SessionError(
                f"cannot find {peer} in the network to start a session; "
                "add the contact from an invite instead"
            )

    async def find_keys(self, peer: PeerId) -> bool:
        """Refuse a bad PeerID or a blocked peer; fetch ``peer``'s prekey bundle
        from the DHT when there is no session and no bundle from an invite;
        False if none is found there (True when not networked: sending then
        raises SessionError without a bundle)."""
        _check_peer(peer)
        self.messenger.refuse_if_blocked(peer)
        contact = self.store.get_contact(peer)
        needs_bundle = self.store.get_session(peer) is None and (
            contact is None or contact.bundle is None
        )
        if needs_bundle and self.fetch_bundle is not None:
            bundle = await self.fetch_bundle(peer)
            if bundle is None:
                return False
            self.keep_bundle(peer, bundle)
        await self.messenger.stamps.prepare(peer)  # in a worker thread, not in the loop
        return True

    def status_detail(self, message: StoredMessage) -> str:
        """The note of the message's latest status where it says something: how
        many mailboxes hold it (``deposited``), which mailbox refused it and why
        direct delivery failed (while not delivered), why it failed or expired.

        While the message waits, the note is followed by when it was first
        noted and when the next try is: "Bob is not reachable: connection
        refused since 15:18 UTC; next try 15:19 UTC". A group message says for
        which members it failed or expired, and why, even while the others
        have it ("failed for Carol: ...")."""
        lost = self._lost_members(message)
        if message.status in (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED) and lost:
            return lost  # lost for every member: each one's reason
        if message.status not in _DETAILED_STATUSES:
            return lost
        history = self.store.status_history(message.id)
        if not history or not history[-1].detail:
            return lost
        latest = history[-1]
        upcoming = self._next_try_ms(message)
        if upcoming is None:
            waiting = latest.detail
        else:
            when = (
                f"next try {_clock(upcoming)}" if upcoming > self.now_ms() else "trying again now"
            )
            waiting = f"{latest.detail} since {_clock(latest.at_ms)}; {when}"
        return "; ".join(part for part in (waiting, lost) if part)

    def _lost_members(self, message: StoredMessage) -> str:
        """A message to several members that failed or expired for some (while
        others have it or wait): for whom and why, "failed for Carol: ..."."""
        if len(message.recipients) < 2:
            return ""
        parts = []
        for r in message.recipients:  # at most MAX_GROUP_MEMBERS
            if r.status in (DeliveryStatus.FAILED, DeliveryStatus.EXPIRED):
                contact = self.store.get_contact(r.peer)
                who = contact.name if contact is not None and contact.name else r.peer.short()
                word = "failed" if r.status is DeliveryStatus.FAILED else "expired"
                parts.append(f"{word} for {who}" + (f": {r.detail}" if r.detail else ""))
        return "; ".join(parts)

    def _next_try_ms(self, message: StoredMessage) -> int | None:
        """When the outbox tries ``message`` next (its earliest recipient); None if
        nothing of it is queued (delivered, failed, or an incoming message)."""
        if message.direction is not Direction.OUT:
            return None
        peers = [r.peer for r in message.recipients] or [message.peer]
        times = [
            item.next_attempt_at_ms
            for peer in peers
            for item in self.store.outbox_for(peer, limit=_NEXT_TRY_SCAN)
            if item.message_id == message.id
        ]
        if not times and message.status is DeliveryStatus.QUEUED:
            return self.key_lookups.next_at(message.peer)  # no envelope yet: its keys' lookup
        return min(times, default=None)

    def message(self, message_id: str) -> tuple[StoredMessage, list[StatusChange]]:
        mid = parse_message_id(message_id)
        found = self.messenger.message(mid)
        return found, self.store.status_history(mid)

    def conversations(self) -> list[Conversation]:
        return self.store.list_conversations()

    def find_conversation(self, ref: str) -> tuple[bytes, PeerId]:
        """The conversation ``ref`` names, and its peer: a conversation id (32 hex
        characters) of a conversation this node has or of a group (one nobody
        wrote in yet has an empty conversation), else, as an alias of the
        one-to-one conversation, a PeerID or a contact's name. Raises NotFound.
        Call it once, at the edge."""
        conversation_id = parse_conversation_id(ref)
        if conversation_id is not None:
            found = self.store.get_conversation(conversation_id)
            if found is not None:
                return found.id, found.peer
            if self.is_group(conversation_id):
                return conversation_id, self.group_peer(conversation_id)
        try:
            peer = self.resolve(ref)
        except NotFound:
            if conversation_id is None:
                raise
            raise NotFound(f"no conversation {ref}") from None
        return direct_conversation_id(self.peer_id, peer), peer

    def _conversation_id(self, conversation: PeerId | bytes) -> bytes:
        """A conversation id, or the id of the one-to-one conversation with a peer."""
        if isinstance(conversation, bytes) and len(conversation) == CONVERSATION_ID_BYTES:
            return conversation
        _check_peer(conversation)
        assert isinstance(conversation, PeerId)
        return direct_conversation_id(self.peer_id, conversation)

    def messages(
        self, conversation: PeerId | bytes, limit: int = 50, before: int | None = None
    ) -> MessagePage:
        """A page of a conversation (its id, or the peer of a one-to-one one), newest first."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise SchemaError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        return self.store.messages(self._conversation_id(conversation), limit, before)

    def mark_read(self, conversation: PeerId | bytes) -> list[bytes]:
        """Mark a conversation (its id, or the peer of a one-to-one one) read and
        queue read receipts (if enabled); returns the ids."""
        if isinstance(conversation, PeerId):
            peer = conversation
        elif self.is_group(conversation):
            return self.mark_group_read(conversation)
        else:
            found = self.store.get_conversation(self._conversation_id(conversation))
            if found is None:
                return []  # nothing in it to mark
            peer = found.peer
        ids, receipts = self.messenger.mark_read(peer)
        if receipts:
            self.on_outbox(peer)
        return ids

    def mark_message_read(self, message_id: str) -> StoredMessage:
        found, _ = self.message(message_id)
        self.mark_read(
            found.conversation_id if self.is_group(found.conversation_id) else found.peer
        )
        return self.messenger.message(found.id)

    # --- events -----------------------------------------------------------------

    def event_page(
        self,
        since: int,
        limit: int,
        types: Collection[EventType] | None = None,
        peers: Collection[PeerId] | None = None,
    ) -> EventPage:
        """Events with ``id > since``, oldest first (see :class:`EventPage`)."""
        _, newest = self.store.event_bounds()
        if since > newest:  # a cursor from a store since replaced: start again
            return EventPage((), newest, True, True)
        pruned, requests_pruned = self.store.events_pruned()
        events = tuple(self.store.events(since, limit, types, peers))
        cursor = events[-1].id if len(events) == limit else newest
        return EventPage(events, cursor, pruned > since, requests_pruned > since)

    def peer_online(self, peer: PeerId) -> None:
        """Record that a connection to ``peer`` came up (``peer.online``, once)."""
        if peer not in self.online:
            self.online.add(peer)
            self.store.add_event(EventType.PEER_ONLINE, self.now_ms(), peer)

    def peer_offline(self, peer: PeerId) -> None:
        """Record that the last connection to ``peer`` went down (``peer.offline``, once)."""
        if peer in self.online:
            self.online.discard(peer)
            self.store.add_event(EventType.PEER_OFFLINE, self.now_ms(), peer)

    # --- settings -------------------------------------------------------------

    def settings(self) -> dict[str, object]:
        stored = self.store.settings()
        return {key: stored.get(key, default) for key, (_, default) in SETTINGS.items()}

    def update_settings(self, patch: dict[str, object]) -> dict[str, object]:
        patch = {key: _integral(value, SETTINGS.get(key)) for key, value in patch.items()}
        for key, value in patch.items():
            if key not in SETTINGS:
                raise ConfigError(f"unknown setting {key!r}; known: {', '.join(sorted(SETTINGS))}")
            kind, _ = SETTINGS[key]
            if type(value) is not kind:
                raise ConfigError(f"setting {key!r} must be a {kind.__name__}")
            if kind is int and value < 0:  # type: ignore[operator]
                raise ConfigError(f"setting {key!r} cannot be negative")
            if key == "name":
                check_name(str(value))
        with self.store.transaction():
            for key, value in patch.items():
                self.store.set_setting(key, value)
        return self.settings()


def _integral(value: object, setting: tuple[type, object] | None) -> object:
    """A whole number sent as ``12.0`` (JSON does not tell them apart) as an int."""
    if (
        setting is not None
        and setting[0] is int
        and isinstance(value, float)
        and value.is_integer()
    ):
        return int(value)
    return value


def _check_peer(peer: object) -> None:
    """Refuse a name where a PeerId belongs: names are resolved once, at the edge."""
    if not isinstance(peer, PeerId):
        raise TypeError(f"expected a PeerId, not {type(peer).__name__}; Node.resolve gives one")


def parse_peer(text: str) -> PeerId:
    try:
        return PeerId.parse(text)
    except SchemaError:
        raise SchemaError(f"not a PeerID: {text[:60]!r}") from None


def parse_conversation_id(text: str) -> bytes | None:
    """The conversation id ``text`` spells (32 lowercase hex characters), else None."""
    if len(text) != 2 * CONVERSATION_ID_BYTES or text.strip("0123456789abcdef"):
        return None
    return bytes.fromhex(text)


def parse_message_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise SchemaError("a message id is 32 hex characters")
    return raw
