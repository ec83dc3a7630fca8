"""Groups as the local API shows them: serializers and their schemas.

How this works: :func:`group_json` is one group (members with their names
and admin flags, this node's standing, its conversation); :func:`group_tag`
and :func:`delivery_json` are what a conversation and a message show of the
group they belong to. The schemas are merged into the document's components
by the group routes' ``Doc`` rows.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final

from p2pdm.api.schema import BOOL, HEX_ID, INT, NOT_BLANK_PATTERN, PEER_ID, Schema, obj, ref
from p2pdm.api.views_media import BLOB_ID_PATTERN
from p2pdm.core.groups import PHOTO_TYPES, photo_tag, photo_type
from p2pdm.core.model import DeliveryStatus, Direction, EventType, LogEvent, StoredMessage
from p2pdm.limits import (
    DISAPPEARING_TIMERS_S,
    MAX_GROUP_MEMBERS,
    MAX_GROUP_NAME_BYTES,
    MAX_GROUP_PHOTO_BYTES,
)
from p2pdm.node.notices import GROUP_NOTICE_KIND

if TYPE_CHECKING:
    from p2pdm.node.groups import GroupInfo
    from p2pdm.node.node import Node

__all__ = [
    "DELIVERY",
    "GROUP_CHANGE",
    "GROUP_SCHEMAS",
    "GROUP_TAG",
    "MESSAGE_GROUP",
    "delivery_json",
    "group_change_json",
    "group_json",
    "group_tag",
    "photo_json",
]

_GROUP_EVENTS: Final = frozenset(
    {EventType.GROUP_CREATED, EventType.GROUP_CHANGED, EventType.GROUP_REMOVED}
)


def group_change_json(event: LogEvent) -> dict[str, Any] | None:
    """A ``group.created``/``group.changed`` event's change: kind, by, peers (and
    name, timer_s); None for other events."""
    if event.type not in _GROUP_EVENTS or not event.detail:
        return None
    try:
        change = json.loads(event.detail)
    except ValueError:
        return None
    return change if isinstance(change, dict) else None


_ARRIVED: Final = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.READ})
#: A member's status when its envelope will never arrive.
_LOST: Final = frozenset({DeliveryStatus.FAILED, DeliveryStatus.EXPIRED})


def photo_json(info: GroupInfo) -> dict[str, Any] | None:
    """The group's photo as a member shows it (tag, type, size, URL); None when
    it has none, or one that is not a WebP or JPEG (kept in its log, not shown)."""
    photo = info.state.photo
    kind = None if photo is None else photo_type(photo)
    if photo is None or kind is None:
        return None
    tag = photo_tag(photo)
    return {
        "tag": tag,
        "type": kind,
        "size": len(photo),
        # The tag in the URL: a new photo is a new URL, so a cached one is never shown.
        "url": f"/v1/groups/{info.row.id.hex()}/photo?v={tag}",
    }


def group_json(node: Node, info: GroupInfo) -> dict[str, Any]:
    me = node.peer_id
    state = info.state
    members = sorted(state.members, key=lambda p: (p != me, str(p)))
    names = {c.peer_id: c.name for c in node.contacts()}
    return {
        "id": info.row.id.hex(),
        "name": info.row.name or state.name,
        "photo": photo_json(info),
        "members": [
            {"peer": str(p), "name": names.get(p), "admin": p in state.admins, "me": p == me}
            for p in members
        ],
        "me_admin": me in state.admins,
        "state": info.row.state,
        "conversation": info.row.id.hex(),
        "timer_s": state.timer_s or None,
        "log_length": info.log_length,
        "created_at": state.created_at_ms / 1000,
        "created_by": None if state.created_by is None else str(state.created_by),
    }


def group_tag(node: Node, conversation_id: bytes) -> dict[str, Any] | None:
    """``{"id", "name"}`` of the group a conversation is; None for a one-to-one one."""
    row = node.store.get_group(conversation_id)
    return None if row is None else {"id": row.id.hex(), "name": row.name}


def delivery_json(node: Node, message: StoredMessage) -> dict[str, int] | None:
    """How far an own group message got: members, delivered to, read by, failed
    for (expired included); else None (a group's notice is never sent)."""
    if (
        message.direction is not Direction.OUT
        or message.kind == GROUP_NOTICE_KIND
        or not node.is_group(message.conversation_id)
    ):
        return None
    recipients = message.recipients
    return {
        "members": len(recipients),
        "delivered": sum(r.status in _ARRIVED for r in recipients),
        "read": sum(r.status is DeliveryStatus.READ for r in recipients),
        "failed": sum(r.status in _LOST for r in recipients),
    }


_MEMBER: Final[Schema] = obj(
    {
        "peer": PEER_ID,
        "name": {"type": ["string", "null"], "description": "the contact's name, if a contact"},
        "admin": BOOL,
        "me": {**BOOL, "description": "this node"},
    }
)
#: A member as a request names it: a PeerID or a contact's name.
_WHO: Final[Schema] = {"type": "string", "minLength": 1, "maxLength": 128}
_MEMBERS: Final[Schema] = {
    "type": "array",
    "items": _WHO,
    "minItems": 1,
    "maxItems": MAX_GROUP_MEMBERS - 1,
    "description": "PeerIDs or contacts' names",
}
_GROUP_NAME: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_GROUP_NAME_BYTES,
    "pattern": NOT_BLANK_PATTERN,
    "description": f"not blank, at most {MAX_GROUP_NAME_BYTES} bytes of UTF-8",
}
_TIMER: Final[Schema] = {"type": "integer", "enum": list(DISAPPEARING_TIMERS_S)}

