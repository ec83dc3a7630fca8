"""The local API's routes: JSON over HTTP under ``/v1``, in front of one :class:`Node`.

How this works: :func:`create_app` builds a Starlette app from :data:`ROUTES`,
behind :class:`~p2pdm.api.guard.LocalGuard` (loopback Host, bearer token,
body cap). Each route names the scope it needs (read, send, admin); a token
without it gets 403 before the handler runs, and a token limited to some
contacts sees only their contacts, conversations, messages and events (the
handlers ask :func:`grant_of`). Each handler takes the request and the node, checks its input
through :mod:`p2pdm.api.payload` and calls one node method. The node's
methods are synchronous and quick (one SQLite transaction at most); they run
on the event loop itself, which is also what keeps the store single-threaded.
:func:`_endpoint` turns every failure into the API's JSON error shape:
refused input is a 4xx with the node's own sentence, a client that hangs up
mid-request is noted at debug level, and anything else is a logged 500 (a
bug, never the client's fault).

``openapi.py`` describes these routes; a test checks that the two agree.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from p2pdm.api.events import poll_events, stream_events, websocket_events
from p2pdm.api.guard import LocalGuard, grant_of
from p2pdm.api.openapi import openapi_document
from p2pdm.api.payload import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR,
    Handler,
    JSONObject,
    RequestError,
    bad_request,
    check_query,
    contact_json,
    conversation_json,
    error_response,
    message_json,
    p2pdm_error_response,
    p2pdm_error_status,
    query_int,
    status_json,
    token_json,
)
from p2pdm.core.identity import PeerId
from p2pdm.core.model import TokenScope
from p2pdm.errors import NotFound, P2PDMError
from p2pdm.limits import MAX_PAGE_SIZE
from p2pdm.node.node import Node, parse_conversation_id
from p2pdm.node.tokens import create_token, revoke_token

__all__ = ["ROUTES", "create_app"]

log = logging.getLogger("p2pdm.api")

#: Largest ``idempotency_key``: room for a UUID or a hash, not for payloads.
MAX_IDEMPOTENCY_KEY_CHARS: Final = 255


def _endpoint(handler: Handler, scope: TokenScope) -> Callable[[Request], Awaitable[Response]]:
    """Give ``handler`` the node, refuse tokens without ``scope``, map failures to JSON."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        node: Node = request.app.state.node
        try:
            grant = grant_of(request.scope)
            if not grant.allows(scope):
                raise RequestError(
                    403,
                    "forbidden_scope",
                    f"this needs a token with scope {scope.value!r}; "
                    f"token {grant.name!r} has {grant.scope.value!r}",
                )
            return await handler(request, node)
        except RequestError as exc:
            return exc.response()
        except ClientDisconnect:
            # The client went away mid-body: nothing was done and nobody is
            # left to answer. Its fault, not a bug: no traceback.
            log.debug("%s %s: the client disconnected", request.method, request.url.path)
            return _client_gone()
        except P2PDMError as exc:
            status, _ = p2pdm_error_status(exc)
            if status >= 500:
                log.error("%s %s failed: %r", request.method, request.url.path, exc)
            return p2pdm_error_response(exc)
        except Exception:
            log.exception("bug in %s %s", request.method, request.url.path)
            return _internal_error()

    return endpoint


def _client_gone() -> JSONResponse:
    """The answer to a request whose client disconnected (hypercorn drops it unsent)."""
    return error_response(400, "client_disconnected", "the client disconnected mid-request")


def _internal_error() -> JSONResponse:
    return error_response(500, "internal_error", "the node failed to handle this request")


# --- node ----------------------------------------------------------------------


