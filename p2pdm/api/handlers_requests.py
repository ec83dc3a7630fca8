"""The local API's blocked peers and message requests: handlers, serializers, schemas.

How this works: as :mod:`p2pdm.api.handlers`, each handler checks its input
and calls one node method (:mod:`p2pdm.node.requests`); the rows of
``ROUTES`` in :mod:`p2pdm.api.app` name them. A token limited to some
contacts sees only those among the blocked peers and requests, and may act
only on them. The answers' schemas are in :data:`SCHEMAS`, merged into the
document's components by :mod:`p2pdm.api.views`.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.guard import grant_of
from p2pdm.api.payload import JSONObject, RequestError
from p2pdm.api.schema import BOOL, HEX_ID, INT, MS, NAME, PEER_ID, STRING, Schema, obj, ref
from p2pdm.api.views import contact_json
from p2pdm.core.identity import PeerId
from p2pdm.core.model import direct_conversation_id
from p2pdm.errors import NotFound
from p2pdm.limits import REQUEST_PREVIEW_CHARS
from p2pdm.node.contact_names import fingerprint
from p2pdm.node.messenger import message_text
from p2pdm.node.node import Node
from p2pdm.store.base import BlockedPeer, RequestSummary

__all__ = [
    "BLOCK_PEER",
    "SCHEMAS",
    "accept_request",
    "block_peer",
    "block_request",
    "decline_request",
    "list_blocked",
    "list_requests",
    "unblock_peer",
]


def _peer(request: Request, node: Node, who: str) -> PeerId:
    """The PeerID ``who`` is or names (a contact's name), if the token may use it."""
    return _allowed(request, node.resolve(who))


def _allowed(request: Request, peer: PeerId) -> PeerId:
    """``peer``, if the request's token may use it; else 403."""
    grant = grant_of(request.scope)
    if not grant.sees(peer):
        raise RequestError(
            403, "forbidden_contact", f"token {grant.name!r} is not allowed to use {peer}"
        )
    return peer


def blocked_json(node: Node, entry: BlockedPeer) -> dict[str, Any]:
    contact = node.store.get_contact(entry.peer_id)
    return {
        "peer_id": str(entry.peer_id),
        "name": None if contact is None else contact.name,
        "fingerprint": fingerprint(entry.peer_id),
        "blocked_at_ms": entry.blocked_at_ms,
    }


def request_json(node: Node, entry: RequestSummary) -> dict[str, Any]:
    text = message_text(entry.first)
    return {
        "peer_id": str(entry.peer_id),
        "name": node.request_name(entry),
        "fingerprint": fingerprint(entry.peer_id),
        "conversation_id": direct_conversation_id(node.peer_id, entry.peer_id).hex(),
        "count": entry.count,
        "preview": None if text is None else text[:REQUEST_PREVIEW_CHARS],
        "first_at_ms": entry.first.stored_at_ms,
        "last_at_ms": entry.last_at_ms,
    }


async def list_blocked(request: Request, node: Node) -> Response:
    grant = grant_of(request.scope)
    shown = [blocked_json(node, b) for b in node.blocked() if grant.sees(b.peer_id)]
    return JSONResponse({"blocked": shown})


async def block_peer(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    who = body.text("peer_id")
    body.done()
    peer = _allowed(request, node.resolve_stranger(who, node.resolve))
    new = node.block(peer)
    entry = next(b for b in node.blocked() if b.peer_id == peer)
    return JSONResponse(blocked_json(node, entry), status_code=201 if new else 200)


async def unblock_peer(request: Request, node: Node) -> Response:
    peer = _allowed(request, node.resolve_stranger(request.path_params["peer"], node.resolve))
    if not node.unblock(peer):
        raise NotFound(f"{peer} is not blocked")
    return Response(status_code=204)


async def list_requests(request: Request, node: Node) -> Response:
    grant = grant_of(request.scope)
    shown = [request_json(node, r) for r in node.requests() if grant.sees(r.peer_id)]
    return JSONResponse({"requests": shown})


def _requester(request: Request, node: Node) -> PeerId:
    """The stranger ``{peer}`` names among the pending requests (a PeerID, a
    unique start of one, the fingerprint or the name it goes by), if the token
    may use it."""
    return _peer(request, node, str(node.resolve_request(request.path_params["peer"])))


async def accept_request(request: Request, node: Node) -> Response:
    added = node.accept_request(_requester(request, node))
    peer = added.contact.peer_id
    return JSONResponse(
        {
            **contact_json(added.contact, has_session=node.has_session(peer)),
            "renamed_from": added.renamed_from,
        }
    )


async def decline_request(request: Request, node: Node) -> Response:
    deleted = node.decline_request(_requester(request, node))
    return JSONResponse({"deleted": deleted, "blocked": False})


async def block_request(request: Request, node: Node) -> Response:
    deleted = node.block_request(_requester(request, node))
    return JSONResponse({"deleted": deleted, "blocked": True})


#: ``block_peer``'s body.
BLOCK_PEER: Final[Schema] = obj(
    {"peer_id": {**NAME, "description": "a PeerID, or a contact's name (ignoring case)"}}
)

SCHEMAS: Final[dict[str, Schema]] = {
    "BlockedPeer": obj(
        {
            "peer_id": PEER_ID,
            "name": {
                "type": ["string", "null"],
                "description": "the contact's name; null for a stranger",
            },
            "fingerprint": STRING,
            "blocked_at_ms": MS,
        }
    ),
    "BlockedList": obj({"blocked": {"type": "array", "items": ref("BlockedPeer")}}),
    "BlockPeer": BLOCK_PEER,
    "MessageRequest": obj(
        {
            "peer_id": PEER_ID,
            "name": {
                "type": ["string", "null"],
                "description": "the name the stranger says it goes by (their profile's or "
                "node's name, sent with the request; unverified: show the fingerprint "
                "beside it); null if none came",
            },
            "fingerprint": {
                **STRING,
                "description": "the stranger's fingerprint: show it beside any name",
            },
            "conversation_id": HEX_ID,
            "count": {**INT, "description": "pending request messages from this stranger"},
            "preview": {
                "type": ["string", "null"],
                "description": f"the first {REQUEST_PREVIEW_CHARS} characters of their "
                "first message; null if it is not text",
            },
            "first_at_ms": MS,
            "last_at_ms": MS,
        }
    ),
    "RequestList": obj({"requests": {"type": "array", "items": ref("MessageRequest")}}),
    "RequestAnswered": obj(
        {
            "deleted": {**INT, "description": "request messages deleted"},
            "blocked": {**BOOL, "description": "whether the sender is now blocked"},
        }
    ),
}
