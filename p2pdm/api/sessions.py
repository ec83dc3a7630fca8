"""Signing in to the web app: one-time login codes and cookie sessions.

How this works: ``p2pdm ui`` (or the node's start-up line) asks for a login
code through the public API (``POST /v1/sessions/codes``, admin scope) and
prints ``http://127.0.0.1:PORT/login?code=…``. A code is 32 random bytes,
kept in memory only (:class:`LoginCodes`), good once and for
:data:`LOGIN_CODE_TTL_MS`. Opening the link (``GET /login``) spends the code,
makes a session and answers with a redirect to ``/`` that sets the session
cookie (``HttpOnly``, ``SameSite=Strict``, ``Path=/``), so no secret stays
in the address bar, the history or ``localStorage``.

A session is an admin-scoped token stored with the named tokens (only its
SHA-256; the name starts with :data:`~p2pdm.node.tokens.SESSION_PREFIX`), so
the guard checks it with the same code and grants as a bearer token, and a
revoked session stops at once. There are at most :data:`MAX_WEB_SESSIONS`;
signing in again past that ends the oldest. ``GET /v1/sessions`` lists them,
``DELETE /v1/sessions/{id}`` revokes one (``p2pdm ui --sessions``,
``p2pdm ui revoke ID``). What a cookie may do beyond a token, and what stops
another site from using it, is in :mod:`p2pdm.api.guard`.
"""

from __future__ import annotations

import base64
import hmac
import html
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from p2pdm import hints
from p2pdm.api.guard import SESSION_COOKIE
from p2pdm.api.payload import RequestError
from p2pdm.api.schema import MS, STRING, Schema, obj
from p2pdm.core.model import ApiToken, TokenScope
from p2pdm.errors import NotFound
from p2pdm.node.node import Node
from p2pdm.node.tokens import SESSION_PREFIX, TOKEN_PREFIX, hash_token, is_session

__all__ = [
    "LOGIN_CODE_TTL_MS",
    "MAX_WEB_SESSIONS",
    "SESSION_COOKIE",
    "LoginCodes",
    "create_login_code",
    "delete_session",
    "list_sessions",
    "login",
    "login_url",
]

#: A sign-in link works this long (5 minutes): long enough to click it, short
#: enough that one left in a terminal's scroll-back is soon worthless.
LOGIN_CODE_TTL_MS: Final = 5 * 60 * 1000
#: Random bytes in a login code and in a session secret (256 bits).
SECRET_BYTES: Final = 32
#: Unspent codes kept at once; making another past this forgets the oldest
#: (an admin token could otherwise grow the node's memory without end).
MAX_LOGIN_CODES: Final = 16
#: Signed-in browsers at once; signing in past this ends the oldest session.
#: Sessions are stored beside the named tokens and share their store cap.
MAX_WEB_SESSIONS: Final = 8
#: Hex characters of a session id after :data:`SESSION_PREFIX`.
SESSION_ID_HEX: Final = 12
#: What a session id looks like (the path parameter of ``DELETE /v1/sessions/{id}``).
SESSION_ID_PATTERN: Final = f"^{re.escape(SESSION_PREFIX)}[0-9a-f]{{{SESSION_ID_HEX}}}$"
#: A login code as it appears in the link (base64url of :data:`SECRET_BYTES`).
_CODE_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{43}")


def _secret(random_bytes: Callable[[int], bytes]) -> str:
    return base64.urlsafe_b64encode(random_bytes(SECRET_BYTES)).rstrip(b"=").decode("ascii")


@dataclass(slots=True)
class LoginCodes:
    """Unspent login codes, in memory only: a restart forgets them (by design)."""

    random_bytes: Callable[[int], bytes] = os.urandom
    _codes: dict[str, int] = field(default_factory=dict)  # code -> expires_at_ms

    def make(self, now_ms: int) -> tuple[str, int]:
        """A fresh code and when it expires."""
        self._forget_expired(now_ms)
        while len(self._codes) >= MAX_LOGIN_CODES:
            del self._codes[next(iter(self._codes))]  # dicts keep insertion order
        code = _secret(self.random_bytes)
        expires = now_ms + LOGIN_CODE_TTL_MS
        self._codes[code] = expires
        return code, expires

    def spend(self, code: str, now_ms: int) -> bool:
        """True once for a valid unexpired code; it is gone afterwards either way."""
        self._forget_expired(now_ms)
        found = None
        for known in self._codes:  # every entry compared, in constant time each
            if hmac.compare_digest(known.encode(), code.encode()):
                found = known
        if found is None:
            return False
        del self._codes[found]
        return True

    def _forget_expired(self, now_ms: int) -> None:
        for code in [c for c, expires in self._codes.items() if expires <= now_ms]:
            del self._codes[code]


