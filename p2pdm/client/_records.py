"""The records the API answers with, as typed dicts (see docs/api.md, "Records").

They are plain ``dict`` at run time: a field a later node adds is simply there.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "AddedContact",
    "BlockedPeer",
    "Claimant",
    "Contact",
    "Conversation",
    "DhtStats",
    "Directory",
    "Event",
    "EventPage",
    "Group",
    "GroupDelivery",
    "GroupMember",
    "GroupPhoto",
    "Message",
    "MessagePage",
    "MessageRequest",
    "NodeInfo",
    "Profile",
    "ReachabilityInfo",
    "Recipient",
    "SearchHit",
]


class Message(TypedDict):
    id: str
    conversation_id: str
    peer: str
    direction: str
    kind: str
    text: str | None
    #: A kind this node's version cannot show: display "unsupported message".
    unsupported: bool
    sent_at_ms: int
    stored_at_ms: int
    status: str
    #: For ``deposited``: how many mailboxes hold it and until when; for
    #: ``failed``/``expired``: why. Empty otherwise.
    status_detail: str
    request: bool
    #: An outgoing message's status per recipient; ``status`` is the least advanced.
    recipients: list[Recipient]
    #: A ``media`` message's files (id, name, mime, size, state, ...); else None.
    media: list[dict[str, Any]] | None
    #: A ``location`` message's place (lat, lon, accuracy_m?, label?); else None.
    location: dict[str, Any] | None
    #: The message it replies to: ``{"id", "text" (a snippet, None when the
    #: original is unavailable), "available"}``; None if it is no reply.
    reply_to: dict[str, Any] | None
    #: emoji -> the peers who reacted with it.
    reactions: dict[str, list[str]]
    edited: bool
    edited_at_ms: int | None
    #: The author unsent it: show "unsent a message".
    unsent: bool
    #: A text's disappearing timer in seconds (0: it stays); a timer notice's new setting.
    timer_s: int
    #: When it disappears; None until its timer starts (when it is read) or without one.
    expires_at_ms: int | None
    #: A notice's words after who did it ("set disappearing messages to 1 day",
    #: a group's change: "added Bob"); else None.
    notice: str | None
    #: The group id of a group's message; None in a one-to-one conversation.
    group: str | None
    #: An own message in a group: how many members it went to, reached and was read by;
    #: None for any other message.
    delivery: GroupDelivery | None


class GroupDelivery(TypedDict):
    """An own group message at a glance: "delivered to 4 of 5, read by 2"."""

    members: int
    delivered: int
    read: int
    #: Members it failed or expired for (each recipient's status_detail says why).
    failed: int


class GroupMember(TypedDict):
    peer: str
    #: The contact's name if the member is a contact; else None.
    name: str | None
    admin: bool
    #: This node's own identity.
    me: bool


class GroupPhoto(TypedDict):
    #: A short hash naming this photo (it changes with the photo).
    tag: str
    #: ``image/webp`` or ``image/jpeg``.
    type: str
    size: int
    #: The API path that serves it (``Client.group_photo_bytes`` reads it).
    url: str


class Group(TypedDict):
    """A group chat as this node sees it (``GET /v1/groups/{group}``)."""

    #: 32 hex characters, random, the same on every member.
    id: str
    name: str
    #: The group's photo (``tag``, ``type``, ``size``, ``url`` to GET it); None: no photo.
    photo: GroupPhoto | None
    members: list[GroupMember]
    me_admin: bool
    #: ``active``, ``request`` (an invitation to accept or decline), ``left`` or ``removed``.
    state: str
    #: The id of the group's conversation (for ``messages``, ``mark_read``, ...).
    conversation: str
    timer_s: int | None
    #: How many signed membership changes this node holds.
    log_length: int
    created_at: float
    created_by: str


class Reacted(Message):
    """A message after a reaction, and for an empty emoji whether one was taken
    back (False: there was none, nothing was sent); None for a reaction."""

    removed: bool | None


class Recipient(TypedDict):
    peer: str
    status: str
    at_ms: int
    #: Why it waits for this recipient, or failed or expired; "" otherwise.
    status_detail: str


class Contact(TypedDict):
    peer_id: str
    name: str
    added_at_ms: int
    addrs: list[str]
    last_seen_ms: int | None
    verified: bool
    blocked: bool
    has_prekeys: bool
    #: The name is the contact's own (from its invite): show ``fingerprint`` beside it.
    name_from_invite: bool
    fingerprint: str


class AddedContact(Contact):
    #: The invite's name when it was a PeerID or taken, and so was changed.
    renamed_from: str | None


class BlockedPeer(TypedDict):
    peer_id: str
    #: The contact's name; None for a stranger.
    name: str | None
    fingerprint: str
    blocked_at_ms: int


class MessageRequest(TypedDict):
    """A stranger's pending message requests."""

    peer_id: str
    #: The name they say they go by (unverified: show the fingerprint beside it).
    name: str | None
    fingerprint: str
    conversation_id: str
    count: int
    #: The start of their first message; None if it is not text.
    preview: str | None
    first_at_ms: int
    last_at_ms: int


