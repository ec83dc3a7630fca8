"""The wall in front of the local API: loopback Host, bearer token, body size.

How this works: :class:`LocalGuard` is a plain ASGI middleware that sees every
HTTP request (and WebSocket handshake) before any route does, in this order:

1. The ``Host`` header must name the loopback interface (``localhost``,
   ``127.0.0.1`` or ``[::1]``, any port), else 403. A web page can point a
   DNS name it controls at 127.0.0.1 ("DNS rebinding") and so reach this
   port from the browser; the browser still sends that name as the Host.
2. An ``Origin`` header, if there is one, must be the API's own origin:
   ``http://`` with a loopback name and the port the API listens on, else
   403. Browsers send it on WebSocket handshakes, ``EventSource`` streams
   and cross-origin requests, and nothing they send can hide it; bots send
   none. So a page of another origin can't open ``/v1/events`` (or anything
   else) even once the web app, served from the API's own origin, signs in
   with a cookie.
3. Under ``/v1``: ``Authorization: Bearer <token>`` must be the owner's token
   or a named token in the store (:mod:`p2pdm.node.tokens`), compared in
   constant time, else 401. Browsers never attach it on their own. Without
   one, the web app's session cookie (:mod:`p2pdm.api.sessions`) is checked
   the same way against the stored sessions. A browser attaches a cookie on
   its own, so a cookie-authenticated request that may change anything (any
   method but GET and HEAD) must also prove it comes from the app itself:
   an ``Origin`` header (step 2 made sure it is ours) or the
   :data:`CSRF_HEADER`, which no other site's page can send without a CORS
   pre-flight that step 2 refuses. The cookie is ``SameSite=Strict`` as
   well, so other sites' requests carry none. What the token may do (its
   :class:`~p2pdm.node.tokens.Grant`) goes to the routes in ``scope["state"]``.
   Paths outside ``/v1`` (the web app's files and ``/login``) need no token:
   they hold nothing secret, and ``/login`` checks its own one-time code.
4. A declared ``Content-Length`` over :data:`MAX_API_BODY_BYTES` gets 413
   before the body is read; a body sent in chunks is counted as it arrives
   and reading it raises :class:`RequestError` (413) at the cap.

No CORS headers are ever sent, so a browser refuses to hand any response to
another origin's script, and pre-flight requests fail at step 2.

Before step 3 reads the tokens, a request under ``/v1`` waits, without
holding the event loop, while a store commit runs in its worker thread
(``settled``: :meth:`p2pdm.node.offloop.OffLoopCommits.settled`): otherwise
its first store read would find that commit due and do its fsync on the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Final

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from p2pdm.api.payload import RequestError
from p2pdm.core.model import ApiToken
from p2pdm.limits import MAX_FILE_BYTES
from p2pdm.node.tokens import Grant, authenticate, is_session

__all__ = [
    "CSRF_HEADER",
    "GRANT_KEY",
    "LOOPBACK_HOST_NAMES",
    "MAX_API_BODY_BYTES",
    "LocalGuard",
    "grant_of",
    "host_is_loopback",
    "is_own_origin",
]

#: Largest request body. The largest legitimate one is a text message of
#: ``MAX_TEXT_BYTES`` (64 KiB of UTF-8); JSON with ``\\uXXXX`` escapes (what
#: ``json.dumps`` writes by default) takes up to 3 bytes per UTF-8 byte for
#: emoji, so 192 KiB plus the other fields. Invites are at most 8 K characters.
MAX_API_BODY_BYTES: Final = 256 << 10
#: The one path whose body is a file (``POST /v1/media``), and its cap: the
#: largest file plus room for a multipart envelope.
UPLOAD_PATH: Final = "/v1/media"
MAX_UPLOAD_BODY_BYTES: Final = MAX_FILE_BYTES + (64 << 10)

#: Host names (without port) a request may be addressed to.
LOOPBACK_HOST_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})

#: WebSocket close code for a refused handshake (RFC 6455 "policy violation").
WS_POLICY_VIOLATION: Final = 1008

#: The header the web app sends on every request (any value): a page of
#: another origin cannot send it without a pre-flight, which is refused.
CSRF_HEADER: Final = "x-p2pdm-csrf"
#: The web app's session cookie (:mod:`p2pdm.api.sessions`).
SESSION_COOKIE: Final = "p2pdm_session"
#: Methods that change nothing, so a cookie alone may make them.
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})

#: Where the request's :class:`~p2pdm.node.tokens.Grant` is kept in ``scope["state"]``.
GRANT_KEY: Final = "p2pdm_grant"


def host_is_loopback(host: str) -> bool:
    """True if a Host header value names the loopback interface (any port)."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, port = host.partition("]")
        name += bracket
        if port and not port.startswith(":"):
            return False
        port = port[1:]
    else:
        name, _, port = host.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return False
    return name in LOOPBACK_HOST_NAMES


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [
        bytes(value).decode("latin-1")
        for key, value in scope.get("headers", ())
        if bytes(key).lower() == name
    ]


def _header(scope: Scope, name: bytes) -> str | None:
    """The one value of a header; None if absent or repeated (ambiguous)."""
    values = _headers(scope, name)
    return values[0] if len(values) == 1 else None


