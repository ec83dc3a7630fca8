"""The route rows of blocking and message requests (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers_requests import SCHEMAS as REQUEST_SCHEMAS
from p2pdm.api.handlers_requests import (
    accept_request,
    block_peer,
    block_request,
    decline_request,
    list_blocked,
    list_requests,
    unblock_peer,
)
from p2pdm.api.payload import Handler
from p2pdm.api.routes_common import ADMIN, BODY, PEER, READ
from p2pdm.api.schema import NAME, Doc, Route, Schema, path_param, ref

__all__ = ["REQUEST_ROUTES"]

#: The sender of a pending request.
_REQUESTER: Final = path_param(
    "peer",
    NAME,
    "a PeerID, a unique start of one (12 characters or more), the fingerprint, or the name "
    "the stranger goes by (ignoring case)",
)


def _answer(
    verb: str, handler: Handler, operation: str, summary: str, ok: tuple[str, Schema, str]
) -> Route:
    """``POST /v1/requests/{peer}/<verb>``: one answer to a stranger's pending request."""
    return Route(
        f"/v1/requests/{{peer}}/{verb}",
        "POST",
        handler,
        ADMIN,
        Doc(
            operation,
            summary,
            ok,
            {"404": "no pending request from that peer", "400": "several requests match"},
            parameters=(_REQUESTER,),
        ),
    )


REQUEST_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/blocked",
        "GET",
        list_blocked,
        READ,
        Doc(
            "listBlocked",
            "Blocked peers, most recently blocked first",
            ("200", ref("BlockedList"), "the blocked peers"),
            schemas=REQUEST_SCHEMAS,
        ),
    ),
    Route(
        "/v1/blocked",
        "POST",
        block_peer,
        ADMIN,
        Doc(
            "blockPeer",
            "Block a contact or a stranger: everything it sends is dropped unseen, "
            "nothing is sent to it",
            ("201", ref("BlockedPeer"), "blocked now"),
            {
                "400": "the body is malformed, or names this node",
                **BODY,
                "404": "no contact of that name",
            },
            body=ref("BlockPeer"),
            also={"200": (ref("BlockedPeer"), "it was blocked already")},
        ),
    ),
    Route(
        "/v1/blocked/{peer}",
        "DELETE",
        unblock_peer,
        ADMIN,
        Doc(
            "unblockPeer",
            "Unblock a peer",
            ("204", None, "unblocked"),
            {"404": "not blocked, or no contact of that name"},
            parameters=(PEER,),
        ),
    ),
    Route(
        "/v1/requests",
        "GET",
        list_requests,
        READ,
        Doc(
            "listRequests",
            "Strangers' pending message requests, one entry per stranger, newest first",
            ("200", ref("RequestList"), "the requests"),
        ),
    ),
    _answer(
        "accept",
        accept_request,
        "acceptRequest",
        "Accept a stranger's request: add it as a contact (its messages join the inbox)",
        ("200", ref("AddedContact"), "the new contact"),
    ),
    _answer(
        "decline",
        decline_request,
        "declineRequest",
        "Delete a stranger's request; the sender is told nothing",
        ("200", ref("RequestAnswered"), "deleted"),
    ),
    _answer(
        "block",
        block_request,
        "blockRequest",
        "Block a stranger and delete its request; it is told nothing",
        ("200", ref("RequestAnswered"), "blocked and deleted"),
    ),
)
