"""The local API's handlers: one per route, each beside the schema of the body it reads.

How this works: each handler takes the request and the node, checks its input
through :mod:`p2pdm.api.payload` and calls one node method (the node's methods
are synchronous and quick; they run on the event loop, which keeps the store
single-threaded). Contacts, conversations and messages a token may not see are
refused here (:func:`grant_of`). The route table, scopes and the document of
each route are in :mod:`p2pdm.api.app`.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.guard import grant_of
from p2pdm.api.handlers_groups import send_group_message
from p2pdm.api.handlers_media import MEDIA_FIELDS, SEND_ONE_OF, send_media_message
from p2pdm.api.payload import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR,
    MAX_LIST_ITEMS,
    JSONObject,
    RequestError,
    bad_request,
    query_int,
)
from p2pdm.api.schema import NAME, NOT_BLANK_PATTERN, PEER_ID, SCOPE, TOKEN_NAME, Schema, obj
from p2pdm.api.views import (
    contact_json,
    conversation_json,
    group_of,
    message_json,
    message_view,
    new_text_view,
    status_json,
    token_json,
)
from p2pdm.api.views_groups import group_tag
from p2pdm.api.views_location import live_locations_of
from p2pdm.core.identity import PeerId
from p2pdm.core.model import TokenScope
from p2pdm.errors import ActionRefused, NotFound
from p2pdm.limits import MAX_INVITE_CHARS, MAX_PAGE_SIZE, MAX_TEXT_BYTES
from p2pdm.node.node import SETTINGS, Node, parse_conversation_id, parse_message_id
from p2pdm.node.tokens import create_token, is_session, revoke_token

__all__ = [
    "NEW_CONTACT",
    "NEW_TOKEN",
    "SEND_MESSAGE",
    "SETTINGS_PATCH",
    "SETTINGS_SCHEMA",
]

#: Largest ``idempotency_key``: room for a UUID or a hash, not for payloads.
MAX_IDEMPOTENCY_KEY_CHARS: Final = 255


# --- node ----------------------------------------------------------------------


async def get_node(request: Request, node: Node) -> Response:
    grant = grant_of(request.scope)
    token = {"name": grant.name, "scope": grant.scope.value}  # the caller's, never its secret
    return JSONResponse({**node.info(), "token": token, "invite": node.invite()})


async def get_mailboxes(request: Request, node: Node) -> Response:
    """The mailboxes this node uses and the one it offers; none while off the network."""
    found = node.mailboxes
    if found is None:
        pending = node.store.withdrawals_count()
        shown: dict[str, object] = {
            "used": [],
            "offered": None,
            "withdrawals": {"pending": pending, "withdrawn": 0},
        }
    else:
        shown = dict(found())
    return JSONResponse({**shown, "networked": found is not None})


# --- contacts --------------------------------------------------------------------


def _visible(request: Request, peer: PeerId) -> PeerId:
    """``peer``, if the request's token may see it; else RequestError 403."""
    grant = grant_of(request.scope)
    if not grant.sees(peer):
        raise RequestError(
            403, "forbidden_contact", f"token {grant.name!r} is not allowed to use {peer}"
        )
    return peer


def _visible_conversation(request: Request, node: Node) -> bytes:
    """The id of the conversation the path names (an id, or a contact's name or
    PeerID as an alias of the one-to-one conversation), if the token may see it."""
    ref = str(request.path_params["conversation"])
    conversation_id, peer = node.find_conversation(ref)
    if parse_conversation_id(ref) is not None and not grant_of(request.scope).sees(peer):
        raise NotFound(f"no conversation {ref}")  # as if absent, like a message
    _visible(request, peer)
    return conversation_id


def _visible_peer(request: Request, node: Node, who: str) -> PeerId:
    """The PeerID ``who`` is or names (resolved here, once), if the token may see it."""
    return _visible(request, node.resolve(who))


async def list_contacts(request: Request, node: Node) -> Response:
    grant = grant_of(request.scope)
    contacts = [
        contact_json(c, has_session=node.has_session(c.peer_id))
        for c in node.contacts()
        if grant.sees(c.peer_id)
    ]
    return JSONResponse({"contacts": contacts})


