"""The route rows of groups (see ``app.ROUTES``; handlers in ``handlers_groups``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers_groups import (
    accept_group,
    add_group_members,
    block_group,
    create_group,
    decline_group,
    get_group,
    get_group_photo,
    leave_group,
    list_groups,
    remove_group_member,
    update_group,
)
from p2pdm.api.payload import Handler
from p2pdm.api.schema import Doc, Route, path_param, ref
from p2pdm.api.views_groups import GROUP_SCHEMAS
from p2pdm.core.model import TokenScope

__all__ = ["GROUP_ROUTES"]

_GROUP: Final = path_param(
    "group",
    {"type": "string", "minLength": 1, "maxLength": 256},
    "the group's id (32 hex characters), or its name when no other group has it",
)
_PEER: Final = path_param(
    "peer", {"type": "string", "minLength": 1, "maxLength": 128}, "a PeerID or a contact's name"
)
_OK: Final = ("200", ref("Group"), "the group now")
_CHANGE_ERRORS: Final = {
    "400": "the body is malformed",
    "403": "the token is limited to some contacts",
    "404": "no such group (or member)",
    "413": "",
    "415": "",
    "422": "not allowed: only admins change a group, members send; or a member cannot "
    "be reached to start a session",
}
_ANSWER_ERRORS: Final = {
    "403": "the token is limited to some contacts",
    "404": "no such group",
    "422": "the group is not an invitation",
}


def _answer(path: str, handler: Handler, op: str, summary: str) -> Route:
    return Route(
        f"/v1/groups/{{group}}/{path}",
        "POST",
        handler,
        TokenScope.ADMIN,
        Doc(op, summary, _OK, _ANSWER_ERRORS, parameters=(_GROUP,)),
    )


GROUP_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/groups",
        "GET",
        list_groups,
        TokenScope.READ,
        Doc(
            "listGroups",
            "The groups this node is in or invited to",
            ("200", ref("GroupList"), "the groups"),
            {"403": "the token is limited to some contacts"},
            schemas=GROUP_SCHEMAS,
        ),
    ),
    Route(
        "/v1/groups",
        "POST",
        create_group,
        TokenScope.SEND,
        Doc(
            "createGroup",
            "Make a group of this node and 1..31 members; each is told at once",
            ("201", ref("Group"), "the new group; this node is its first admin"),
            {**_CHANGE_ERRORS, "404": "no contact of that name"},
            body=ref("NewGroup"),
        ),
    ),
    Route(
        "/v1/groups/{group}",
        "GET",
        get_group,
        TokenScope.READ,
        Doc(
            "getGroup",
            "One group: members, admins, log length",
            _OK,
            {"403": "the token is limited to some contacts", "404": "no such group"},
            parameters=(_GROUP,),
        ),
    ),
    Route(
        "/v1/groups/{group}",
        "PATCH",
        update_group,
        TokenScope.SEND,
        Doc(
            "updateGroup",
            "Rename a group, set or remove its photo, set its timer, promote or demote "
            "admins (admins only)",
            _OK,
            {
                **_CHANGE_ERRORS,
                "404": "no such group or member, or 'photo' names no upload of this node",
                "422": f"{_CHANGE_ERRORS['422']}; media_refused: 'photo' is no JPEG, PNG, "
                "WebP or GIF picture, or too large (bytes or pixels)",
            },
            parameters=(_GROUP,),
            body=ref("GroupPatch"),
        ),
    ),
    Route(
        "/v1/groups/{group}/photo",
        "GET",
        get_group_photo,
        TokenScope.READ,
        Doc(
            "getGroupPhoto",
            "The group's photo (WebP or JPEG, at most 32 KiB), with nosniff and a sandbox",
            ("200", {"type": "string", "format": "binary"}, "the picture"),
            {"403": "the token is limited to some contacts", "404": "no such group, or no photo"},
            parameters=(
                _GROUP,
                {
                    "name": "v",
                    "in": "query",
                    "required": False,
                    "description": "the photo's tag, as the group's 'photo.url' gives it: "
                    "ignored by the node, it makes each photo its own URL for caches",
                    "schema": {"type": "string", "maxLength": 64},
                },
            ),
            ok_media_type="image/*",
        ),
    ),
    Route(
        "/v1/groups/{group}/members",
        "POST",
        add_group_members,
        TokenScope.SEND,
        Doc(
            "addGroupMembers",
            "Add members (admins only); they receive the group's whole log",
            _OK,
            _CHANGE_ERRORS,
            parameters=(_GROUP,),
            body=ref("GroupMembers"),
        ),
    ),
    Route(
        "/v1/groups/{group}/members/{peer}",
        "DELETE",
        remove_group_member,
        TokenScope.SEND,
        Doc(
            "removeGroupMember",
            "Remove a member (admins only); its later messages are refused by everyone",
            _OK,
            _CHANGE_ERRORS,
            parameters=(_GROUP, _PEER),
        ),
    ),
    Route(
        "/v1/groups/{group}/leave",
        "POST",
        leave_group,
        TokenScope.SEND,
        Doc(
            "leaveGroup",
            "Leave a group (anyone may); the others are told",
            _OK,
            _CHANGE_ERRORS,
            parameters=(_GROUP,),
        ),
    ),
    _answer("accept", accept_group, "acceptGroup", "Accept an invitation from a stranger"),
    _answer(
        "decline",
        decline_group,
        "declineGroup",
        "Decline an invitation: deleted here, nothing sent",
    ),
    _answer("block", block_group, "blockGroup", "Block who invited us and delete the invitation"),
)
