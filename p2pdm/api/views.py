"""The API's record views: each record as JSON, beside the JSON Schema of that JSON.

How this works: records from the store become plain JSON dictionaries through
one ``*_json`` function each, and the schema of each shape sits right after
the function that writes it, so the two are read (and changed) together.
:data:`SCHEMAS` names them for ``openapi.py``; a test checks real responses
against the served document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from p2pdm.api.schema import (
    BOOL,
    HEX_ID,
    INT,
    MS,
    PEER_ID,
    PEER_ID_SCHEMA,
    SCOPE,
    STRING,
    TOKEN_NAME,
    Schema,
    obj,
    ref,
)
from p2pdm.api.views_groups import (
    DELIVERY,
    GROUP_CHANGE,
    GROUP_TAG,
    MESSAGE_GROUP,
    delivery_json,
    group_change_json,
)
from p2pdm.api.views_media import (
    MEDIA_SCHEMAS,
    BlobLookup,
    location_json,
    media_caption,
    media_json,
)
from p2pdm.core.eventlog import MUTED_DETAIL
from p2pdm.core.identity import PeerId
from p2pdm.core.model import (
    Contact,
    Conversation,
    DeliveryStatus,
    Direction,
    Event,
    EventType,
    LogEvent,
    Recipient,
    StatusChange,
    StoredMessage,
)
from p2pdm.limits import DISAPPEARING_TIMERS_S, MAX_STORED_EVENTS, MAX_STORED_REQUEST_EVENTS
from p2pdm.node.actions import MessageExtras
from p2pdm.node.contact_names import fingerprint
from p2pdm.node.messenger import is_unsupported, message_text
from p2pdm.node.notices import message_notice, message_timer
from p2pdm.node.tokens import token_json
from p2pdm.store.base import SearchHit

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = [
    "SCHEMAS",
    "contact_json",
    "conversation_json",
    "event_json",
    "message_json",
    "message_view",
    "new_text_view",
    "recipient_json",
    "search_hit_json",
    "status_json",
    "token_json",
]

# --- node ------------------------------------------------------------------------

#: ``Node.info()`` plus a fresh invite (``GET /v1/node``).
NODE: Final[Schema] = obj(
    {
        "peer_id": PEER_ID,
        "name": STRING,
        "addrs": {"type": "array", "items": STRING},
        "version": STRING,
        "started_at_ms": {**MS, "description": "when the node started"},
        "counts": {
            "type": "object",
            "additionalProperties": INT,
            "description": "contacts, messages, unread, requests, outbox, "
            "waiting_for_keys (messages to contacts whose keys are not found yet), "
            "requests_dropped (pending requests dropped over the caps, ever), "
            "actions_refused (reactions, edits, unsends refused on receipt, ever), "
            "held_actions_dropped (actions whose message never arrived, ever), "
            "dropped_blocked (envelopes from blocked peers dropped since start), "
            "dropped_unstamped (strangers' envelopes without a valid request stamp, "
            "since start), group_messages_refused (group messages whose author is not "
            "a member, since start), group_changes_refused (forged or unauthorised "
            "group changes, since start)",
        },
        "event_cursor": {
            **INT,
            "description": "the id of the newest event: pass it as 'since' to "
            "follow events from now on",
        },
        "dht": {
            "oneOf": [{"type": "null"}, ref("DhtStats")],
            "description": "what this node's DHT store holds and refused; "
            "null when it is not on the network",
        },
        "reachability": {
            "oneOf": [{"type": "null"}, ref("Reachability")],
            "description": "whether other nodes can dial this one, its relays and "
            "hole punching; null when it is not on the network",
        },
        "token": {
            **obj({"name": STRING, "scope": SCOPE}),
            "description": "the token of this request: its name ('owner' for the "
            "owner's) and scope",
        },
        "invite": {"type": "string", "description": "a fresh p2pdm: invite"},
    }
)

DHT_STATS: Final[Schema] = obj(
    {
        "records": {**INT, "description": "value records held (others' and our own)"},
        "record_bytes": INT,
        "providers": {**INT, "description": "provider records held"},
        "provider_bytes": INT,
        "refused": {
            "type": "object",
            "additionalProperties": INT,
            "description": "writes refused since start, by reason: rate, "
            "peer_cap, store_full, too_large",
        },
        "evicted": {**INT, "description": "records evicted to make room"},
        "routing_table": {**INT, "description": "peers in the DHT routing table"},
        "connected_peers": {**INT, "description": "peers with an open connection now"},
    }
)

REACHABILITY: Final[Schema] = obj(
    {
        "status": {
            "type": "string",
            "enum": ["public", "private", "unknown", "local"],
            "description": "public: other nodes can dial this one; private: they "
            "cannot (behind a router or firewall); unknown: too few peers agree yet; "
            "local: it listens on loopback only, so only nodes on this computer can",
        },
        "reached": {**INT, "description": "peers that dialed us back at the last check"},
        "failed": {**INT, "description": "peers that tried to dial us back and could not"},
        "silent": {**INT, "description": "peers asked that gave no answer"},
        "dht_mode": {
            "type": "string",
            "enum": ["server", "client"],
            "description": "server: this node answers DHT queries (public nodes only, "
            "unless forced)",
        },
        "relayed_addrs": {
            "type": "array",
            "items": STRING,
            "description": "addresses through the relays this node holds reservations "
            "on (behind NAT); published in its signed record",
        },
        "lan_peers": {**INT, "description": "p2pdm nodes found on the local network (mDNS)"},
        "hole_punch": {
            **obj({"successes": INT, "failures": INT, "direct_dials": INT}),
            "description": "upgrades of relayed connections to direct ones since start: "
            "hole punches (DCUtR) that succeeded and failed, and relayed peers reached "
            "by a plain direct dial",
        },
        "relay": {
            "oneOf": [{"type": "null"}, ref("RelayStats")],
            "description": "what this node's relay serves; null unless it runs with --relay",
        },
    }
)

RELAY_STATS: Final[Schema] = obj(
    {
        "reservations": {**INT, "description": "reservations held for nodes behind NAT"},
        "circuits_open": INT,
        "circuits_total": {**INT, "description": "circuits relayed since start"},
        "circuits_cut": {**INT, "description": "circuits ended at their byte or time limit"},
        "refused": {
            "type": "object",
            "additionalProperties": INT,
            "description": "requests refused since start, by reason: reservation_limit, "
            "no_reservation, circuit_limit, malformed",
        },
    }
)

# --- contacts --------------------------------------------------------------------


def contact_json(contact: Contact, *, has_session: bool = False) -> dict[str, Any]:
    return {
        "peer_id": str(contact.peer_id),
        "name": contact.name,
        "added_at_ms": contact.added_at_ms,
        "addrs": list(contact.addrs),
        "last_seen_ms": contact.last_seen_ms,
        "verified": contact.verified,
        "blocked": contact.blocked,
        "has_prekeys": contact.bundle is not None or has_session,
        "name_from_invite": contact.name_from_invite,
        "fingerprint": fingerprint(contact.peer_id),
    }


_CONTACT_PROPERTIES: Final[dict[str, Schema]] = {
    "peer_id": PEER_ID,
    "name": {
        "type": "string",
        "description": "unique among the contacts ignoring case, and never a PeerID",
    },
    "added_at_ms": MS,
    "addrs": {"type": "array", "items": STRING},
    "last_seen_ms": {"type": ["integer", "null"]},
    "verified": BOOL,
    "blocked": BOOL,
    "has_prekeys": {
        "type": "boolean",
        "description": "whether a first message can be encrypted right away "
        "(keys from an invite, or a session the peer started by writing)",
    },
    "name_from_invite": {
        "type": "boolean",
        "description": "the name is the one the contact gave itself (in its invite), not "
        "one you chose: show 'fingerprint' next to it",
    },
    "fingerprint": {
        "type": "string",
        "description": "the contact's short fingerprint (the last 8 characters of its PeerID)",
    },
}
#: ``POST /v1/contacts`` adds ``renamed_from`` to the contact.
ADDED_CONTACT: Final[Schema] = obj(
    {
        **_CONTACT_PROPERTIES,
        "renamed_from": {
            "type": ["string", "null"],
            "description": "the name in the invite, when it was a PeerID or another "
            "contact's name and so was changed (the fingerprint appended, or the "
            "fingerprint alone); null when saved as given",
        },
    }
)

# --- messages --------------------------------------------------------------------


def message_json(
    message: StoredMessage,
    detail: str = "",
    extras: MessageExtras | None = None,
    blobs: BlobLookup | None = None,
    group: tuple[bytes, dict[str, int] | None] | None = None,
) -> dict[str, Any]:
    """``detail``: the note of the message's latest status (see Node.status_detail);
    ``extras``: its reply snippet and reactions (Node.extras); ``blobs``: finds
    the records of a media message's files (their state); ``group``: the id of
    the group it is in and, if its own, its delivery counts (views_groups)."""
    extras = extras or MessageExtras()
    reply = None
    if extras.reply_to is not None:
        reply = {
            "id": extras.reply_to.hex(),
            "text": extras.reply_snippet,
            "available": extras.reply_snippet is not None,
        }
    text = message_text(message)
    media = media_json(message, blobs)
    if not detail and media:  # an incoming file still on its way says why
        detail = next((item["detail"] for item in media if item["detail"]), "")
    return {
        "id": message.id.hex(),
        "conversation_id": message.conversation_id.hex(),
        "peer": str(message.peer),
        "direction": message.direction.value,
        "kind": message.kind,
        "text": text if text is not None else media_caption(message),
        "unsupported": is_unsupported(message),
        "sent_at_ms": message.sent_at_ms,
        "stored_at_ms": message.stored_at_ms,
        "status": message.status.value,
        "status_detail": detail,
        "request": message.request,
        "recipients": [recipient_json(r) for r in message.recipients],
        "media": media,
        "location": location_json(message),
        "reply_to": reply,
        "reactions": {
            emoji: [str(peer) for peer in peers] for emoji, peers in extras.reactions.items()
        },
        "edited": message.edited_at_ms is not None,
        "edited_at_ms": message.edited_at_ms,
        "unsent": message.unsent,
        "timer_s": message_timer(message),
        "expires_at_ms": message.expires_at_ms,
        "notice": message_notice(message),
        "group": None if group is None else group[0].hex(),
        "delivery": None if group is None else group[1],
    }


def message_view(node: Node, message: StoredMessage, detail: str | None = None) -> dict[str, Any]:
    """:func:`message_json` of a message as ``node`` has it now: its status note
    (``detail`` when given), reply snippet, reactions and files."""
    shown = node.status_detail(message) if detail is None else detail
    extras = node.extras([message])[message.id]
    return message_json(message, shown, extras, node.store.get_blob, group_of(node, message))


def new_text_view(node: Node, message: StoredMessage, detail: str | None = None) -> dict[str, Any]:
    """:func:`message_view` of a text message to a contact that this request
    has just made, not a reply: it has no reactions yet and is in no group,
    so nothing is read back from the store for them (``POST /v1/messages``
    answers every new message so)."""
    shown = node.status_detail(message) if detail is None else detail
    return message_json(message, shown)


def group_of(node: Node, message: StoredMessage) -> tuple[bytes, dict[str, int] | None] | None:
    """The group a message is in and its delivery counts, for :func:`message_json`."""
    if not node.is_group(message.conversation_id):
        return None
    return message.conversation_id, delivery_json(node, message)


_STATUS: Final[Schema] = {"type": "string", "enum": [s.value for s in DeliveryStatus]}
#: The properties of a message's JSON (answers that carry more extend them).
MESSAGE_PROPERTIES: Final[dict[str, Schema]] = {
    "id": HEX_ID,
    "conversation_id": HEX_ID,
    "peer": {**PEER_ID, "description": "the other party: recipient or sender"},
    "direction": {"type": "string", "enum": [d.value for d in Direction]},
    "kind": {
        "type": "string",
        "description": "'text', 'media' (files: see 'media'), 'location', 'timer' and "
        "'group_notice' (notices: see 'notice'); later versions add kinds (see 'unsupported')",
    },
    "text": {
        "type": ["string", "null"],
        "description": "the text of a 'text' message; a 'media' message's caption",
    },
    "unsupported": {
        "type": "boolean",
        "description": "a message of a kind this version cannot show (sent by a newer "
        "version): shown as an unsupported message; kept, so a later version can show it",
    },
    "sent_at_ms": {**MS, "description": "the sender's clock"},
    "stored_at_ms": {**MS, "description": "when this node stored it"},
    "status": _STATUS,
    "status_detail": {
        "type": "string",
        "description": "for 'deposited': how many mailboxes hold it and until when; "
        "while not delivered: which mailboxes refused it and why direct delivery failed; "
        "for 'failed'/'expired': why; for an incoming file still on its way, why it "
        'waits ("waiting for Alice to come online to send the file"); else empty',
    },
    "request": {
        "type": "boolean",
        "description": "an incoming message from someone who is not a contact",
    },
    "recipients": {
        "type": "array",
        "items": ref("Recipient"),
        "description": "an outgoing message's status per recipient (one for a one-to-one "
        "message); 'status' is the least advanced of theirs. Empty for incoming messages",
    },
    "media": {
        "oneOf": [{"type": "array", "items": ref("MediaItem")}, {"type": "null"}],
        "description": "the files of a 'media' message; null for other kinds",
    },
    "location": {
        "oneOf": [ref("Location"), {"type": "null"}],
        "description": "the place of a 'location' message; null for other kinds",
    },
    "reply_to": {
        "oneOf": [
            {"type": "null"},
            obj(
                {
                    "id": HEX_ID,
                    "text": {
                        "type": ["string", "null"],
                        "description": "the start of the quoted message's text; null when "
                        "the original message is unavailable (unsent, deleted, never arrived)",
                    },
                    "available": BOOL,
                }
            ),
        ],
        "description": "the message this one replies to, with a snippet of it",
    },
    "reactions": {
        "type": "object",
        "additionalProperties": {"type": "array", "items": PEER_ID},
        "description": "emoji -> the peers who reacted with it (one reaction per person)",
    },
    "edited": {"type": "boolean", "description": "the author changed the text"},
    "edited_at_ms": {
        "type": ["integer", "null"],
        "description": "the author's time of the latest edit",
    },
    "unsent": {
        "type": "boolean",
        "description": "the author unsent it: the text is gone (show 'unsent a message')",
    },
    "timer_s": {
        "type": "integer",
        "enum": list(DISAPPEARING_TIMERS_S),
        "description": "a text: its disappearing timer (0: it stays); a 'timer' notice: "
        "the conversation's new timer",
    },
    "expires_at_ms": {
        "type": ["integer", "null"],
        "minimum": 0,
        "description": "when it disappears from this node; null until its timer starts "
        "(when the recipient reads it) or if it has none",
    },
    "group": MESSAGE_GROUP,
    "delivery": DELIVERY,
    "notice": {
        "type": ["string", "null"],
        "description": "a notice kind's words, after who did it: 'set disappearing "
        "messages to 1 day', 'turned off disappearing messages'; a group's change "
        "('group_notice', local): 'added Bob', 'left', 'removed you'; null for a message",
    },
}


def recipient_json(recipient: Recipient) -> dict[str, Any]:
    return {
        "peer": str(recipient.peer),
        "status": recipient.status.value,
        "at_ms": recipient.at_ms,
        "status_detail": recipient.detail if recipient.status in _NOTED_RECIPIENT else "",
    }


#: A recipient's statuses whose detail is shown: why it waits, why it failed.
_NOTED_RECIPIENT: Final = frozenset(
    {
        DeliveryStatus.QUEUED,
        DeliveryStatus.SENT,
        DeliveryStatus.DEPOSITED,
        DeliveryStatus.FAILED,
        DeliveryStatus.EXPIRED,
    }
)


RECIPIENT: Final[Schema] = obj(
    {
        "peer": PEER_ID,
        "status": _STATUS,
        "at_ms": {**MS, "description": "when it reached this status"},
        "status_detail": {
            "type": "string",
            "description": "for this recipient: why it waits ('Bob is not reachable: ...'), "
            "how many mailboxes hold it, why it failed or expired; '' otherwise",
        },
    }
)


def status_json(change: StatusChange) -> dict[str, Any]:
    return {"status": change.status.value, "at_ms": change.at_ms, "detail": change.detail}


STATUS_CHANGE: Final[Schema] = obj({"status": _STATUS, "at_ms": MS, "detail": STRING})

#: ``GET /v1/conversations/{conversation}/messages``.
MESSAGE_PAGE: Final[Schema] = obj(
    {
        "messages": {"type": "array", "items": ref("Message")},
        "next_before": {
            "type": ["integer", "null"],
            "description": "pass as 'before' for the next (older) page; null at the end",
        },
    }
)

# --- conversations ---------------------------------------------------------------


def conversation_json(
    conversation: Conversation,
    names: Mapping[PeerId, str],
    live: Sequence[dict[str, Any]] = (),
    group: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A conversation; ``live`` its live locations now (api/handlers_location.py),
    ``group`` the group it is (views_groups.group_tag), None for one-to-one."""
    return {
        "id": conversation.id.hex(),
        # For a group, one member (who invited us, then the last to write): kept so the
        # field stays a PeerID for older clients; the group's own name is ``name``.
        "peer": str(conversation.peer),
        "name": group["name"] if group is not None else names.get(conversation.peer),
        "last_message_at_ms": conversation.last_message_at_ms,
        "unread": conversation.unread,
        "request": conversation.request,
        "timer_s": conversation.timer_s,
        "muted": conversation.muted,
        "archived": conversation.archived,
        "pinned": conversation.pinned_at_ms is not None,
        "live_locations": list(live),
        "group": group,
    }