async def add_contact(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    invite = body.opt_text("invite")
    peer_id = body.opt_text("peer_id")
    name = body.opt_text("name")
    body.done()
    if (invite is None) == (peer_id is None):
        raise bad_request("give exactly one of 'invite' and 'peer_id'")
    if invite is not None:
        added = node.add_contact_from_invite(invite, name)
    else:
        assert peer_id is not None
        added = node.add_contact_by_peer_id(peer_id, name)
    peer = added.contact.peer_id
    shown = {
        **contact_json(added.contact, has_session=node.has_session(peer)),
        "renamed_from": added.renamed_from,
    }
    return JSONResponse(shown, status_code=201)


_NEW_NAME: Final[Schema] = {**NAME, "type": ["string", "null"]}
_INVITE: Final[Schema] = {
    "type": "string",
    "maxLength": MAX_INVITE_CHARS,
    "description": "a p2pdm: invite, as `p2pdm id` prints it (signed: the node checks it)",
}
#: ``add_contact``'s body: exactly one of an invite and a PeerID, maybe a name.
NEW_CONTACT: Final[Schema] = {
    "oneOf": [
        obj(
            {"invite": _INVITE, "peer_id": {"type": "null"}, "name": _NEW_NAME},
            optional=("peer_id", "name"),
        ),
        obj(
            {"peer_id": PEER_ID, "invite": {"type": "null"}, "name": _NEW_NAME},
            optional=("invite", "name"),
        ),
    ],
    "description": "an invite (preferred: it carries keys and addresses) or a PeerID",
}


async def delete_contact(request: Request, node: Node) -> Response:
    # A PeerID or a contact's name, looked up as everywhere else a contact is named.
    node.delete_contact(_visible_peer(request, node, request.path_params["peer_id"]))
    return Response(status_code=204)


# --- messages --------------------------------------------------------------------


def _idempotency(request: Request, key: str | None) -> tuple[str, str] | None:
    """``(token name, key)``: each token has its own keys."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise bad_request(f"'idempotency_key' is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters")
    return grant_of(request.scope).name, key


async def send_message(request: Request, node: Node) -> Response:
    return await _send(request, node, await JSONObject.read(request))


async def _send(request: Request, node: Node, body: JSONObject) -> Response:
    """Send what ``body`` holds (``POST /v1/messages``'s fields) to its ``to``."""
    to = body.text("to")
    peer = _recipient(request, node, to)
    if isinstance(peer, bytes):
        idempotency = _idempotency(request, body.opt_text("idempotency_key"))
        return await send_group_message(request, node, peer, body, idempotency)
    if body.has("media") or body.has("location"):
        idempotency = _idempotency(request, body.opt_text("idempotency_key"))
        return await send_media_message(body, node, peer, idempotency)
    text = body.text("text")
    idempotency = _idempotency(request, body.opt_text("idempotency_key"))
    reply_text = body.opt_text("reply_to")
    body.done()
    reply_to = None if reply_text is None else parse_message_id(reply_text)
    sent = await node.submit(peer, text, idempotency=idempotency, reply_to=reply_to)
    message = sent.message
    # A fresh message has no note, except one waiting for its recipient's keys.
    detail = None if node.waiting_for_keys(peer) else ""
    if sent.replayed:  # a retry: the same message, not a second one
        shown = message_view(node, message, detail)
        return JSONResponse(shown, headers={"Idempotent-Replayed": "true"})
    shown = (
        message_view(node, message, detail) if reply_to else new_text_view(node, message, detail)
    )
    return JSONResponse(
        shown,
        status_code=201,
        headers={"Location": f"/v1/messages/{message.id.hex()}"},
    )


async def forward_message(request: Request, node: Node) -> Response:
    """Send a copy of a message (its text, files and caption, or place) to
    ``to``, as ``POST /v1/messages`` would send it."""
    message, _ = node.message(_message_id(request, node))
    body = await JSONObject.read(request)
    to = body.text("to")
    key = body.opt_text("idempotency_key")
    body.done()
    fields = forwarded_fields(message_view(node, message))
    if key is not None:
        fields["idempotency_key"] = key
    return await _send(request, node, JSONObject({"to": to, **fields}))


def forwarded_fields(shown: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/messages``'s fields for a copy of the message ``shown`` (its
    API view); raises ActionRefused for what cannot be sent on."""
    if shown["unsent"]:
        raise ActionRefused("an unsent message cannot be forwarded")
    if shown["notice"] is not None or shown["unsupported"]:
        raise ActionRefused("only texts, files and places can be forwarded")
    if shown["location"] is not None:
        return {"location": shown["location"]}
    fields: dict[str, Any] = {}
    if shown["media"]:
        waiting = [item["name"] for item in shown["media"] if item["state"] not in SENDABLE]
        if waiting:
            raise ActionRefused(
                f"{waiting[0]} is not on this node yet: download it first, then forward"
            )
        fields["media"] = [item["id"] for item in shown["media"]]
    if shown["text"]:
        fields["text"] = shown["text"]
    if not fields:
        raise ActionRefused("only texts, files and places can be forwarded")
    return fields


#: The states of a file this node can send on (its own, or fetched whole).
SENDABLE: Final = frozenset({"local", "ready"})


def _recipient(request: Request, node: Node, to: str) -> PeerId | bytes:
    """Whom ``to`` names, resolved once: a PeerID or a contact's name (if the
    token may see it), else a group's id or unique name; raises NotFound."""
    try:
        return _visible_peer(request, node, to)
    except NotFound:
        try:
            return node.find_group(to)
        except NotFound:
            pass
        raise


#: Whom a message goes to.
SEND_MESSAGE_TO: Final[Schema] = {
    "type": "string",
    "description": "a PeerID, or a contact's name (ignoring case), or a group's id "
    "or name; text that is a PeerID always means that PeerID",
}
#: A key that makes a retry safe.
IDEMPOTENCY_KEY: Final[Schema] = {
    "type": ["string", "null"],
    "minLength": 1,
    "maxLength": MAX_IDEMPOTENCY_KEY_CHARS,
    "description": "a retry with the same key (per token, kept for a day) "
    "returns the message the first request made instead of sending again",
}

#: ``send_message``'s body: a text, files with an optional caption, or a place.
SEND_MESSAGE: Final[Schema] = obj(
    {
        "to": SEND_MESSAGE_TO,
        "text": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TEXT_BYTES,
            "pattern": NOT_BLANK_PATTERN,
            "description": f"not blank, at most {MAX_TEXT_BYTES} bytes of UTF-8",
        },
        "idempotency_key": IDEMPOTENCY_KEY,
        "reply_to": {
            "type": ["string", "null"],
            "pattern": "^[0-9a-fA-F]{32}$",
            "description": "the id of a message of the same conversation this one "
            "replies to (anything else is refused with 400)",
        },
        **MEDIA_FIELDS,
    },
    optional=("text", "idempotency_key", "reply_to", *MEDIA_FIELDS),
)
SEND_MESSAGE["oneOf"] = SEND_ONE_OF