def is_own_origin(origin: str, server: tuple[str, int] | None) -> bool:
    """True if ``origin`` is the API's own: ``http://``, a loopback name, its port."""
    scheme, sep, authority = origin.strip().lower().partition("://")
    if scheme != "http" or not sep or server is None or not host_is_loopback(authority):
        return False
    port = authority.rpartition("]")[2] if authority.startswith("[") else authority
    _, colon, digits = port.partition(":")
    if colon and not digits:
        return False
    return (int(digits) if colon else 80) == server[1]


def _origin_refusal(scope: Scope) -> RequestError | None:
    origins = _headers(scope, b"origin")
    server = scope.get("server")
    if not origins or (len(origins) == 1 and is_own_origin(origins[0], server)):
        return None
    return RequestError(
        403,
        "forbidden_origin",
        "the local API only answers pages of its own origin "
        "(http://127.0.0.1 or localhost at its own port); other origins are refused",
    )


def grant_of(scope: Scope) -> Grant:
    """What the request's token may do (set by :class:`LocalGuard`)."""
    grant = scope.get("state", {}).get(GRANT_KEY)
    if not isinstance(grant, Grant):
        raise RuntimeError("no grant: the app must run behind LocalGuard")
    return grant


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip()


def _is_api(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class _BodyCap:
    """Wraps ``receive`` and refuses the body once it passes the cap."""

    def __init__(self, receive: Receive, cap: int) -> None:
        self._receive = receive
        self._cap = cap
        self._seen = 0

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body", b""))
            if self._seen > self._cap:
                raise too_large(self._cap)
        return message


def too_large(cap: int) -> RequestError:
    # The rest of the body is never read, so the connection cannot carry another
    # request: say so, or a client reusing it would see it drop.
    return RequestError(
        413,
        "body_too_large",
        f"the request body is over {cap} bytes",
        {"Connection": "close"},
    )


class LocalGuard:
    """ASGI middleware: loopback Host, own Origin, bearer token, body cap (see the module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        tokens: Callable[[], Iterable[ApiToken]] = tuple,
        max_body_bytes: int = MAX_API_BODY_BYTES,
        settled: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if not token:
            raise ValueError("the API token is empty")
        self.app = app
        self._token = token
        self._tokens = tokens  # read on every request: a revoked token stops at once
        self._max_body = max_body_bytes
        #: Waits while a store commit is in its worker thread
        #: (``OffLoopCommits.settled``): a request reads the store (the tokens
        #: first) after it returned, instead of doing its fsync on the loop.
        self._settled = settled

    def _cap(self, scope: Scope) -> int:
        """The body cap of this request: a file upload may be a whole file."""
        if scope.get("method") == "POST" and scope.get("path") == UPLOAD_PATH:
            return max(self._max_body, MAX_UPLOAD_BODY_BYTES)
        return self._max_body

    def _grant(self, scope: Scope) -> Grant | None:
        header = _header(scope, b"authorization")
        if header is not None:
            given = _bearer(header)
            return None if given is None else authenticate(given, self._token, self._tokens())
        return self._cookie_grant(scope)

    def _cookie_grant(self, scope: Scope) -> Grant | None:
        cookies = _headers(scope, b"cookie")
        secret = cookie_parser("; ".join(cookies)).get(SESSION_COOKIE) if cookies else None
        if not secret:
            return None
        method = scope.get("method", "GET")  # a WebSocket handshake is a GET
        if method not in SAFE_METHODS and not (
            _headers(scope, b"origin") or _headers(scope, CSRF_HEADER.encode())
        ):
            return None  # a cookie alone never changes anything
        sessions = [t for t in self._tokens() if is_session(t)]
        # Never the owner's token: a cookie holds a session and nothing else.
        return authenticate(secret, "", sessions) if sessions else None

    def _refusal(self, scope: Scope) -> RequestError | None:
        host = _header(scope, b"host")
        if host is None or not host_is_loopback(host):
            return RequestError(
                403,
                "forbidden_host",
                "the local API only answers requests addressed to localhost, 127.0.0.1 or [::1]",
            )
        refused = _origin_refusal(scope)
        if refused is not None:
            return refused
        if not _is_api(scope.get("path", "")):
            return None
        grant = self._grant(scope)
        if grant is None:
            return RequestError(
                401,
                "unauthorized",
                "send an API token as 'Authorization: Bearer <token>' "
                "(the owner's is in <home>/api_token; `p2pdm token create` makes scoped ones), "
                "or sign in to the web app with `p2pdm ui`",
                {"WWW-Authenticate": 'Bearer realm="p2pdm"'},
            )
        scope.setdefault("state", {})[GRANT_KEY] = grant
        if scope["type"] == "http":
            length = _header(scope, b"content-length")
            if length is not None:
                if not (length.isascii() and length.isdigit()):
                    return RequestError(400, "bad_request", "invalid Content-Length")
                if int(length) > self._cap(scope):
                    return too_large(self._cap(scope))
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)  # lifespan
            return
        if self._settled is not None and _is_api(scope.get("path", "")):
            await self._settled()  # only /v1 reads the store (the tokens)
        refusal = self._refusal(scope)
        if refusal is None:
            if scope["type"] == "http":
                receive = _BodyCap(receive, self._cap(scope))
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await refusal.response()(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": WS_POLICY_VIOLATION})