async def get_node(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    grant = grant_of(request.scope)
    token = {"name": grant.name, "scope": grant.scope.value}  # the caller's, never its secret
    return JSONResponse({**node.info(), "token": token, "invite": node.invite()})


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
    check_query(request, frozenset())
    grant = grant_of(request.scope)
    contacts = [contact_json(c) for c in node.contacts() if grant.sees(c.peer_id)]
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
    shown = {**contact_json(added.contact), "renamed_from": added.renamed_from}
    return JSONResponse(shown, status_code=201)


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
    body = await JSONObject.read(request)
    to = body.text("to")
    text = body.text("text")
    idempotency = _idempotency(request, body.opt_text("idempotency_key"))
    body.done()
    peer = _visible_peer(request, node, to)
    sent = await node.submit(peer, text, idempotency=idempotency)
    message = sent.message
    if sent.replayed:  # a retry: the same message, not a second one
        return JSONResponse(message_json(message), headers={"Idempotent-Replayed": "true"})
    return JSONResponse(
        message_json(message),
        status_code=201,
        headers={"Location": f"/v1/messages/{message.id.hex()}"},
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
    body = message_json(message, node.status_detail(message))
    return JSONResponse({**body, "history": [status_json(c) for c in history]})


async def read_message(request: Request, node: Node) -> Response:
    message = node.mark_message_read(_message_id(request, node))
    return JSONResponse(message_json(message, node.status_detail(message)))


# --- conversations ---------------------------------------------------------------


async def list_conversations(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    grant = grant_of(request.scope)
    names = {c.peer_id: c.name for c in node.contacts()}
    found = [conversation_json(c, names) for c in node.conversations() if grant.sees(c.peer)]
    return JSONResponse({"conversations": found})


async def conversation_messages(request: Request, node: Node) -> Response:
    check_query(request, frozenset({"limit", "before"}))
    limit = query_int(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    before = query_int(request, "before", None, 0, MAX_CURSOR)
    assert limit is not None
    page = node.messages(_visible_conversation(request, node), limit, before)
    return JSONResponse(
        {
            "messages": [message_json(m, node.status_detail(m)) for m in page.messages],
            "next_before": page.next_before,
        }
    )


async def read_conversation(request: Request, node: Node) -> Response:
    ids = node.mark_read(_visible_conversation(request, node))
    return JSONResponse({"read": [i.hex() for i in ids]})


# --- settings --------------------------------------------------------------------


async def get_settings(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    return JSONResponse(node.settings())


async def patch_settings(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    return JSONResponse(node.update_settings(body.rest()))


# --- tokens ----------------------------------------------------------------------


async def list_tokens(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    return JSONResponse({"tokens": [token_json(t) for t in node.store.list_tokens()]})


async def add_token(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    scope = body.text("scope")
    name = body.opt_text("name")
    contacts = body.opt_text_list("contacts")
    body.done()
    peers = [node.resolve(who) for who in contacts]
    token, secret = create_token(node.store, scope, peers, name, now_ms=node.now_ms())
    return JSONResponse({**token_json(token), "token": secret}, status_code=201)


async def delete_token(request: Request, node: Node) -> Response:
    revoke_token(node.store, request.path_params["name"])
    return Response(status_code=204)


# --- the description -------------------------------------------------------------


async def get_openapi(request: Request, node: Node) -> Response:
    return JSONResponse(openapi_document())


_READ, _SEND, _ADMIN = TokenScope.READ, TokenScope.SEND, TokenScope.ADMIN

#: Every route: (path, method, handler, scope it needs). ``openapi.py``
#: documents each one. Marking read is ``send``: it sends read receipts.
ROUTES: Final[tuple[tuple[str, str, Handler, TokenScope], ...]] = (
    ("/v1/node", "GET", get_node, _READ),
    ("/v1/contacts", "GET", list_contacts, _READ),
    ("/v1/contacts", "POST", add_contact, _ADMIN),
    ("/v1/contacts/{peer_id}", "DELETE", delete_contact, _ADMIN),
    ("/v1/messages", "POST", send_message, _SEND),
    ("/v1/messages/{message_id}", "GET", get_message, _READ),
    ("/v1/messages/{message_id}/read", "POST", read_message, _SEND),
    ("/v1/conversations", "GET", list_conversations, _READ),
    ("/v1/conversations/{conversation}/messages", "GET", conversation_messages, _READ),
    ("/v1/conversations/{conversation}/read", "POST", read_conversation, _SEND),
    ("/v1/events", "GET", stream_events, _READ),
    ("/v1/events/poll", "GET", poll_events, _READ),
    ("/v1/settings", "GET", get_settings, _READ),
    ("/v1/settings", "PATCH", patch_settings, _ADMIN),
    ("/v1/tokens", "GET", list_tokens, _ADMIN),
    ("/v1/tokens", "POST", add_token, _ADMIN),
    ("/v1/tokens/{name}", "DELETE", delete_token, _ADMIN),
    ("/v1/openapi.json", "GET", get_openapi, _READ),
)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) in the API's shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    """Last resort for a failure outside any handler; Starlette logs it after."""
    return _internal_error()


def _routes() -> list[BaseRoute]:
    """One Starlette route per path, so that a 405 lists every method of the path in Allow."""
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for path, method, handler, scope in ROUTES:
        by_path.setdefault(path, {})[method] = _endpoint(handler, scope)
    routes: list[BaseRoute] = [
        Route(path, _by_method(methods), methods=list(methods)) for path, methods in by_path.items()
    ]
    # The same path over WebSocket (Starlette matches routes by scope type).
    routes.append(WebSocketRoute("/v1/events", websocket_events))
    return routes


def _by_method(
    endpoints: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


def create_app(node: Node, token: str) -> Starlette:
    """The local API for ``node``: ``token`` is the owner's, named tokens are in its store."""
    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(LocalGuard, token=token, tokens=node.store.list_tokens)],
        exception_handlers={HTTPException: _http_error, Exception: _unhandled},
    )
    app.state.node = node
    return app
