"""The route rows the web app uses beside the rest: the invite, the demo bot,
sign-in links and sessions (see ``app.ROUTES``)."""

from __future__ import annotations

from typing import Final

from p2pdm.api.handlers_web import DEMO, INVITE, delete_demo, get_demo, get_invite, start_demo
from p2pdm.api.routes_common import ADMIN, NOT_FOUND, READ
from p2pdm.api.schema import Doc, Route, obj, path_param, ref
from p2pdm.api.sessions import (
    LOGIN_CODE,
    SESSION,
    SESSION_ID_PATTERN,
    create_login_code,
    delete_session,
    list_sessions,
)

__all__ = ["WEB_ROUTES"]


WEB_ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/invite",
        "GET",
        get_invite,
        READ,
        Doc(
            "getInvite",
            "A fresh invite, as text and as an SVG QR code",
            ("200", ref("Invite"), "the invite"),
            schemas={"Invite": INVITE},
        ),
    ),
    Route(
        "/v1/demo",
        "GET",
        get_demo,
        READ,
        Doc(
            "getDemo",
            "Whether the local demo bot is offered and running",
            ("200", ref("Demo"), "the demo bot"),
            schemas={"Demo": DEMO},
        ),
    ),
    Route(
        "/v1/demo",
        "POST",
        start_demo,
        ADMIN,
        Doc(
            "startDemo",
            "Start the local demo bot (a second node on this machine, home under this "
            "node's) and add it as a contact; it answers every message",
            ("201", ref("Demo"), "the demo bot, running"),
            {"422": "this node runs without the demo bot"},
        ),
    ),
    Route(
        "/v1/demo",
        "DELETE",
        delete_demo,
        ADMIN,
        Doc(
            "removeDemo",
            "Stop the demo bot, forget it as a contact and delete its home",
            ("200", ref("Demo"), "the demo bot, removed"),
        ),
    ),
    Route(
        "/v1/sessions/codes",
        "POST",
        create_login_code,
        ADMIN,
        Doc(
            "createLoginCode",
            "A one-time sign-in link for the web app (expires after 5 minutes)",
            ("201", ref("LoginCode"), "the link"),
            schemas={"LoginCode": LOGIN_CODE},
        ),
    ),
    Route(
        "/v1/sessions",
        "GET",
        list_sessions,
        ADMIN,
        Doc(
            "listSessions",
            "The web app's signed-in browsers (never their secrets)",
            ("200", ref("SessionList"), "the sessions, oldest first"),
            schemas={
                "Session": SESSION,
                "SessionList": obj({"sessions": {"type": "array", "items": ref("Session")}}),
            },
        ),
    ),
    Route(
        "/v1/sessions/{session_id}",
        "DELETE",
        delete_session,
        ADMIN,
        Doc(
            "revokeSession",
            "Sign a browser out: its session stops working at once",
            ("204", None, "revoked"),
            NOT_FOUND,
            parameters=(
                path_param(
                    "session_id", {"type": "string", "pattern": SESSION_ID_PATTERN}, "the session"
                ),
            ),
        ),
    ),
)
