"""The local API's message actions: react, edit, unsend, delete for me, delete a conversation.

How this works: like :mod:`p2pdm.api.handlers` (the token's view of messages
and conversations is checked there, and reused here); each handler calls one
node method of :class:`~p2pdm.node.actions.MessageActions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.handlers import _message_id, _visible_conversation
from p2pdm.api.payload import JSONObject, bad_request
from p2pdm.api.schema import NOT_BLANK_PATTERN, Schema, obj
from p2pdm.api.views import MESSAGE_PROPERTIES, message_view
from p2pdm.core.model import StoredMessage
from p2pdm.limits import MAX_REACTION_BYTES, MAX_TEXT_BYTES
from p2pdm.node.node import Node, parse_message_id

__all__ = [
    "DELETE_FOR",
    "EDIT_MESSAGE",
    "NEW_REACTION",
    "REACTED",
    "delete_conversation",
    "delete_message",
    "edit_message",
    "react",
]


async def _act_on(
    request: Request,
    node: Node,
    field: str,
    act: Callable[[Node, bytes, str], StoredMessage],
    before: Callable[[Node, bytes, str], dict[str, Any]] | None = None,
) -> Response:
    """Read the one text ``field`` of the body, act on the message named in the
    path with it, and answer the target as it now is (with what ``before``
    read ahead of the act, if given)."""
    target = parse_message_id(_message_id(request, node))
    body = await JSONObject.read(request)
    value = body.text(field)
    body.done()
    await node.stamp_ahead_for(target)
    extra = {} if before is None else before(node, target, value)
    return JSONResponse({**message_view(node, act(node, target, value)), **extra})


async def react(request: Request, node: Node) -> Response:
    return await _act_on(request, node, "emoji", Node.react, _removed)


def _removed(node: Node, target: bytes, emoji: str) -> dict[str, Any]:
    """``removed`` of ``react``'s answer, read before the reaction changes it."""
    return {"removed": None if emoji else node.my_reaction(target) is not None}


#: ``react``'s answer: the message, and whether an empty emoji took a reaction back.
REACTED: Final[Schema] = obj(
    {
        **MESSAGE_PROPERTIES,
        "removed": {
            "type": ["boolean", "null"],
            "description": "for an empty emoji: true if your reaction was taken back, "
            "false if you had none (nothing was sent); null for a reaction",
        },
    }
)


#: ``react``'s body.
NEW_REACTION: Final[Schema] = obj(
    {
        "emoji": {
            "type": "string",
            "maxLength": MAX_REACTION_BYTES,
            "description": f"one emoji (at most {MAX_REACTION_BYTES} bytes, no spaces); "
            "it replaces your earlier reaction; an empty string takes it back",
        }
    }
)


async def edit_message(request: Request, node: Node) -> Response:
    return await _act_on(request, node, "text", Node.edit)


#: ``edit_message``'s body.
EDIT_MESSAGE: Final[Schema] = obj(
    {
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TEXT_BYTES,
            "pattern": NOT_BLANK_PATTERN,
            "description": f"the new text: not blank, at most {MAX_TEXT_BYTES} bytes of UTF-8",
        }
    }
)

#: ``DELETE /v1/messages/{id}``'s ``for`` parameter.
DELETE_FOR: Final[Schema] = {
    "name": "for",
    "in": "query",
    "required": False,
    "description": "'everyone' (the default): unsend your own message for everyone; "
    "'me': delete any message from this node only, telling nobody",
    "schema": {"type": "string", "enum": ["everyone", "me"], "default": "everyone"},
}


async def delete_message(request: Request, node: Node) -> Response:
    target = parse_message_id(_message_id(request, node))
    scope = request.query_params.get("for", "everyone")
    if scope == "me":
        node.delete_for_me(target)
        return Response(status_code=204)
    if scope != "everyone":
        raise bad_request("'for' is 'me' or 'everyone'")
    await node.stamp_ahead_for(target)
    node.unsend(target)
    return Response(status_code=204)


async def delete_conversation(request: Request, node: Node) -> Response:
    node.delete_conversation(_visible_conversation(request, node))
    return Response(status_code=204)
