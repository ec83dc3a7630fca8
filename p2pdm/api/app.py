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

Each row of :data:`ROUTES` also carries its operation's :class:`~p2pdm.api.schema.Doc`
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
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.routing import Route as StarletteRoute

from p2pdm.api.events import (
    POLL_PARAMETERS,
    SSE_MEDIA_TYPE,
    STREAM_PARAMETERS,
    poll_events,
    stream_events,
    websocket_events,
)
from p2pdm.api.guard import LocalGuard, grant_of
from p2pdm.api.handlers import (
    NEW_CONTACT,
    NEW_TOKEN,
    SEND_MESSAGE,
    SETTINGS_PATCH,
    SETTINGS_SCHEMA,
    add_contact,
    add_token,
    conversation_messages,
    delete_contact,
    delete_token,
    get_mailboxes,
    get_message,
    get_node,
    get_settings,
    list_contacts,
    list_conversations,
    list_tokens,
    patch_settings,
    read_conversation,
    read_message,
    send_message,
)
from p2pdm.api.handlers_actions import (
    DELETE_FOR,
    EDIT_MESSAGE,
    NEW_REACTION,
    delete_conversation,
    delete_message,
    edit_message,
    react,
)
from p2pdm.api.handlers_batch import BATCH_ROUTE
from p2pdm.api.handlers_conversations import (
    CONVERSATION_PATCH,
    SEARCH_PARAMETERS,
    TYPING_RESULT,
    patch_conversation,
    search_messages,
    send_typing,
)
from p2pdm.api.handlers_profile import (
    DIRECTORY_PARAMETERS,
    PROFILE_PATCH,
    PROFILE_SCHEMAS,
    clear_profile,
    find_handle,
    get_profile,
    patch_profile,
)
from p2pdm.api.handlers_requests import (
    SCHEMAS as REQUEST_SCHEMAS,
)
from p2pdm.api.handlers_requests import (
    accept_request,
    block_peer,
    block_request,
    decline_request,
    list_blocked,
    list_requests,
    unblock_peer,
)
from p2pdm.api.handlers_web import (
    DEMO,
    INVITE,
    DemoControl,
    delete_demo,
    get_demo,
    get_invite,
    start_demo,
)
from p2pdm.api.openapi import build_document
from p2pdm.api.payload import (
    DEFAULT_PAGE_SIZE,
    ERROR,
    MAX_CURSOR,
    Handler,
    RequestError,
    check_query,
    error_response,
    p2pdm_error_response,
    p2pdm_error_status,
)
from p2pdm.api.routes_groups import GROUP_ROUTES
from p2pdm.api.routes_media import BLOB_PATH_RULE, MEDIA_ROUTES
from p2pdm.api.schema import (
    MESSAGE_ID_PATTERN,
    NAME,
    STRING,
    TOKEN_NAME,
    Doc,
    Route,
    path_param,
    ref,
)
from p2pdm.api.schema import query_int as query_int_param
from p2pdm.api.sessions import (
    LOGIN_CODE,
    SESSION,
    SESSION_ID_PATTERN,
    LoginCodes,
    create_login_code,
    delete_session,
    list_sessions,
)
from p2pdm.api.views import (
    SCHEMAS,
)
from p2pdm.api.web import SecurityHeaders, web_routes
from p2pdm.core.model import TokenScope
from p2pdm.errors import P2PDMError
from p2pdm.limits import DEFAULT_SEARCH_HITS, MAX_PAGE_SIZE, MAX_SEARCH_HITS
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


# --- the description -------------------------------------------------------------


async def get_openapi(request: Request, node: Node) -> Response:
    return JSONResponse(openapi_document())


_READ, _SEND, _ADMIN = TokenScope.READ, TokenScope.SEND, TokenScope.ADMIN

_CONVERSATION: Final = path_param(
    "conversation",
    {"type": "string", "minLength": 1},
    "the conversation id (32 hex characters); or, for the one-to-one conversation, "
    "the contact's name or PeerID",
)
_MESSAGE_ID: Final = path_param(
    "message_id",
    {"type": "string", "pattern": MESSAGE_ID_PATTERN},
    "the message id (32 hex characters)",
)
_PAGE: Final = (
    query_int_param("limit", "most messages", 1, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE),
    query_int_param("before", "the next_before of the previous page", 0, MAX_CURSOR, None),
)
_PEER: Final = path_param(
    "peer",
    NAME,
    "a PeerID, or a contact's name (ignoring case); text that is a PeerID always means that PeerID",
)
_NOT_FOUND: Final = {"404": ""}  # the shared wording
_BODY: Final = {"413": "", "415": ""}