class Conversation(TypedDict):
    id: str
    #: The contact; for a group only one of its members (who invited you, or wrote
    #: last): show a group by ``group``.
    peer: str
    #: The contact's name (None if none); for a group, the group's name.
    name: str | None
    last_message_at_ms: int
    unread: int
    request: bool
    #: Disappearing-messages timer of messages sent from now on (0: off).
    timer_s: int
    muted: bool
    archived: bool
    #: Pinned to the top of the list (the list gives the pinned first).
    pinned: bool
    #: A group conversation's ``{"id", "name"}``; None for a one-to-one one.
    group: dict[str, str] | None


class SearchHit(TypedDict):
    """A message whose text matched a search; ``snippet`` marks matches in [ ]."""

    message_id: str
    conversation_id: str
    peer: str
    direction: str
    sent_at_ms: int
    snippet: str


class MessagePage(TypedDict):
    messages: list[Message]
    next_before: int | None


class Event(TypedDict):
    """One event; ignore types you do not know (later versions add some)."""

    #: None for an ephemeral event (``typing``): never stored, not a cursor.
    id: int | None
    type: str
    at_ms: int
    peer: str | None
    message_id: str | None
    status: str | None
    detail: str
    #: The conversation of the message a ``message.*`` event is about.
    conversation_id: str | None
    message: Message | None
    #: ``message.received`` in a conversation that is not muted.
    notify: bool
    #: ``group.*``: the group as it is now (None if since deleted); None otherwise.
    group: Group | None
    #: ``group.created``/``group.changed``: ``{"kind", "by", "peers", "name"?, "timer_s"?}``.
    change: dict[str, Any] | None


class EventPage(TypedDict):
    events: list[Event]
    cursor: int
    gap: bool
    requests_gap: bool


class DhtStats(TypedDict):
    """What the node's DHT store holds (others' records and its own), and what it refused."""

    records: int
    record_bytes: int
    providers: int
    provider_bytes: int
    #: Writes refused, by reason (``rate``, ``peer_cap``, ``store_full``, ``too_large``).
    refused: dict[str, int]
    #: Records evicted to make room.
    evicted: int
    #: Peers in the DHT routing table.
    routing_table: int
    #: Peers with an open connection now.
    connected_peers: int


class ReachabilityInfo(TypedDict):
    """Whether other nodes can dial this one (``public``, ``private``, ``unknown``;
    ``local`` when it listens on loopback only)."""

    status: str
    reached: int
    failed: int
    silent: int
    #: ``server`` or ``client``.
    dht_mode: str
    #: Our addresses through relays (behind NAT).
    relayed_addrs: list[str]
    #: What our relay serves (``run --relay``), else None.
    relay: dict[str, object] | None
    #: p2pdm nodes found on the local network (mDNS).
    lan_peers: int
    #: ``successes``, ``failures`` (DCUtR hole punches), ``direct_dials``.
    hole_punch: dict[str, int]


class NodeInfo(TypedDict):
    peer_id: str
    name: str
    addrs: list[str]
    version: str
    started_at_ms: int
    #: contacts, messages, unread, requests, outbox, waiting_for_keys, requests_dropped, …
    counts: dict[str, int]
    #: The newest event's id: pass it as ``since`` to follow events from now on.
    event_cursor: int
    #: None while the node is not on the network.
    dht: DhtStats | None
    #: None while the node is not on the network.
    reachability: ReachabilityInfo | None
    #: The token of the request: ``name`` (``owner`` for the owner's) and ``scope``.
    token: dict[str, str]
    invite: str


class Profile(TypedDict):
    """What this node publishes (``GET /v1/profile``); ``published`` is False until set."""

    published: bool
    peer_id: str
    fingerprint: str
    name: str
    handle: str
    bio: str
    #: Base64 of a WebP or JPEG file, or None.
    avatar: str | None
    avatar_type: str | None


class Claimant(TypedDict):
    """One node claiming a handle, checked: its signed record names that handle."""

    peer_id: str
    name: str
    bio: str
    avatar: str | None
    avatar_type: str | None
    #: The first digits of the claimant's half of the safety number.
    fingerprint: str
    first_seen_ms: int
    seen_for_s: int
    #: ``self``, ``contact`` or ``stranger``.
    relation: str


class Directory(TypedDict):
    """A handle lookup: the normalised handle and its claimants, likeliest first."""

    handle: str
    claimants: list[Claimant]
