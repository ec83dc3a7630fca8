"""The local API's handlers for a whole conversation: its settings (the
disappearing-messages timer, muted, archived) and search over messages.

How this works: as in :mod:`p2pdm.api.handlers`, each handler checks its
input and calls one node method; the request body's schema sits beside it.
A search is the user's words, never FTS5 syntax: the store quotes each one
(:mod:`p2pdm.store.search_text`), so no query is a server error.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.guard import grant_of
from p2pdm.api.handlers import _visible, _visible_conversation
from p2pdm.api.payload import JSONObject, bad_request, query_int
from p2pdm.api.schema import Schema, obj
from p2pdm.api.views import conversation_json, search_hit_json
from p2pdm.api.views_groups import group_tag
from p2pdm.api.views_location import live_locations_of
from p2pdm.core.kinds.timer import check_timer
from p2pdm.limits import (
    DEFAULT_SEARCH_HITS,
    DISAPPEARING_TIMERS_S,
    MAX_PINNED_CONVERSATIONS,
    MAX_SEARCH_HITS,
    MAX_SEARCH_QUERY_CHARS,
)
from p2pdm.node.node import Node

__all__ = [
    "CONVERSATION_PATCH",
    "SEARCH_PARAMETERS",
    "TYPING_RESULT",
    "patch_conversation",
    "search_messages",
    "send_typing",
]


async def patch_conversation(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    for key in _SETTINGS:
        if key in body.data and body.data[key] is None:
            raise bad_request(f"field {key!r} must not be null: leave it out to keep it")
    timer_s = body.opt_int("timer_s")
    muted, archived = body.opt_bool("muted"), body.opt_bool("archived")
    pinned = body.opt_bool("pinned")
    body.done()
    if timer_s is None and muted is None and archived is None and pinned is None:
        raise bad_request("give at least one of 'timer_s', 'muted', 'archived', 'pinned'")
    conversation_id = _visible_conversation(request, node)
    _, peer = node.find_conversation(str(request.path_params["conversation"]))
    if timer_s is not None and node.is_group(conversation_id):
        # A group's timer is a change of its log (admins only), told to every member.
        await node.change_group(conversation_id, "timer", timer_s=check_timer(timer_s))
        timer_s = None
    if timer_s is not None:
        await node.stamp_ahead(peer)  # the timer notice goes to the peer
    changed = node.update_conversation(
        conversation_id, peer, timer_s=timer_s, muted=muted, archived=archived, pinned=pinned
    )
    names = {c.peer_id: c.name for c in node.contacts()}
    return JSONResponse(
        conversation_json(
            changed, names, live_locations_of(node, changed.id), group_tag(node, changed.id)
        )
    )


#: The settings ``patch_conversation`` changes.
_SETTINGS: Final = ("timer_s", "muted", "archived", "pinned")
#: ``patch_conversation``'s body: one or more settings.
CONVERSATION_PATCH: Final[Schema] = {
    **obj(
        {
            "timer_s": {
                "type": "integer",
                "enum": list(DISAPPEARING_TIMERS_S),
                "description": "disappearing-messages timer in seconds for messages sent "
                "from now on (0: off); the peer is told and shows the change",
            },
            "muted": {"type": "boolean", "description": "no notifications"},
            "archived": {"type": "boolean", "description": "out of the main list"},
            "pinned": {
                "type": "boolean",
                "description": "at the top of the list (the latest pinned first; at most "
                f"{MAX_PINNED_CONVERSATIONS}: one more is refused with 422 action_refused)",
            },
        },
        optional=_SETTINGS,
    ),
    "minProperties": 1,
}


async def send_typing(request: Request, node: Node) -> Response:
    conversation_id = _visible_conversation(request, node)
    _, peer = node.find_conversation(str(request.path_params["conversation"]))
    why_not = await node.send_typing(conversation_id, peer)
    return JSONResponse({"sent": why_not is None, "reason": why_not})


#: ``send_typing``'s answer.
TYPING_RESULT: Final[Schema] = obj(
    {
        "sent": {"type": "boolean", "description": "the peer took the signal"},
        "reason": {
            "type": ["string", "null"],
            "description": "why nothing was sent (read receipts off, not a contact, not "
            "connected, sent less than the interval ago); null when sent",
        },
    }
)


async def search_messages(request: Request, node: Node) -> Response:
    query = request.query_params.get("q")
    if query is None:
        raise bad_request("missing query parameter 'q'")
    limit = query_int(request, "limit", DEFAULT_SEARCH_HITS, 1, MAX_SEARCH_HITS)
    assert limit is not None
    who = request.query_params.get("peer")
    peer = None if who is None else _visible(request, node.resolve(who))
    grant = grant_of(request.scope)
    hits = node.search(query, peer, limit)
    return JSONResponse({"results": [search_hit_json(h) for h in hits if grant.sees(h.peer)]})


#: ``search_messages``' query parameters.
SEARCH_PARAMETERS: Final[tuple[Schema, ...]] = (
    {
        "name": "q",
        "in": "query",
        "required": True,
        "description": "the words to find (all of them; the last also as a word's "
        "beginning); plain text, never query syntax; it must hold at least one letter "
        "or digit in any script (a query without one is refused with 400)",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_SEARCH_QUERY_CHARS},
    },
    {
        "name": "peer",
        "in": "query",
        "required": False,
        "description": "only the conversation with this contact (name or PeerID)",
        "schema": {"type": "string", "minLength": 1},
    },
)
