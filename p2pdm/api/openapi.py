"""The OpenAPI 3.1 description of the local API, served at ``/v1/openapi.json``.

How this works: the document is written out here by hand, path by path, so
that it reads like the reference it is; the parts that code already defines
(status values, settings and their types, limits) are taken from that code.
Tests check that every route of the app is documented with its method, and
that real responses match the schemas below.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from p2pdm import __version__
from p2pdm.api.events import DEFAULT_EVENTS_PAGE, MAX_POLL_TIMEOUT_S
from p2pdm.api.guard import MAX_API_BODY_BYTES
from p2pdm.api.payload import DEFAULT_PAGE_SIZE, JSON_MEDIA_TYPE, MAX_CURSOR, MAX_LIST_ITEMS
from p2pdm.core.model import DeliveryStatus, Direction, EventType, TokenScope
from p2pdm.limits import MAX_PAGE_SIZE, MAX_STORED_EVENTS, MAX_STORED_REQUEST_EVENTS
from p2pdm.node.events import MAX_EVENT_LISTENERS
from p2pdm.node.node import DEFAULT_API_PORT, SETTINGS
from p2pdm.node.tokens import TOKEN_NAME_PATTERN

__all__ = ["OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION: Final = "3.1.0"

Schema = dict[str, Any]

_JSON_TYPES: Final[dict[type, str]] = {bool: "boolean", str: "string", int: "integer"}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """A closed object schema whose properties are required unless named optional."""
    return {
        "type": "object",
        "properties": properties,
        "required": [key for key in properties if key not in optional],
        "additionalProperties": False,
    }


_STRING: Final[Schema] = {"type": "string"}
_INT: Final[Schema] = {"type": "integer"}
_BOOL: Final[Schema] = {"type": "boolean"}
_MS: Final[Schema] = {"type": "integer", "description": "milliseconds since the Unix epoch"}
_PEER_ID: Final[Schema] = {
    "type": "string",
    "description": "a libp2p PeerID of an Ed25519 key (12D3KooW…)",
}
_HEX_ID: Final[Schema] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_SCOPE: Final[Schema] = {
    "type": "string",
    "enum": [s.value for s in TokenScope],
    "description": "read < send < admin; each includes the ones before it",
}
_TOKEN_PROPERTIES: Final[dict[str, Schema]] = {
    "name": {"type": "string", "pattern": f"^{TOKEN_NAME_PATTERN.pattern}$"},
    "scope": _SCOPE,
    "contacts": {
        "type": "array",
        "items": _PEER_ID,
        "description": "the contacts it is limited to; empty: every contact",
    },
    "created_at_ms": _MS,
}

_MESSAGE_PROPERTIES: Final[dict[str, Schema]] = {
    "id": _HEX_ID,
    "conversation_id": _HEX_ID,
    "peer": {**_PEER_ID, "description": "the other party: recipient or sender"},
    "direction": {"type": "string", "enum": [d.value for d in Direction]},
    "kind": {
        "type": "string",
        "description": "'text'; later versions add kinds (see 'unsupported')",
    },
    "text": {"type": ["string", "null"], "description": "the text of a 'text' message"},
    "unsupported": {
        "type": "boolean",
        "description": "a message of a kind this version cannot show (sent by a newer "
        "version): shown as an unsupported message; kept, so a later version can show it",
    },
    "sent_at_ms": {**_MS, "description": "the sender's clock"},
    "stored_at_ms": {**_MS, "description": "when this node stored it"},
    "status": {"type": "string", "enum": [s.value for s in DeliveryStatus]},
    "status_detail": {
        "type": "string",
        "description": "for 'deposited': how many mailboxes hold it and until when; "
        "while not delivered: which mailboxes refused it and why direct delivery failed; "
        "for 'failed'/'expired': why; else empty",
    },
    "request": {
        "type": "boolean",
        "description": "an incoming message from someone who is not a contact",
    },
    "recipients": {
        "type": "array",
        "items": _ref("Recipient"),
        "description": "an outgoing message's status per recipient (one for a one-to-one "
        "message); 'status' is the least advanced of theirs. Empty for incoming messages",
    },
}


_CONTACT_PROPERTIES: Final[dict[str, Schema]] = {
    "peer_id": _PEER_ID,
    "name": {
        "type": "string",
        "description": "unique among the contacts ignoring case, and never a PeerID",
    },
    "added_at_ms": _MS,
    "addrs": {"type": "array", "items": _STRING},
    "last_seen_ms": {"type": ["integer", "null"]},
    "verified": _BOOL,
    "blocked": _BOOL,
    "has_prekeys": {
        "type": "boolean",
        "description": "whether a first message can be encrypted right away",
    },
    "name_from_invite": {
        "type": "boolean",
        "description": "the name is the one the contact gave itself (in its invite), not "
        "one you chose: show 'fingerprint' next to it",
    },
    "fingerprint": {
        "type": "string",
        "description": "the contact's short fingerprint (the last 8 characters of its PeerID)",
    },
}


def _schemas() -> dict[str, Schema]:
    setting_types = {
        key: {"type": _JSON_TYPES[kind], "default": default}
        for key, (kind, default) in SETTINGS.items()
    }
    return {
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "code": {
                            "type": "string",
                            "description": "stable, for programs: not_found, invalid, …",
                        },
                        "message": {"type": "string", "description": "one sentence, for people"},
                    }
                )
            }
        ),
        "Node": _obj(
            {
                "peer_id": _PEER_ID,
                "name": _STRING,
                "addrs": {"type": "array", "items": _STRING},
                "version": _STRING,
                "started_at_ms": {**_MS, "description": "when the node started"},
                "counts": {
                    "type": "object",
                    "additionalProperties": _INT,
                    "description": "contacts, messages, unread, requests, outbox, "
                    "requests_dropped (pending requests dropped over the caps, ever)",
                },
                "event_cursor": {
                    **_INT,
                    "description": "the id of the newest event: pass it as 'since' to "
                    "follow events from now on",
                },
                "dht": {
                    "oneOf": [{"type": "null"}, _ref("DhtStats")],
                    "description": "what this node's DHT store holds and refused; "
                    "null when it is not on the network",
                },
                "token": {
                    **_obj({"name": _STRING, "scope": _SCOPE}),
                    "description": "the token of this request: its name ('owner' for the "
                    "owner's) and scope",
                },
                "invite": {"type": "string", "description": "a fresh p2pdm: invite"},
            }
        ),
        "DhtStats": _obj(
            {
                "records": {**_INT, "description": "value records held (others' and our own)"},
                "record_bytes": _INT,
                "providers": {**_INT, "description": "provider records held"},
                "provider_bytes": _INT,
                "refused": {
                    "type": "object",
                    "additionalProperties": _INT,
                    "description": "writes refused since start, by reason: rate, "
                    "peer_cap, store_full, too_large",
                },
                "evicted": {**_INT, "description": "records evicted to make room"},
            }
        ),
        "Contact": _obj(_CONTACT_PROPERTIES),
        "AddedContact": _obj(
            {
                **_CONTACT_PROPERTIES,
                "renamed_from": {
                    "type": ["string", "null"],
                    "description": "the name in the invite, when it was a PeerID or another "
                    "contact's name and so was changed (the fingerprint appended, or the "
                    "fingerprint alone); null when saved as given",
                },
            }
        ),
        "ContactList": _obj({"contacts": {"type": "array", "items": _ref("Contact")}}),
        "added_at_ms": _MS,
        "addrs": {"type": "array", "items": _STRING},
        "last_seen_ms": {"type": ["integer", "null"]},
        "verified": _BOOL,
        "blocked": _BOOL,
        "NewContact": {
            "oneOf": [
                _obj({"invite": _STRING, "name": _STRING}, optional=("name",)),
                _obj({"peer_id": _PEER_ID, "name": _STRING}, optional=("name",)),
            ],
            "description": "an invite (preferred: it carries keys and addresses) or a PeerID",
        },
        "SendMessage": _obj(
            {
                "to": {
                    "type": "string",
                    "description": "a PeerID, or a contact's name (ignoring case); "
                    "text that is a PeerID always means that PeerID",
                },
                "text": _STRING,
                "idempotency_key": {
                    "type": ["string", "null"],
                    "minLength": 1,
                    "maxLength": 255,
                    "description": "a retry with the same key (per token, kept for a day) "
                    "returns the message the first request made instead of sending again",
                },
            },
            optional=("idempotency_key",),
        ),
        "Message": _obj(_MESSAGE_PROPERTIES),
        "Recipient": _obj(
            {
                "peer": _PEER_ID,
                "status": _MESSAGE_PROPERTIES["status"],
                "at_ms": {**_MS, "description": "when it reached this status"},
            }
        ),
        "StatusChange": _obj(
            {"status": _MESSAGE_PROPERTIES["status"], "at_ms": _MS, "detail": _STRING}
        ),
        "MessageWithHistory": _obj(
            {
                **_MESSAGE_PROPERTIES,
                "history": {"type": "array", "items": _ref("StatusChange")},
            }
        ),
        "MessagePage": _obj(
            {
                "messages": {"type": "array", "items": _ref("Message")},
                "next_before": {
                    "type": ["integer", "null"],
                    "description": "pass as 'before' for the next (older) page; null at the end",
                },
            }
        ),
        "Conversation": _obj(
            {
                "id": _HEX_ID,
                "peer": _PEER_ID,
                "name": {"type": ["string", "null"], "description": "the contact's name"},
                "last_message_at_ms": _MS,
                "unread": _INT,
                "request": {
                    "type": "boolean",
                    "description": "every message in it is a message request",
                },
            }
        ),
        "ConversationList": _obj(
            {"conversations": {"type": "array", "items": _ref("Conversation")}}
        ),
        "ReadResult": _obj(
            {"read": {"type": "array", "items": _HEX_ID, "description": "ids marked read"}}
        ),
        "Event": _obj(
            {
                "id": {"type": "integer", "description": "increasing; the cursor to resume from"},
                "type": {
                    "type": "string",
                    "description": "one of "
                    + ", ".join(t.value for t in EventType)
                    + "; later versions add types, which clients must ignore",
                },
                "at_ms": _MS,
                "peer": {"type": ["string", "null"], "description": "the other party"},
                "message_id": {"type": ["string", "null"], "pattern": "^[0-9a-f]{32}$"},
                "status": {
                    "type": ["string", "null"],
                    "description": "message.status: the new status",
                },
                "detail": _STRING,
                "conversation_id": {
                    **_HEX_ID,
                    "type": ["string", "null"],
                    "description": "message.*: the message's conversation",
                },
                "message": {
                    "oneOf": [_ref("Message"), {"type": "null"}],
                    "description": "message.received: the message as stored now",
                },
            }
        ),
        "EventPage": _obj(
            {
                "events": {"type": "array", "items": _ref("Event")},
                "cursor": {
                    "type": "integer",
                    "description": "pass as 'since' next time (past every event looked at)",
                },
                "gap": {
                    "type": "boolean",
                    "description": "events after 'since' were dropped before you read them "
                    f"(the log keeps the newest {MAX_STORED_EVENTS}; request events do not "
                    "count and never set it)",
                },
                "requests_gap": {
                    "type": "boolean",
                    "description": "events about message requests after 'since' were pruned "
                    f"(kept apart: the newest {MAX_STORED_REQUEST_EVENTS}); reload the requests",
                },
            }
        ),
        "Token": _obj(_TOKEN_PROPERTIES),
        "TokenList": _obj({"tokens": {"type": "array", "items": _ref("Token")}}),
        "NewToken": _obj(
            {
                "scope": _SCOPE,
                "name": {**_TOKEN_PROPERTIES["name"], "type": ["string", "null"]},
                "contacts": {
                    "type": ["array", "null"],
                    "items": {"type": "string", "description": "a contact's name or PeerID"},
                    "maxItems": MAX_LIST_ITEMS,
                },
            },
            optional=("name", "contacts"),
        ),
        "CreatedToken": _obj(
            {
                **_TOKEN_PROPERTIES,
                "token": {"type": "string", "description": "the secret; shown only this once"},
            }
        ),
        "Settings": _obj(setting_types),
        "SettingsPatch": _obj(setting_types, optional=tuple(setting_types)),
    }


def _json_body(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON_MEDIA_TYPE: {"schema": schema}}}


def _error(description: str) -> Schema:
    return _json_body(_ref("Error"), description)


#: Responses every operation can give.
_COMMON_ERRORS: Final[dict[str, Schema]] = {
    "401": {"$ref": "#/components/responses/Unauthorized"},
    "403": {"$ref": "#/components/responses/ForbiddenHost"},
    "500": {"$ref": "#/components/responses/InternalError"},
}
#: Responses of operations that take a JSON body.
_BODY_ERRORS: Final[dict[str, Schema]] = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "413": {"$ref": "#/components/responses/TooLarge"},
    "415": {"$ref": "#/components/responses/UnsupportedMediaType"},
}
_NOT_FOUND: Final[dict[str, Schema]] = {"404": {"$ref": "#/components/responses/NotFound"}}
_BUSY: Final[dict[str, Schema]] = {"503": {"$ref": "#/components/responses/TooManyListeners"}}
_BAD_INPUT: Final[dict[str, Schema]] = {"400": {"$ref": "#/components/responses/BadRequest"}}


def _op(
    operation_id: str,
    summary: str,
    ok: tuple[str, Schema],
    errors: dict[str, Schema],
    *,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    op: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "responses": {ok[0]: ok[1], **errors, **_COMMON_ERRORS},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": body}}}
    if parameters:
        op["parameters"] = parameters
    return op


def _path_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": _STRING,
    }


_CONVERSATION_PARAM: Final = _path_param(
    "conversation",
    "the conversation id (32 hex characters); or, for the one-to-one conversation, "
    "the contact's name or PeerID",
)
_MESSAGE_ID_PARAM: Final = _path_param("message_id", "the message id (32 hex characters)")


def _query_int(name: str, description: str, lo: int, hi: int, default: int | None) -> Schema:
    schema: Schema = {"type": "integer", "minimum": lo, "maximum": hi}
    if default is not None:
        schema["default"] = default
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _event_parameters() -> list[Schema]:
    return [
        _query_int("since", "the cursor: events with a larger id", 0, MAX_CURSOR, 0),
        {
            "name": "types",
            "in": "query",
            "required": False,
            "description": "comma-separated event types to get (default: all)",
            "schema": {"type": "string"},
        },
    ]


def _events_paths() -> dict[str, Schema]:
    stream = _op(
        "streamEvents",
        "Events as Server-Sent Events (send 'Accept: text/event-stream'); the same path "
        "over WebSocket sends each event as a JSON text frame",
        (
            "200",
            {
                "description": "an endless text/event-stream: 'id', 'event' (the type) and "
                "'data' (the Event as JSON) per event; 'Last-Event-ID' resumes",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        ),
        {
            **_BAD_INPUT,
            "406": _error("the request does not accept text/event-stream"),
            **_BUSY,
        },
        parameters=_event_parameters(),
    )
    poll = _op(
        "pollEvents",
        "Events after 'since', oldest first; waits up to 'timeout' seconds for the first",
        ("200", _json_body(_ref("EventPage"), "the events (maybe none) and the next cursor")),
        {**_BAD_INPUT, **_BUSY},
        parameters=[
            *_event_parameters(),
            _query_int(
                "timeout", "seconds to wait when there is nothing", 0, MAX_POLL_TIMEOUT_S, 0
            ),
            _query_int("limit", "most events to return", 1, MAX_PAGE_SIZE, DEFAULT_EVENTS_PAGE),
        ],
    )
    return {"/v1/events": {"get": stream}, "/v1/events/poll": {"get": poll}}


def _token_paths() -> dict[str, Schema]:
    return {
        "/v1/tokens": {
            "get": _op(
                "listTokens",
                "The named API tokens (never their secrets)",
                ("200", _json_body(_ref("TokenList"), "the tokens, by name")),
                _BAD_INPUT,
            ),
            "post": _op(
                "createToken",
                "Make a scoped token, maybe limited to some contacts; the secret is shown once",
                ("201", _json_body(_ref("CreatedToken"), "the token and its secret")),
                {**_BODY_ERRORS, **_NOT_FOUND, "422": _error("the name is taken, or too many")},
                body=_ref("NewToken"),
            ),
        },
        "/v1/tokens/{name}": {
            "delete": _op(
                "revokeToken",
                "Revoke a named token: it stops working at once",
                ("204", {"description": "revoked"}),
                {**_BAD_INPUT, **_NOT_FOUND},
                parameters=[_path_param("name", "the token's name")],
            )
        },
    }


def _paths() -> dict[str, Schema]:
    return {
        "/v1/node": {
            "get": _op(
                "getNode",
                "This node: PeerID, name, addresses, version, counts and a fresh invite",
                ("200", _json_body(_ref("Node"), "the node")),
                _BAD_INPUT,
            )
        },
        "/v1/contacts": {
            "get": _op(
                "listContacts",
                "All contacts, by name",
                ("200", _json_body(_ref("ContactList"), "the contacts")),
                _BAD_INPUT,
            ),
            "post": _op(
                "addContact",
                "Add or rename a contact from an invite or a PeerID; accepts its message requests",
                ("201", _json_body(_ref("AddedContact"), "the contact as stored")),
                {
                    **_BODY_ERRORS,
                    "409": _error("the chosen name is a PeerID or another contact's name"),
                    "422": _error("the invite has expired, or the contact cannot be added"),
                },
                body=_ref("NewContact"),
            ),
        },
        "/v1/contacts/{peer_id}": {
            "delete": _op(
                "deleteContact",
                "Forget a contact (its conversation stays)",
                ("204", {"description": "deleted"}),
                {**_BAD_INPUT, **_NOT_FOUND},
                parameters=[
                    _path_param("peer_id", "the contact's PeerID, or its name (ignoring case)")
                ],
            )
        },
        "/v1/messages": {
            "post": _op(
                "sendMessage",
                "Queue a text message; the node delivers it when it can",
                ("201", _json_body(_ref("Message"), "the message, status 'queued'")),
                {
                    "200": _json_body(
                        _ref("Message"),
                        "a retry with a known idempotency_key: the message it made",
                    ),
                    **_BODY_ERRORS,
                    **_NOT_FOUND,
                    "422": _error(
                        "no session and no prekeys for the recipient yet, or the "
                        "idempotency_key was used for another message"
                    ),
                },
                body=_ref("SendMessage"),
            )
        },
        "/v1/messages/{message_id}": {
            "get": _op(
                "getMessage",
                "One message with its delivery status history",
                ("200", _json_body(_ref("MessageWithHistory"), "the message")),
                {**_BAD_INPUT, **_NOT_FOUND},
                parameters=[_MESSAGE_ID_PARAM],
            )
        },
        "/v1/messages/{message_id}/read": {
            "post": _op(
                "readMessage",
                "Mark the message's conversation read up to now (sends read receipts if on)",
                ("200", _json_body(_ref("Message"), "the message after marking")),
                {**_BAD_INPUT, **_NOT_FOUND},
                parameters=[_MESSAGE_ID_PARAM],
            )
        },
        "/v1/conversations": {
            "get": _op(
                "listConversations",
                "Conversations, most recent first, with unread counts",
                ("200", _json_body(_ref("ConversationList"), "the conversations")),
                _BAD_INPUT,
            )
        },
        "/v1/conversations/{conversation}/messages": {
            "get": _op(
                "listMessages",
                "A page of a conversation's messages, newest first",
                ("200", _json_body(_ref("MessagePage"), "the page")),
                {**_BAD_INPUT, **_NOT_FOUND},
                parameters=[
                    _CONVERSATION_PARAM,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE_SIZE,
                            "default": DEFAULT_PAGE_SIZE,
                        },
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "required": False,
                        "description": "the next_before of the previous page",
                        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_CURSOR},
                    },
                ],
            )
        },
        "/v1/conversations/{conversation}/read": {
            "post": _op(
                "readConversation",
                "Mark every message in the conversation read (sends read receipts if on)",
                ("200", _json_body(_ref("ReadResult"), "the ids newly marked read")),
                {**_BAD_INPUT, **_NOT_FOUND},
                parameters=[_CONVERSATION_PARAM],
            )
        },
        "/v1/settings": {
            "get": _op(
                "getSettings",
                "The node's settings",
                ("200", _json_body(_ref("Settings"), "every setting")),
                _BAD_INPUT,
            ),
            "patch": _op(
                "updateSettings",
                "Change some settings; an unknown key or a wrong type changes nothing",
                ("200", _json_body(_ref("Settings"), "every setting, after the change")),
                _BODY_ERRORS,
                body=_ref("SettingsPatch"),
            ),
        },
        **_events_paths(),
        **_token_paths(),
        "/v1/openapi.json": {
            "get": _op(
                "getOpenAPI",
                "This document",
                ("200", _json_body({"type": "object"}, "the OpenAPI document")),
                {},
            )
        },
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document (built once; treat it as read-only)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "p2pdm local API",
            "version": __version__,
            "description": (
                "The API of one running p2pdm node, on the loopback interface only. "
                "Every request needs 'Authorization: Bearer <token>' (the token is in "
                "<home>/api_token) and a Host of localhost, 127.0.0.1 or [::1]. "
                "A token made with `p2pdm token create` may be limited to a scope "
                "(read, send, admin) and to some contacts. "
                f"Request bodies are JSON, at most {MAX_API_BODY_BYTES} bytes. "
                'Errors are {"error": {"code": …, "message": …}}.'
            ),
        },
        "servers": [{"url": f"http://127.0.0.1:{DEFAULT_API_PORT}"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
            "responses": {
                "BadRequest": _error("the request is malformed or a value is invalid"),
                "Unauthorized": _error("missing or wrong bearer token"),
                "ForbiddenHost": _error(
                    "the Host header is not a loopback name (forbidden_host), an Origin "
                    "header names another origin than the API's own (forbidden_origin), the "
                    "token's scope is too low (forbidden_scope), or it may not use that contact "
                    "(forbidden_contact)"
                ),
                "TooManyListeners": _error(
                    f"{MAX_EVENT_LISTENERS} clients are already waiting for events; retry"
                ),
                "NotFound": _error("no such contact, conversation or message"),
                "TooLarge": _error(f"the body is over {MAX_API_BODY_BYTES} bytes"),
                "UnsupportedMediaType": _error(f"the body is not {JSON_MEDIA_TYPE}"),
                "InternalError": _error("a bug or a store failure in the node; see its log"),
            },
        },
    }
