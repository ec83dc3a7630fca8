"""The web app's files, served at the root of the API's address, and the headers of every answer.

How this works: the app is static files in the package folder ``p2pdm/web/``
(no build step): ``/`` is its ``index.html``, ``/app/…`` the rest. They hold
nothing secret, so they need no sign-in (the guard only asks for one under
``/v1``); everything the app shows it fetches from the public ``/v1`` API
with the session cookie. :class:`SecurityHeaders` adds to every answer, API
and files alike, a strict Content-Security-Policy (scripts, styles and
connections from this origin only, no inline script, never in a frame),
``X-Content-Type-Options: nosniff`` (a file is never guessed to be a page)
and ``Referrer-Policy: no-referrer``. Answers under ``/v1`` are never pages:
their policy forbids everything and sandboxes the document, so a peer's HTML
or SVG file opened from the API cannot run. An answer that sets its own
policy keeps it.
"""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path
from typing import Final

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from p2pdm.api.sessions import login, ui_command

__all__ = [
    "API_CONTENT_SECURITY_POLICY",
    "CONTENT_SECURITY_POLICY",
    "SecurityHeaders",
    "web_dir",
    "web_routes",
]

#: What a page of the app may load: only this origin's scripts, styles and
#: connections (the API and its event stream); images and sound also from
#: ``blob:``/``data:`` (thumbnails, recordings); no inline script, no plugin,
#: no frame around it, forms only to itself.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

#: What an API answer may do if a browser ever renders it as a page (a peer's
#: HTML or SVG file among the media, a JSON body sniffed as HTML): nothing. No
#: script, no load, no frame, a unique origin (``sandbox``). ``<img>``,
#: ``<audio>`` and ``<video>`` in the app still show media: a policy governs
#: documents, not images.
API_CONTENT_SECURITY_POLICY: Final = "default-src 'none'; frame-ancestors 'none'; sandbox"

#: Headers on every answer (names lower-case, as ASGI carries them).
_COMMON: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
_PAGE_HEADERS: Final = ((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()), *_COMMON)
_API_HEADERS: Final = (
    (b"content-security-policy", API_CONTENT_SECURITY_POLICY.encode()),
    *_COMMON,
)


def web_dir() -> Path:
    """The folder of the app's files inside the installed package."""
    return Path(str(resources.files("p2pdm") / "web"))


class SecurityHeaders:
    """ASGI middleware: adds the security headers to every HTTP answer that lacks
    them: the app's policy on its pages, :data:`API_CONTENT_SECURITY_POLICY` under ``/v1``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = str(scope.get("path", ""))
        api = path == "/v1" or path.startswith("/v1/")
        extra = _API_HEADERS if api else _PAGE_HEADERS

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


#: In index.html: where the command for a new sign-in link goes (the page shows
#: it to a browser that is not signed in).
UI_COMMAND_MARK: Final = "{{ui_command}}"


async def _index(request: Request) -> Response:
    page = (web_dir() / "index.html").read_text(encoding="utf-8")
    page = page.replace(UI_COMMAND_MARK, html.escape(ui_command(request)))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


async def _favicon(request: Request) -> Response:
    """What browsers ask for on their own, on any page of this address: the app's icon."""
    return FileResponse(web_dir() / "icon.svg", media_type="image/svg+xml")


def web_routes() -> list[BaseRoute]:
    """``/`` (the app), ``/login`` (sign-in links), ``/favicon.ico`` and ``/app/…`` (its files)."""
    return [
        Route("/", _index, methods=["GET"]),
        Route("/login", login, methods=["GET"]),
        Route("/favicon.ico", _favicon, methods=["GET"]),
        Mount("/app", StaticFiles(directory=web_dir()), name="web"),
    ]