GROUP_SCHEMAS: Final[dict[str, Schema]] = {
    "Group": obj(
        {
            "id": HEX_ID,
            "name": {"type": "string"},
            "photo": {
                "oneOf": [
                    obj(
                        {
                            "tag": {
                                "type": "string",
                                "pattern": "^[0-9a-f]{16}$",
                                "description": "a short hash naming this photo",
                            },
                            "type": {"type": "string", "enum": list(PHOTO_TYPES)},
                            "size": {**INT, "maximum": MAX_GROUP_PHOTO_BYTES},
                            "url": {
                                "type": "string",
                                "description": "GET it (the tag in it changes with the photo)",
                            },
                        }
                    ),
                    {"type": "null"},
                ],
                "description": "the group's photo; null when it has none",
            },
            "members": {"type": "array", "items": _MEMBER},
            "me_admin": BOOL,
            "state": {
                "type": "string",
                "enum": ["active", "request", "left", "removed"],
                "description": "request: an invitation from someone who is not a contact",
            },
            "conversation": {**HEX_ID, "description": "its conversation's id (the group id)"},
            "timer_s": {
                "type": ["integer", "null"],
                "description": "the group's disappearing timer; null when off",
            },
            "log_length": {**INT, "description": "changes in the group's signed log"},
            "created_at": {"type": "number", "description": "seconds since the Unix epoch"},
            "created_by": {"oneOf": [PEER_ID, {"type": "null"}]},
        }
    ),
    "GroupList": obj({"groups": {"type": "array", "items": ref("Group")}}),
    "NewGroup": obj(
        {"name": _GROUP_NAME, "members": _MEMBERS, "timer_s": _TIMER}, optional=("timer_s",)
    ),
    "GroupMembers": obj({"members": _MEMBERS}),
    "GroupPatch": obj(
        {
            "name": _GROUP_NAME,
            "photo": {
                "type": ["string", "null"],
                "pattern": BLOB_ID_PATTERN,
                "description": "an uploaded picture (POST /v1/media: JPEG, PNG, WebP or GIF) "
                "that the node makes a square WebP of at most "
                f"{MAX_GROUP_PHOTO_BYTES} bytes with no metadata; null removes the photo",
            },
            "timer_s": _TIMER,
            "admins": obj(
                {
                    "add": {"type": "array", "items": _WHO, "maxItems": MAX_GROUP_MEMBERS},
                    "remove": {"type": "array", "items": _WHO, "maxItems": MAX_GROUP_MEMBERS},
                },
                optional=("add", "remove"),
            ),
        },
        optional=("name", "photo", "timer_s", "admins"),
    ),
}

#: What a message and a conversation show of their group.
GROUP_TAG: Final[Schema] = {
    "oneOf": [obj({"id": HEX_ID, "name": {"type": "string"}}), {"type": "null"}],
    "description": "the group it is; null for a one-to-one conversation",
}
DELIVERY: Final[Schema] = {
    "oneOf": [
        obj({"members": INT, "delivered": INT, "read": INT, "failed": INT}),
        {"type": "null"},
    ],
    "description": "an own group message: to how many members, how many have it, "
    "how many read it, for how many it failed or expired (each member's "
    "'status_detail' in 'recipients' says why); null otherwise",
}
GROUP_CHANGE: Final[Schema] = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "kind": {
                    "type": "string",
                    "description": "create, add, remove, leave, rename, photo, promote, "
                    "demote, timer",
                },
                "by": PEER_ID,
                "peers": {"type": "array", "items": PEER_ID},
                "name": {"type": "string"},
                "timer_s": {"type": "integer"},
                "photo": {
                    "type": ["string", "null"],
                    "description": "a photo change: the new photo's tag; null when removed",
                },
            },
            "required": ["kind", "by", "peers"],
            "additionalProperties": False,
        },
        {"type": "null"},
    ],
    "description": "group.created, group.changed: the change that was made",
}
MESSAGE_GROUP: Final[Schema] = {
    "type": ["string", "null"],
    "pattern": "^[0-9a-f]{32}$",
    "description": "the id of the group the message is in; null for one-to-one",
}