CONVERSATION: Final[Schema] = obj(
    {
        "id": HEX_ID,
        "peer": {
            **PEER_ID,
            "description": "the contact; for a group, only one of its members (who invited "
            "you, or wrote last): `group` names the group",
        },
        "name": {
            "type": ["string", "null"],
            "description": "the contact's name (null if none); for a group, the group's name",
        },
        "last_message_at_ms": MS,
        "unread": INT,
        "request": {
            "type": "boolean",
            "description": "every message in it is a message request",
        },
        "timer_s": {
            "type": "integer",
            "enum": list(DISAPPEARING_TIMERS_S),
            "description": "disappearing-messages timer of messages sent from now on (0: off)",
        },
        "muted": {"type": "boolean", "description": "its new messages notify nobody"},
        "archived": {"type": "boolean", "description": "moved out of the main list"},
        "pinned": {
            "type": "boolean",
            "description": "pinned to the top of the list (the list gives the pinned "
            "first, the latest pinned on top, then the others by their last message)",
        },
        "live_locations": {
            "type": "array",
            "items": ref("LiveLocation"),
            "description": "live locations shared in it now (own first); never stored",
        },
        "group": GROUP_TAG,
    }
)


def search_hit_json(hit: SearchHit) -> dict[str, Any]:
    return {
        "message_id": hit.message_id.hex(),
        "conversation_id": hit.conversation_id.hex(),
        "peer": str(hit.peer),
        "direction": hit.direction,
        "sent_at_ms": hit.sent_at_ms,
        "snippet": hit.snippet,
    }


