"""The local API's routes: JSON over HTTP under ``/v1``, in front of one :class:`Node`.

How this works: :func:`create_app` builds a Starlette app from :data:`ROUTES`,
behind :class:`~p2pdm.api.guard.LocalGuard` (loopback Host, bearer token,
body cap). Each handler takes the request and the node, checks its input
through :mod:`p2pdm.api.payload` and calls one node method. The node's
methods are synchronous and quick (one SQLite transaction at most); they run
on the event loop itself, which is also what keeps the store single-threaded.
:func:`_endpoint` turns every failure into the API's JSON error shape:
refused input is a 4xx with the node's own sentence, and anything else is a
logged 500 (a bug, never the client's fault).

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
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from p2pdm.api.guard import LocalGuard
from p2pdm.api.openapi import openapi_document
from p2pdm.api.payload import (
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR,
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
)
from p2pdm.errors import P2PDMError
from p2pdm.limits import MAX_PAGE_SIZE
from p2pdm.node import Node

__all__ = ["ROUTES", "create_app"]

log = logging.getLogger("p2pdm.api")

Handler = Callable[[Request, Node], Awaitable[Response]]


def _endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Give ``handler`` the node and map every failure to a JSON error."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        node: Node = request.app.state.node
        try:
            return await handler(request, node)
        except RequestError as exc:
            return exc.response()
        except P2PDMError as exc:
            status, _ = p2pdm_error_status(exc)
            if status >= 500:
                log.error("%s %s failed: %r", request.method, request.url.path, exc)
            return p2pdm_error_response(exc)
        except Exception:
            log.exception("bug in %s %s", request.method, request.url.path)
            return _internal_error()

    return endpoint


def _internal_error() -> JSONResponse:
    return error_response(500, "internal_error", "the node failed to handle this request")


# --- node ----------------------------------------------------------------------


async def get_node(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    return JSONResponse({**node.info(), "invite": node.invite()})


# --- contacts --------------------------------------------------------------------


async def list_contacts(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    return JSONResponse({"contacts": [contact_json(c) for c in node.contacts()]})


async def add_contact(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    invite = body.opt_text("invite")
    peer_id = body.opt_text("peer_id")
    name = body.opt_text("name")
    body.done()
    if (invite is None) == (peer_id is None):
        raise bad_request("give exactly one of 'invite' and 'peer_id'")
    if invite is not None:
        contact = node.add_contact_from_invite(invite, name)
    else:
        assert peer_id is not None
        contact = node.add_contact_by_peer_id(peer_id, name)
    return JSONResponse(contact_json(contact), status_code=201)


async def delete_contact(request: Request, node: Node) -> Response:
    node.delete_contact(request.path_params["peer_id"])
    return Response(status_code=204)


# --- messages --------------------------------------------------------------------


async def send_message(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    to = body.text("to")
    text = body.text("text")
    body.done()
    message = await node.send(to, text)
    return JSONResponse(
        message_json(message),
        status_code=201,
        headers={"Location": f"/v1/messages/{message.id.hex()}"},
    )


async def get_message(request: Request, node: Node) -> Response:
    message, history = node.message(request.path_params["message_id"])
    return JSONResponse({**message_json(message), "history": [status_json(c) for c in history]})


async def read_message(request: Request, node: Node) -> Response:
    message = node.mark_message_read(request.path_params["message_id"])
    return JSONResponse(message_json(message))


# --- conversations ---------------------------------------------------------------


async def list_conversations(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    names = {c.peer_id: c.name for c in node.contacts()}
    return JSONResponse(
        {"conversations": [conversation_json(c, names) for c in node.conversations()]}
    )


async def conversation_messages(request: Request, node: Node) -> Response:
    check_query(request, frozenset({"limit", "before"}))
    limit = query_int(request, "limit", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    before = query_int(request, "before", None, 0, MAX_CURSOR)
    assert limit is not None
    page = node.messages(request.path_params["peer"], limit, before)
    return JSONResponse(
        {"messages": [message_json(m) for m in page.messages], "next_before": page.next_before}
    )


async def read_conversation(request: Request, node: Node) -> Response:
    ids = node.mark_read(request.path_params["peer"])
    return JSONResponse({"read": [i.hex() for i in ids]})


# --- settings --------------------------------------------------------------------


async def get_settings(request: Request, node: Node) -> Response:
    check_query(request, frozenset())
    return JSONResponse(node.settings())


async def patch_settings(request: Request, node: Node) -> Response:
    body = await JSONObject.read(request)
    return JSONResponse(node.update_settings(body.rest()))


# --- the description -------------------------------------------------------------


async def get_openapi(request: Request, node: Node) -> Response:
    return JSONResponse(openapi_document())


#: Every route: (path, method, handler). ``openapi.py`` documents each one.
ROUTES: Final[tuple[tuple[str, str, Handler], ...]] = (
    ("/v1/node", "GET", get_node),
    ("/v1/contacts", "GET", list_contacts),
    ("/v1/contacts", "POST", add_contact),
    ("/v1/contacts/{peer_id}", "DELETE", delete_contact),
    ("/v1/messages", "POST", send_message),
    ("/v1/messages/{message_id}", "GET", get_message),
    ("/v1/messages/{message_id}/read", "POST", read_message),
    ("/v1/conversations", "GET", list_conversations),
    ("/v1/conversations/{peer}/messages", "GET", conversation_messages),
    ("/v1/conversations/{peer}/read", "POST", read_conversation),
    ("/v1/settings", "GET", get_settings),
    ("/v1/settings", "PATCH", patch_settings),
    ("/v1/openapi.json", "GET", get_openapi),
)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no such route, wrong method) in the API's shape."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), exc.headers)


async def _unhandled(request: Request, exc: Exception) -> Response:
    """Last resort for a failure outside any handler; Starlette logs it after."""
    return _internal_error()


def _routes() -> list[Route]:
    # Starlette tries every route: a known path with another method is a 405.
    return [Route(path, _endpoint(handler), methods=[method]) for path, method, handler in ROUTES]


def create_app(node: Node, token: str) -> Starlette:
    """The local API for ``node``; every request must carry ``token`` (see :mod:`guard`)."""
    app = Starlette(
        routes=_routes(),
        middleware=[Middleware(LocalGuard, token=token)],
        exception_handlers={HTTPException: _http_error, Exception: _unhandled},
    )
    app.state.node = node
    return app