#: ``forward_message``'s body.
FORWARD_MESSAGE: Final[Schema] = obj(
    {
        "to": SEND_MESSAGE_TO,
        "idempotency_key": IDEMPOTENCY_KEY,
    },
    optional=("idempotency_key",),
)


def _message_id(request: Request, node: Node) -> str:
    """The path's message id, if the token may see that message (else 404, as if absent)."""
    text = str(request.path_params["message_id"])
    message, _ = node.message(text)
    if not grant_of(request.scope).sees(message.peer):
        raise NotFound(f"no message {message.id.hex()}")
    return text


async def get_message(request: Request, node: Node) -> Response:
    message, history = node.message(_message_id(request, node))
    body = message_view(node, message)
    return JSONResponse({**body, "history": [status_json(c) for c in history]})


async def read_message(request: Request, node: Node) -> Response:
    message = node.mark_message_read(_message_id(request, node))
    return JSONResponse(message_view(node, message))


# --- conversations ---------------------------------------------------------------


async def list_conversations(request: Request, node: Node) -> Response:
    grant = grant_of(request.scope)
    names = {c.peer_id: c.name for c in node.contacts()}
    found = [
        conversation_json(c, names, live_locations_of(node, c.id), group_tag(node, c.id))
        for c in node.conversations()
        if grant.sees(c.peer)
    ]
    return JSONResponse({"conversations": found})