#: ``GET /v1/search``.
SEARCH_RESULTS: Final[Schema] = obj(
    {
        "results": {
            "type": "array",
            "items": obj(
                {
                    "message_id": HEX_ID,
                    "conversation_id": HEX_ID,
                    "peer": PEER_ID,
                    "direction": {"type": "string", "enum": [d.value for d in Direction]},
                    "sent_at_ms": MS,
                    "snippet": {
                        "type": "string",
                        "description": "the text around the match, each match in [ ], "
                        "cuts marked …",
                    },
                }
            ),
            "description": "newest first",
        }
    }
)

# --- events ----------------------------------------------------------------------


def event_json(
    event: LogEvent,
    message: StoredMessage | None,
    extras: MessageExtras | None = None,
    blobs: BlobLookup | None = None,
    group: tuple[bytes, dict[str, int] | None] | None = None,
    group_view: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event; ``message`` is the message of a ``message.*`` event, as stored now
    (in the group ``group`` names); ``group_view``: a ``group.*`` event's group now.
    An ephemeral event (never stored, so not an :class:`Event`) has ``id`` None."""
    return {
        "id": event.id if isinstance(event, Event) else None,
        "type": event.type.value,
        "at_ms": event.at_ms,
        "peer": None if event.peer is None else str(event.peer),
        "message_id": None if event.message_id is None else event.message_id.hex(),
        "status": None if event.status is None else event.status.value,
        "detail": event.detail,
        "conversation_id": None if event.conversation_id is None else event.conversation_id.hex(),
        "message": None if message is None else message_json(message, "", extras, blobs, group),
        "notify": event.type is EventType.MESSAGE_RECEIVED and event.detail != MUTED_DETAIL,
        "group": group_view,
        "change": group_change_json(event),
    }


EVENT: Final[Schema] = obj(
    {
        "id": {
            "type": ["integer", "null"],
            "description": "increasing; the cursor to resume from (null: an ephemeral "
            "event such as typing, never stored, so not resumable)",
        },
        "type": {
            "type": "string",
            "description": "one of "
            + ", ".join(t.value for t in EventType)
            + "; later versions add types, which clients must ignore",
        },
        "at_ms": MS,
        "peer": {"type": ["string", "null"], "description": "the other party"},
        "message_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$"},
        "status": {
            "type": ["string", "null"],
            "description": "message.status: the new status",
        },
        "detail": {
            "type": "string",
            "description": "message.reaction: the emoji (empty: the reaction was taken back)",
        },
        "conversation_id": {
            **HEX_ID,
            "type": ["string", "null"],
            "description": "message.*: the message's conversation",
        },
        "message": {
            "oneOf": [ref("Message"), {"type": "null"}],
            "description": "message.received, message.reaction, message.edited, "
            "message.unsent: the message as stored now (null if since deleted)",
        },
        "notify": {
            "type": "boolean",
            "description": "message.received in a conversation that is not muted: "
            "worth a notification (a muted one is still stored and listed)",
        },
        "group": {
            "oneOf": [ref("Group"), {"type": "null"}],
            "description": "group.*: the group as it is now (null if since deleted)",
        },
        "change": GROUP_CHANGE,
    }
)
#: ``GET /v1/events/poll``.
EVENT_PAGE: Final[Schema] = obj(
    {
        "events": {"type": "array", "items": ref("Event")},
        "cursor": {
            "type": "integer",
            "description": "pass as 'since' next time (past every event looked at)",
        },
        "gap": {
            "type": "boolean",
            "description": "events after 'since' were dropped before you read them "
            f"(the log keeps the newest {MAX_STORED_EVENTS}; request events do not "
            "count and never set it)",
        },
        "requests_gap": {
            "type": "boolean",
            "description": "events about message requests after 'since' were pruned "
            f"(kept apart: the newest {MAX_STORED_REQUEST_EVENTS}); reload the requests",
        },
    }
)

# --- tokens (``token_json`` is in p2pdm.node.tokens: the CLI prints it too) -------

_TOKEN_PROPERTIES: Final[dict[str, Schema]] = {
    "name": TOKEN_NAME,
    "scope": SCOPE,
    "contacts": {
        "type": "array",
        "items": PEER_ID,
        "description": "the contacts it is limited to; empty: every contact",
    },
    "created_at_ms": MS,
}
TOKEN: Final[Schema] = obj(_TOKEN_PROPERTIES)
#: ``POST /v1/tokens`` adds the secret, shown once.
CREATED_TOKEN: Final[Schema] = obj(
    {
        **_TOKEN_PROPERTIES,
        "token": {"type": "string", "description": "the secret; shown only this once"},
    }
)

#: ``GET /v1/mailboxes``: the mailboxes this node uses, and the one it offers.
MAILBOXES: Final[Schema] = obj(
    {
        "networked": {"type": "boolean", "description": "false: off the network, nothing known"},
        "used": {
            "type": "array",
            "items": obj(
                {
                    "peer_id": PEER_ID,
                    "addrs": {"type": "array", "items": STRING},
                    "named": {
                        "type": "boolean",
                        "description": "named in this node's signed record (--mailbox-peer); "
                        "else one of the closest mailbox providers the DHT last listed",
                    },
                }
            ),
            "description": "where this node fetches its envelopes from, best first",
        },
        "offered": {
            "oneOf": [
                {"type": "null"},
                obj(
                    {
                        "envelopes": {**INT, "description": "envelopes held for others"},
                        "bytes": INT,
                        "recipients": {
                            **INT,
                            "description": "distinct recipients envelopes are held for",
                        },
                        "max_envelopes": INT,
                        "max_bytes": INT,
                        "max_envelopes_per_recipient": INT,
                        "max_bytes_per_recipient": INT,
                        "retention_s": INT,
                        "withdrawn": {
                            **INT,
                            "description": "envelopes their depositors took back "
                            "(withdraw, after an unsend) since the node started",
                        },
                    }
                ),
            ],
            "description": "what this node's mailbox (--mailbox) holds against its "
            "quotas; null when it offers none",
        },
        "withdrawals": obj(
            {
                "pending": {
                    **INT,
                    "description": "deposits of unsent messages (and their files' "
                    "chunks) still to take back from mailboxes",
                },
                "withdrawn": {
                    **INT,
                    "description": "envelopes mailboxes gave back since the node started",
                },
            }
        ),
    }
)

#: Every record shape, by its name in the document.
SCHEMAS: Final[dict[str, Schema]] = {
    "PeerID": PEER_ID_SCHEMA,
    "Node": NODE,
    "DhtStats": DHT_STATS,
    "Reachability": REACHABILITY,
    "RelayStats": RELAY_STATS,
    "Mailboxes": MAILBOXES,
    "Contact": obj(_CONTACT_PROPERTIES),
    "AddedContact": ADDED_CONTACT,
    "ContactList": obj({"contacts": {"type": "array", "items": ref("Contact")}}),
    "Message": obj(MESSAGE_PROPERTIES),
    "Recipient": RECIPIENT,
    "StatusChange": STATUS_CHANGE,
    "MessageWithHistory": obj(
        {**MESSAGE_PROPERTIES, "history": {"type": "array", "items": ref("StatusChange")}}
    ),
    "MessagePage": MESSAGE_PAGE,
    "Conversation": CONVERSATION,
    "ConversationList": obj({"conversations": {"type": "array", "items": ref("Conversation")}}),
    "ReadResult": obj(
        {"read": {"type": "array", "items": HEX_ID, "description": "ids marked read"}}
    ),
    "Event": EVENT,
    "SearchResults": SEARCH_RESULTS,
    "EventPage": EVENT_PAGE,
    "Token": TOKEN,
    "TokenList": obj({"tokens": {"type": "array", "items": ref("Token")}}),
    "CreatedToken": CREATED_TOKEN,
    **MEDIA_SCHEMAS,
}
