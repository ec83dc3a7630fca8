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

:data:`ROUTES` is spliced from one table per feature (``routes_*.py``).
Each row also carries its operation's :class:`~p2pdm.api.schema.Doc`
(summary, parameters, request body, responses), and each handler's request
body schema sits beside it; ``openapi.py`` assembles them into the document.
:func:`_endpoint` enforces what the row declares of the path and query (each
path parameter's pattern, no unknown query parameter), so the document and
the server cannot disagree on those; a test runs schemathesis against both.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from p2pdm.api.events import (
    websocket_events,
)
from p2pdm.api.guard import LocalGuard, grant_of
from p2pdm.api.handlers_batch import BATCH_ROUTE
from p2pdm.api.handlers_web import (
    DemoControl,
)
from p2pdm.api.openapi import build_document
from p2pdm.api.payload import (
    ERROR,
    Handler,
    RequestError,
    check_query,
    error_response,
    p2pdm_error_response,
    p2pdm_error_status,
)
from p2pdm.api.routes_actions import ACTION_ROUTES
from p2pdm.api.routes_common import READ
from p2pdm.api.routes_contacts import CONTACT_ROUTES
from p2pdm.api.routes_conversations import CONVERSATION_ROUTES, CONVERSATION_TOOL_ROUTES
from p2pdm.api.routes_events import EVENT_ROUTES
from p2pdm.api.routes_groups import GROUP_ROUTES
from p2pdm.api.routes_location import LOCATION_ROUTES
from p2pdm.api.routes_media import BLOB_PATH_RULE, MEDIA_ROUTES
from p2pdm.api.routes_messages import MESSAGE_ROUTES
from p2pdm.api.routes_node import NODE_ROUTES, SETTINGS_ROUTES
from p2pdm.api.routes_profile import PROFILE_ROUTES
from p2pdm.api.routes_requests import REQUEST_ROUTES
from p2pdm.api.routes_web import WEB_ROUTES
from p2pdm.api.schema import (
    Doc,
    Route,
)
from p2pdm.api.sessions import (
    LoginCodes,
)
from p2pdm.api.views import (
    SCHEMAS,
)
from p2pdm.api.web import SecurityHeaders, web_routes
from p2pdm.errors import P2PDMError
from p2pdm.node.node import Node

__all__ = ["ROUTES", "create_app", "openapi_document"]

log = logging.getLogger("p2pdm.api")


def _check_path(request: Request, patterns: dict[str, re.Pattern[str]]) -> None:
    """Refuse a path parameter that does not match its documented pattern."""
    for name, pattern in patterns.items():
        value = str(request.path_params[name])
        if not pattern.search(value):
            # "invalid": the code the node gives the same refusal
            raise RequestError(400, "invalid", f"{_PATH_RULES[name]}: {value[:60]!r}")


#: What each checked path parameter must be, in words.
_PATH_RULES: Final = {
    "message_id": "not a message id (32 hex characters)",
    "peer_id": "not a contact's PeerID or name",
    "session_id": "not a session id (web-session- and 12 hex characters)",
    "peer": "not a PeerID or a contact's name",
    "name": "a token name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
    "letter or digit (the owner's token is <home>/api_token, not revoked here)",
    "blob": BLOB_PATH_RULE,
}


def _endpoint(route: Route) -> Callable[[Request], Awaitable[Response]]:
    """Give the route's handler the node, refuse tokens without its scope and requests
    its document refuses (path patterns, unknown query parameters), map failures to JSON."""
    handler: Handler = route.handler
    scope = route.scope
    patterns = route.doc.path_patterns()
    query = route.doc.query_names()

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
            check_query(request, query)
            _check_path(request, patterns)
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
            if status == 500:  # the node's own failure; a 503 is a state, not a fault
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


# --- the description -------------------------------------------------------------


async def get_openapi(request: Request, node: Node) -> Response:
    return JSONResponse(openapi_document())


#: Every route, one row each: path, method, handler, the scope it needs, and
#: its document (``openapi.py`` assembles them), in one table per feature
#: (``routes_*.py``). Marking read is ``send``: it sends read receipts.
ROUTES: Final[tuple[Route, ...]] = (
    *NODE_ROUTES,
    *CONTACT_ROUTES,
    *MESSAGE_ROUTES,
    *CONVERSATION_ROUTES,
    *EVENT_ROUTES,
    *SETTINGS_ROUTES,
    *CONVERSATION_TOOL_ROUTES,
    *ACTION_ROUTES,
    *PROFILE_ROUTES,
    *WEB_ROUTES,
    Route(
        "/v1/openapi.json",
        "GET",
        get_openapi,
        READ,
        Doc("getOpenAPI", "This document", ("200", {"type": "object"}, "the OpenAPI document")),
    ),
    *REQUEST_ROUTES,
    BATCH_ROUTE,
    *MEDIA_ROUTES,
    *LOCATION_ROUTES,
    *GROUP_ROUTES,
)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of :data:`ROUTES` (built once; treat it as read-only)."""
    return build_document(ROUTES, {**SCHEMAS, "Error": ERROR})


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
    for route in ROUTES:
        by_path.setdefault(route.path, {})[route.method] = _endpoint(route)
    routes: list[BaseRoute] = [
        StarletteRoute(path, _by_method(methods), methods=list(methods))
        for path, methods in by_path.items()
    ]
    # The same path over WebSocket (Starlette matches routes by scope type).
    routes.append(WebSocketRoute("/v1/events", websocket_events))
    return [*routes, *web_routes()]


def _by_method(
    endpoints: dict[str, Callable[[Request], Awaitable[Response]]],
) -> Callable[[Request], Awaitable[Response]]:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return dispatch


#: The routes a bot calls at a high rate: looked up in a dict in front of
#: Starlette's router (which tries each path's pattern in turn), with the
#: same endpoint (scope, query and path checks, the error bodies) and the
#: same middleware around it (security headers, the guard).
HOT_ROUTES: Final = frozenset({("POST", "/v1/messages")})


class HotRoutes:
    """ASGI middleware: :data:`HOT_ROUTES` straight to their endpoints; the rest
    to Starlette's router."""

    def __init__(
        self,
        app: ASGIApp,
        endpoints: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]],
    ) -> None:
        self.app = app
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self._endpoints.get((scope["method"], scope["path"]))
            if endpoint is not None:
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _hot_endpoints() -> dict[tuple[str, str], Callable[[Request], Awaitable[Response]]]:
    return {
        (route.method, route.path): _endpoint(route)
        for route in ROUTES
        if (route.method, route.path) in HOT_ROUTES
    }


def create_app(
    node: Node,
    token: str,
    login_codes: LoginCodes | None = None,
    demo: DemoControl | None = None,
    home: Path | None = None,
) -> Starlette:
    """The local API for ``node``, and the web app: ``token`` is the owner's, named
    tokens and web sessions are in its store; ``login_codes``: the unspent sign-in
    codes (shared with the start-up line), else a fresh set; ``demo``: the local
    demo bot, when the daemon runs one; ``home``: the node's home, named in the
    hints the pages print when it is not the default one."""
    app = Starlette(
        routes=_routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                LocalGuard,
                token=token,
                tokens=node.store.list_tokens,
                settled=node.commits.settled,
            ),
            Middleware(HotRoutes, endpoints=_hot_endpoints()),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unhandled},
    )
    app.state.node = node
    app.state.login_codes = login_codes or LoginCodes(node.random_bytes)
    app.state.demo = demo
    app.state.home = home
    return app