def login_url(api: tuple[str, int], code: str) -> str:
    host, port = api
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/login?code={code}"


def ui_command(request: Request) -> str:
    """How to ask this node for a new sign-in link: ``p2pdm ui``, with ``--home``
    when the node does not run from the default home."""
    return hints.command(getattr(request.app.state, "home", None), "ui")


def _refused(request: Request) -> Response:
    command = ui_command(request)
    if "text/html" not in request.headers.get("accept", ""):
        message = f"this sign-in link is spent, expired or wrong: run `{command}` for a new one"
        return RequestError(403, "login_refused", message).response()
    # A person, in a browser: static text, no script, nothing from the request.
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>p2pdm: sign-in link refused</title>"
        '<link rel="icon" href="/app/icon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/app/app.css">'
        '</head><body><main class="signin"><h1>Sign-in link refused</h1>'
        "<p>This sign-in link was already used, has expired (links work for "
        f"{LOGIN_CODE_TTL_MS // 60_000} minutes) or is wrong. Each link signs in "
        "one browser, once.</p>"
        f"<p>For a new one, run <code>{html.escape(command)}</code> on this computer "
        "and open the link it prints.</p></main></body></html>"
    )
    return HTMLResponse(page, status_code=403)


def start_session(node: Node, now_ms: int) -> tuple[ApiToken, str]:
    """Store a new session (ending the oldest past the cap); returns it and its secret."""
    secret = TOKEN_PREFIX + _secret(node.random_bytes)
    name = SESSION_PREFIX + node.random_bytes(SESSION_ID_HEX // 2).hex()
    token = ApiToken(name, hash_token(secret), TokenScope.ADMIN, (), now_ms)
    with node.store.transaction():
        sessions = sorted(
            (t for t in node.store.list_tokens() if is_session(t)), key=lambda t: t.created_at_ms
        )
        for old in sessions[: max(0, len(sessions) - MAX_WEB_SESSIONS + 1)]:
            node.store.delete_token(old.name)
        node.store.put_token(token)
    return token, secret


# --- handlers ----------------------------------------------------------------------


async def create_login_code(request: Request, node: Node) -> Response:
    codes: LoginCodes = request.app.state.login_codes
    code, expires = codes.make(node.now_ms())
    server = request.scope.get("server") or ("127.0.0.1", 80)
    url = login_url((str(server[0]), int(server[1])), code)
    return JSONResponse({"url": url, "expires_at_ms": expires}, status_code=201)


LOGIN_CODE: Final[Schema] = obj(
    {
        "url": {
            **STRING,
            "description": "the sign-in link: open it in a browser on this machine; it works once",
        },
        "expires_at_ms": {**MS, "description": "when the link stops working"},
    }
)


def session_json(token: ApiToken) -> dict[str, Any]:
    return {"id": token.name, "created_at_ms": token.created_at_ms}


SESSION: Final[Schema] = obj(
    {
        "id": {"type": "string", "pattern": SESSION_ID_PATTERN},
        "created_at_ms": {**MS, "description": "when the browser signed in"},
    }
)


async def list_sessions(request: Request, node: Node) -> Response:
    sessions = [session_json(t) for t in node.store.list_tokens() if is_session(t)]
    return JSONResponse({"sessions": sessions})


async def delete_session(request: Request, node: Node) -> Response:
    name = request.path_params["session_id"]
    if not node.store.delete_token(name):
        raise NotFound(f"no session {name[:64]!r}")
    return Response(status_code=204)


async def login(request: Request) -> Response:
    """``GET /login?code=…``: spend the code, set the session cookie, go to the app."""
    node: Node = request.app.state.node
    codes: LoginCodes = request.app.state.login_codes
    code = request.query_params.get("code", "")
    now = node.now_ms()
    if not _CODE_PATTERN.fullmatch(code) or not codes.spend(code, now):
        return _refused(request)
    _, secret = start_session(node, now)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, secret, path="/", httponly=True, samesite="strict", secure=False
    )
    response.headers["Cache-Control"] = "no-store"
    return response