async def conversation_messages(request: Request, node: Node) -> Response:
    limit = query_int(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    before = query_int(request, "before", None, 0, MAX_CURSOR)
    assert limit is not None
    page = node.messages(_visible_conversation(request, node), limit, before)
    extras = node.extras(list(page.messages))
    return JSONResponse(
        {
            "messages": [
                message_json(
                    m, node.status_detail(m), extras[m.id], node.store.get_blob, group_of(node, m)
                )
                for m in page.messages
            ],
            "next_before": page.next_before,
        }
    )


async def read_conversation(request: Request, node: Node) -> Response:
    ids = node.mark_read(_visible_conversation(request, node))
    return JSONResponse({"read": [i.hex() for i in ids]})


# --- settings --------------------------------------------------------------------


async def get_settings(request: Request, node: Node) -> Response:
    return JSONResponse(node.settings())


async def patch_settings(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    return JSONResponse(node.update_settings(body.rest()))


_JSON_TYPES: Final[dict[type, str]] = {bool: "boolean", str: "string", int: "integer"}
#: Every setting with its type and default (the node's name is a contact-style name).
_SETTING_TYPES: Final[dict[str, Schema]] = {
    key: {"type": _JSON_TYPES[kind], "default": default, **({"minimum": 0} if kind is int else {})}
    for key, (kind, default) in SETTINGS.items()
}
SETTINGS_SCHEMA: Final[Schema] = obj(_SETTING_TYPES)
#: ``patch_settings``' body: some settings; a name is checked as a contact's is.
SETTINGS_PATCH: Final[Schema] = obj(
    {**_SETTING_TYPES, "name": {**NAME, "default": SETTINGS["name"][1]}},
    optional=tuple(_SETTING_TYPES),
)


# --- tokens ----------------------------------------------------------------------


async def list_tokens(request: Request, node: Node) -> Response:
    tokens = [token_json(t) for t in node.store.list_tokens() if not is_session(t)]
    return JSONResponse({"tokens": tokens})


async def add_token(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    scope = body.text("scope")
    name = body.opt_text("name")
    contacts = body.opt_text_list("contacts")
    body.done()
    peers = [node.resolve(who) for who in contacts]
    token, secret = create_token(node.store, scope, peers, name, now_ms=node.now_ms())
    return JSONResponse({**token_json(token), "token": secret}, status_code=201)


_TOKEN_CONTACTS: Final[Schema] = {
    "type": ["array", "null"],
    "items": {"type": "string", "description": "a contact's name or PeerID"},
    "maxItems": MAX_LIST_ITEMS,
}
#: ``add_token``'s body. An admin token can change tokens, so it is never limited
#: to contacts.
NEW_TOKEN: Final[Schema] = {
    "oneOf": [
        obj(
            {
                "scope": {**SCOPE, "enum": [TokenScope.READ.value, TokenScope.SEND.value]},
                "name": {**TOKEN_NAME, "type": ["string", "null"]},
                "contacts": _TOKEN_CONTACTS,
            },
            optional=("name", "contacts"),
        ),
        obj(
            {
                "scope": {**SCOPE, "enum": [TokenScope.ADMIN.value]},
                "name": {**TOKEN_NAME, "type": ["string", "null"]},
                "contacts": {**_TOKEN_CONTACTS, "maxItems": 0},
            },
            optional=("name", "contacts"),
        ),
    ]
}


async def delete_token(request: Request, node: Node) -> Response:
    revoke_token(node.store, request.path_params["name"])
    return Response(status_code=204)