#: Every route, one row each: path, method, handler, the scope it needs, and
#: its document (``openapi.py`` assembles them). Marking read is ``send``: it
#: sends read receipts.
ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "/v1/node",
        "GET",
        get_node,
        _READ,
        Doc(
            "getNode",
            "This node: PeerID, name, addresses, version, counts and a fresh invite",
            ("200", ref("Node"), "the node"),
        ),
    ),
    Route(
        "/v1/mailboxes",
        "GET",
        get_mailboxes,
        _READ,
        Doc(
            "getMailboxes",
            "The mailboxes this node fetches its envelopes from, and what its own holds",
            ("200", ref("Mailboxes"), "the mailboxes"),
        ),
    ),
    Route(
        "/v1/contacts",
        "GET",
        list_contacts,
        _READ,
        Doc("listContacts", "All contacts, by name", ("200", ref("ContactList"), "the contacts")),
    ),
    Route(
        "/v1/contacts",
        "POST",
        add_contact,
        _ADMIN,
        Doc(
            "addContact",
            "Add or rename a contact from an invite or a PeerID; accepts its message requests",
            ("201", ref("AddedContact"), "the contact as stored"),
            {
                "400": "the body is malformed, or the invite is damaged or not signed by its key",
                **_BODY,
                "409": "the chosen name is a PeerID or another contact's name",
                "422": "the invite has expired, or the contact cannot be added",
            },
            body=ref("NewContact"),
            schemas={"NewContact": NEW_CONTACT},
        ),
    ),
    Route(
        "/v1/contacts/{peer_id}",
        "DELETE",
        delete_contact,
        _ADMIN,
        Doc(
            "deleteContact",
            "Forget a contact (its conversation stays)",
            ("204", None, "deleted"),
            _NOT_FOUND,
            parameters=(
                path_param(
                    "peer_id",
                    NAME,
                    "the contact's PeerID, or its name (ignoring case); "
                    "text that is a PeerID always means that PeerID",
                ),
            ),
        ),
    ),
    Route(
        "/v1/messages",
        "POST",
        send_message,
        _SEND,
        Doc(
            "sendMessage",
            "Queue a text message; the node delivers it when it can",
            ("201", ref("Message"), "the message, status 'queued'"),
            {
                **_BODY,
                "404": "'to' is not a PeerID and no contact has that name",
                "409": "you blocked the recipient (code peer_blocked): unblock it first",
                "422": "no session and no prekeys for the recipient yet, or the "
                "idempotency_key was used for another message",
            },
            body=ref("SendMessage"),
            schemas={"SendMessage": SEND_MESSAGE},
            also={
                "200": (ref("Message"), "a retry with a known idempotency_key: the message it made")
            },
        ),
    ),
    Route(
        "/v1/messages/{message_id}",
        "GET",
        get_message,
        _READ,
        Doc(
            "getMessage",
            "One message with its delivery status history",
            ("200", ref("MessageWithHistory"), "the message"),
            _NOT_FOUND,
            parameters=(_MESSAGE_ID,),
        ),
    ),
    Route(
        "/v1/messages/{message_id}/read",
        "POST",
        read_message,
        _SEND,
        Doc(
            "readMessage",
            "Mark the message's conversation read up to now (sends read receipts if on)",
            ("200", ref("Message"), "the message after marking"),
            _NOT_FOUND,
            parameters=(_MESSAGE_ID,),
        ),
    ),
    Route(
        "/v1/conversations",
        "GET",
        list_conversations,
        _READ,
        Doc(
            "listConversations",
            "Conversations, most recent first, with unread counts",
            ("200", ref("ConversationList"), "the conversations"),
        ),
    ),
    Route(
        "/v1/conversations/{conversation}/messages",
        "GET",
        conversation_messages,
        _READ,
        Doc(
            "listMessages",
            "A page of a conversation's messages, newest first",
            ("200", ref("MessagePage"), "the page"),
            _NOT_FOUND,
            parameters=(_CONVERSATION, *_PAGE),
        ),
    ),
    Route(
        "/v1/conversations/{conversation}/read",
        "POST",
        read_conversation,
        _SEND,
        Doc(
            "readConversation",
            "Mark every message in the conversation read (sends read receipts if on)",
            ("200", ref("ReadResult"), "the ids newly marked read"),
            _NOT_FOUND,
            parameters=(_CONVERSATION,),
        ),
    ),
    Route(
        "/v1/events",
        "GET",
        stream_events,
        _READ,
        Doc(
            "streamEvents",
            f"Events as Server-Sent Events (send 'Accept: {SSE_MEDIA_TYPE}': anything else "
            "is 406); the same path over WebSocket sends each event as a JSON text frame",
            (
                "200",
                STRING,
                "an endless text/event-stream: 'id', 'event' (the type) and "
                "'data' (the Event as JSON) per event; 'Last-Event-ID' resumes",
            ),
            {"406": f"the request's Accept header does not name {SSE_MEDIA_TYPE}", "503": ""},
            parameters=STREAM_PARAMETERS,
            ok_media_type=SSE_MEDIA_TYPE,
        ),
    ),
    Route(
        "/v1/events/poll",
        "GET",
        poll_events,
        _READ,
        Doc(
            "pollEvents",
            "Events after 'since', oldest first; waits up to 'timeout' seconds for the first",
            ("200", ref("EventPage"), "the events (maybe none) and the next cursor"),
            {"503": ""},
            parameters=POLL_PARAMETERS,
        ),
    ),
    Route(
        "/v1/settings",
        "GET",
        get_settings,
        _READ,
        Doc(
            "getSettings",
            "The node's settings",
            ("200", ref("Settings"), "every setting"),
            schemas={"Settings": SETTINGS_SCHEMA},
        ),
    ),
    Route(
        "/v1/settings",
        "PATCH",
        patch_settings,
        _ADMIN,
        Doc(
            "updateSettings",
            "Change some settings; an unknown key or a wrong type changes nothing",
            ("200", ref("Settings"), "every setting, after the change"),
            _BODY,
            body=ref("SettingsPatch"),
            schemas={"SettingsPatch": SETTINGS_PATCH},
        ),
    ),
    Route(
        "/v1/tokens",
        "GET",
        list_tokens,
        _ADMIN,
        Doc(
            "listTokens",
            "The named API tokens (never their secrets)",
            ("200", ref("TokenList"), "the tokens, by name"),
        ),
    ),
    Route(
        "/v1/tokens",
        "POST",
        add_token,
        _ADMIN,
        Doc(
            "createToken",
            "Make a scoped token, maybe limited to some contacts; the secret is shown once",
            ("201", ref("CreatedToken"), "the token and its secret"),
            {
                **_BODY,
                "404": "a contact it is limited to is not a PeerID or a contact's name",
                "422": "a token with that name exists, or there are too many tokens",
            },
            body=ref("NewToken"),
            schemas={"NewToken": NEW_TOKEN},
        ),
    ),
    Route(
        "/v1/tokens/{name}",
        "DELETE",
        delete_token,
        _ADMIN,
        Doc(
            "revokeToken",
            "Revoke a named token: it stops working at once",
            ("204", None, "revoked"),
            _NOT_FOUND,
            parameters=(path_param("name", TOKEN_NAME, "the token's name"),),
        ),
    ),
    Route(
        "/v1/conversations/{conversation}",
        "PATCH",
        patch_conversation,
        _SEND,
        Doc(
            "updateConversation",
            "Set a conversation's disappearing-messages timer (the peer is told), or mute "
            "or archive it",
            ("200", ref("Conversation"), "the conversation after the change"),
            {
                **_NOT_FOUND,
                **_BODY,
                "422": "a new timer needs a session or prekeys for the peer, to tell it",
            },
            parameters=(_CONVERSATION,),
            body=ref("ConversationPatch"),
            schemas={"ConversationPatch": CONVERSATION_PATCH},
        ),
    ),
    Route(
        "/v1/conversations/{conversation}/typing",
        "POST",
        send_typing,
        _SEND,
        Doc(
            "sendTyping",
            "Tell the contact you are typing: over an open connection only, never queued "
            "or kept; it shows for a few seconds (off with read receipts)",
            ("200", ref("TypingResult"), "whether the signal was sent, and if not why"),
            _NOT_FOUND,
            parameters=(_CONVERSATION,),
            schemas={"TypingResult": TYPING_RESULT},
        ),
    ),
    Route(
        "/v1/search",
        "GET",
        search_messages,
        _READ,
        Doc(
            "searchMessages",
            "Find messages by the words of their text, newest first",
            ("200", ref("SearchResults"), "the messages found (maybe none)"),
            {"404": "'peer' is not a PeerID and no contact has that name"},
            parameters=(
                *SEARCH_PARAMETERS,
                query_int_param("limit", "most results", 1, MAX_SEARCH_HITS, DEFAULT_SEARCH_HITS),
            ),
        ),
    ),
    Route(
        "/v1/messages/{message_id}/reactions",
        "POST",
        react,
        _SEND,
        Doc(
            "reactToMessage",
            "React to a message with one emoji (replaces yours; an empty one takes it back)",
            ("200", ref("Message"), "the message with its reactions"),
            {**_NOT_FOUND, **_BODY, "422": "the message was unsent or cannot take reactions"},
            parameters=(_MESSAGE_ID,),
            body=ref("NewReaction"),
            schemas={"NewReaction": NEW_REACTION},
        ),
    ),
    Route(
        "/v1/messages/{message_id}",
        "PATCH",
        edit_message,
        _SEND,
        Doc(
            "editMessage",
            "Change the text of your own message, within 15 minutes of sending it",
            ("200", ref("Message"), "the message with its new text"),
            {
                **_NOT_FOUND,
                **_BODY,
                "422": "not your message, not a text, unsent, or past the edit window",
            },
            parameters=(_MESSAGE_ID,),
            body=ref("EditMessage"),
            schemas={"EditMessage": EDIT_MESSAGE},
        ),
    ),
    Route(
        "/v1/messages/{message_id}",
        "DELETE",
        delete_message,
        _SEND,
        Doc(
            "deleteMessage",
            "Unsend your own message for everyone, or (for=me) delete a message here only",
            ("204", None, "unsent (GET shows it as 'unsent'), or deleted here (for=me)"),
            {**_NOT_FOUND, "422": "unsending a message that is not yours"},
            parameters=(_MESSAGE_ID, DELETE_FOR),
        ),
    ),
    Route(
        "/v1/conversations/{conversation}",
        "DELETE",
        delete_conversation,
        _SEND,
        Doc(
            "deleteConversation",
            "Delete a conversation and its messages from this node only (nobody is told)",
            ("204", None, "deleted"),
            _NOT_FOUND,
            parameters=(_CONVERSATION,),
        ),
    ),
    Route(
        "/v1/profile",
        "GET",
        get_profile,
        _READ,
        Doc(
            "getProfile",
            "The profile this node publishes in its signed record (none until set)",
            ("200", ref("Profile"), "the profile; published is false when none is set"),
            schemas=PROFILE_SCHEMAS,
        ),
    ),
    Route(
        "/v1/profile",
        "PATCH",
        patch_profile,
        _ADMIN,
        Doc(
            "updateProfile",
            "Set some profile fields ('' clears one) and republish the record",
            ("200", ref("Profile"), "the profile after the change"),
            {
                **_BODY,
                "422": "a handle that cannot be claimed (look-alike characters, length), "
                "a bio too long, or a picture that is unreadable, too large or a "
                "decompression bomb: nothing changed",
            },
            body=ref("ProfilePatch"),
            schemas={"ProfilePatch": PROFILE_PATCH},
        ),
    ),
    Route(
        "/v1/profile",
        "DELETE",
        clear_profile,
        _ADMIN,
        Doc(
            "clearProfile",
            "Stop publishing a profile: the record carries none, the handle is not provided",
            ("204", None, "cleared"),
        ),
    ),
    Route(
        "/v1/directory",
        "GET",
        find_handle,
        _READ,
        Doc(
            "findHandle",
            "Every checked claimant of a handle, likeliest first (contacts, then the "
            "longest seen); a claim is not proof: compare safety numbers",
            ("200", ref("Directory"), "the claimants (maybe none)"),
            {"422": "a handle that cannot be claimed, or the node is not on the network"},
            parameters=DIRECTORY_PARAMETERS,
        ),
    ),
    Route(
        "/v1/invite",
        "GET",
        get_invite,
        _READ,
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
        _READ,
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
        _ADMIN,
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
        _ADMIN,
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
        _ADMIN,
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
        _ADMIN,
        Doc(
            "listSessions",
            "The web app's signed-in browsers (never their secrets)",
            ("200", ref("SessionList"), "the sessions, oldest first"),
            schemas={
                "Session": SESSION,
                "SessionList": {
                    "type": "object",
                    "properties": {"sessions": {"type": "array", "items": ref("Session")}},
                    "required": ["sessions"],
                    "additionalProperties": False,
                },
            },
        ),
    ),
    Route(
        "/v1/sessions/{session_id}",
        "DELETE",
        delete_session,
        _ADMIN,
        Doc(
            "revokeSession",
            "Sign a browser out: its session stops working at once",
            ("204", None, "revoked"),
            _NOT_FOUND,
            parameters=(
                path_param(
                    "session_id", {"type": "string", "pattern": SESSION_ID_PATTERN}, "the session"
                ),
            ),
        ),
    ),
    Route(
        "/v1/openapi.json",
        "GET",
        get_openapi,
        _READ,
        Doc("getOpenAPI", "This document", ("200", {"type": "object"}, "the OpenAPI document")),
    ),
    Route(
        "/v1/blocked",
        "GET",
        list_blocked,
        _READ,
        Doc(
            "listBlocked",
            "Blocked peers, most recently blocked first",
            ("200", ref("BlockedList"), "the blocked peers"),
            schemas=REQUEST_SCHEMAS,
        ),
    ),
    Route(
        "/v1/blocked",
        "POST",
        block_peer,
        _ADMIN,
        Doc(
            "blockPeer",
            "Block a contact or a stranger: everything it sends is dropped unseen, "
            "nothing is sent to it",
            ("201", ref("BlockedPeer"), "blocked now"),
            {
                "400": "the body is malformed, or names this node",
                **_BODY,
                "404": "no contact of that name",
            },
            body=ref("BlockPeer"),
            also={"200": (ref("BlockedPeer"), "it was blocked already")},
        ),
    ),
    Route(
        "/v1/blocked/{peer}",
        "DELETE",
        unblock_peer,
        _ADMIN,
        Doc(
            "unblockPeer",
            "Unblock a peer",
            ("204", None, "unblocked"),
            {"404": "not blocked, or no contact of that name"},
            parameters=(_PEER,),
        ),
    ),
    Route(
        "/v1/requests",
        "GET",
        list_requests,
        _READ,
        Doc(
            "listRequests",
            "Strangers' pending message requests, one entry per stranger, newest first",
            ("200", ref("RequestList"), "the requests"),
        ),
    ),
    Route(
        "/v1/requests/{peer}/accept",
        "POST",
        accept_request,
        _ADMIN,
        Doc(
            "acceptRequest",
            "Accept a stranger's request: add it as a contact (its messages join the inbox)",
            ("200", ref("AddedContact"), "the new contact"),
            {"404": "no pending request from that peer"},
            parameters=(_PEER,),
        ),
    ),
    Route(
        "/v1/requests/{peer}/decline",
        "POST",
        decline_request,
        _ADMIN,
        Doc(
            "declineRequest",
            "Delete a stranger's request; the sender is told nothing",
            ("200", ref("RequestAnswered"), "deleted"),
            {"404": "no pending request from that peer"},
            parameters=(_PEER,),
        ),
    ),
    Route(
        "/v1/requests/{peer}/block",
        "POST",
        block_request,
        _ADMIN,
        Doc(
            "blockRequest",
            "Block a stranger and delete its request; it is told nothing",
            ("200", ref("RequestAnswered"), "blocked and deleted"),
            {"404": "no pending request from that peer"},
            parameters=(_PEER,),
        ),
    ),
    BATCH_ROUTE,
    *MEDIA_ROUTES,
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


def create_app(
    node: Node,
    token: str,
    login_codes: LoginCodes | None = None,
    demo: DemoControl | None = None,
) -> Starlette:
    """The local API for ``node``, and the web app: ``token`` is the owner's, named
    tokens and web sessions are in its store; ``login_codes``: the unspent sign-in
    codes (shared with the start-up line), else a fresh set; ``demo``: the local
    demo bot, when the daemon runs one."""
    app = Starlette(
        routes=_routes(),
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(LocalGuard, token=token, tokens=node.store.list_tokens),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _unhandled},
    )
    app.state.node = node
    app.state.login_codes = login_codes or LoginCodes(node.random_bytes)
    app.state.demo = demo
    return app
