"""JSON in and out of the local API: request checking, record views and error bodies.

How this works: a request body is read once, parsed strictly (an object, no
NaN, known fields only) into :class:`JSONObject`, whose typed getters raise
:class:`RequestError` with a message that names the field. Records from the
store become plain JSON dictionaries through one ``*_json`` function each, so
the shapes in ``openapi.py`` have exactly one place to agree with. Every error
the API returns has the body ``{"error": {"code": "...", "message": "..."}}``;
:data:`ERROR_STATUS` maps the project's error tree to a status and a code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from p2pdm.core import cbor
from p2pdm.core.identity import PeerId
from p2pdm.core.model import Contact, Conversation, StatusChange, StoredMessage
from p2pdm.errors import (
    ConfigError,
    InviteError,
    InviteExpired,
    NotFound,
    P2PDMError,
    SessionError,
    StoreError,
    WireError,
)
from p2pdm.limits import MAX_FRAME_BYTES

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "ERROR_STATUS",
    "JSON_MEDIA_TYPE",
    "MAX_CURSOR",
    "JSONObject",
    "RequestError",
    "contact_json",
    "conversation_json",
    "error_response",
    "message_json",
    "p2pdm_error_response",
    "status_json",
]

#: Media type of every request and response body. A body of another type is
#: refused (415): browsers send cross-site form posts as form or plain-text
#: types, so this is a second wall behind the bearer token.
JSON_MEDIA_TYPE: Final = "application/json"

#: Messages per page when the client does not say (a screenful of chat).
DEFAULT_PAGE_SIZE: Final = 50
#: Largest ``before`` cursor accepted (the store's sequence numbers are int64).
MAX_CURSOR: Final = 2**63 - 1

#: How each project error reaches an API client, most specific class first:
#: (class, HTTP status, error code). Input the node refuses is the client's
#: fault (4xx); a failing store is ours (500).
ERROR_STATUS: Final[tuple[tuple[type[P2PDMError], int, str], ...]] = (
    (NotFound, 404, "not_found"),
    (InviteExpired, 422, "invite_expired"),
    (InviteError, 400, "bad_invite"),
    (WireError, 400, "invalid"),
    (ConfigError, 400, "invalid_setting"),
    (SessionError, 422, "no_session"),
    (StoreError, 500, "store_error"),
    (P2PDMError, 422, "rejected"),
)


class RequestError(Exception):
    """A request the API refuses before the node sees it (bad JSON, auth, size)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message, self.headers)


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The API's one error shape."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def error_message(exc: BaseException) -> str:
    """The error's own text, else the first line of its class docstring."""
    text = str(exc).strip()
    if text:
        return text
    doc = (type(exc).__doc__ or type(exc).__name__).strip()
    return doc.splitlines()[0]


def p2pdm_error_status(exc: P2PDMError) -> tuple[int, str]:
    for kind, status, code in ERROR_STATUS:
        if isinstance(exc, kind):
            return status, code
    raise AssertionError("ERROR_STATUS ends with P2PDMError")  # pragma: no cover


def p2pdm_error_response(exc: P2PDMError) -> JSONResponse:
    status, code = p2pdm_error_status(exc)
    return error_response(status, code, error_message(exc))


# --- reading requests --------------------------------------------------------


def bad_request(message: str) -> RequestError:
    return RequestError(400, "bad_request", message)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class JSONObject:
    """A request body that is a JSON object, read field by field.

    Each getter marks its field as used; :meth:`done` refuses the fields no
    getter asked for, so a misspelt field is an error instead of being
    silently ignored.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self._used: set[str] = set()

    @classmethod
    async def read(cls, request: Request) -> JSONObject:
        """Read and parse the body; raises :class:`RequestError` (400, 413 or 415)."""
        media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            raise RequestError(415, "unsupported_media_type", f"send the body as {JSON_MEDIA_TYPE}")
        raw = await request.body()
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise bad_request(f"the body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise bad_request(f"the body must be a JSON object, not {_json_type(data)}")
        return cls(data)

    def _get(self, key: str) -> object:
        self._used.add(key)
        return self.data.get(key)

    def text(self, key: str) -> str:
        """A required string field."""
        value = self.opt_text(key)
        if value is None:
            raise bad_request(f"missing field {key!r}")
        return value

    def opt_text(self, key: str) -> str | None:
        """An optional string field (absent or null gives None)."""
        value = self._get(key)
        if value is None or isinstance(value, str):
            return value
        raise bad_request(f"field {key!r} must be a string, not {_json_type(value)}")

    def rest(self) -> dict[str, Any]:
        """Every field, for bodies whose keys the node checks itself (settings)."""
        self._used.update(self.data)
        return dict(self.data)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise bad_request(f"unknown field {unknown[0]!r}")


def query_int(request: Request, key: str, default: int | None, lo: int, hi: int) -> int | None:
    """An integer query parameter in ``[lo, hi]``; raises :class:`RequestError`."""
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise bad_request(f"query parameter {key!r} must be an integer") from None
    if not lo <= value <= hi:
        raise bad_request(f"query parameter {key!r} must be between {lo} and {hi}")
    return value


def check_query(request: Request, known: frozenset[str]) -> None:
    """Refuse unknown query parameters, so a typo does not silently do nothing."""
    for key in request.query_params:
        if key not in known:
            raise bad_request(f"unknown query parameter {key!r}")


# --- record views ------------------------------------------------------------


def contact_json(contact: Contact) -> dict[str, Any]:
    return {
        "peer_id": str(contact.peer_id),
        "name": contact.name,
        "added_at_ms": contact.added_at_ms,
        "addrs": list(contact.addrs),
        "last_seen_ms": contact.last_seen_ms,
        "verified": contact.verified,
        "blocked": contact.blocked,
        "has_prekeys": contact.bundle is not None,
    }


def _message_text(message: StoredMessage) -> str | None:
    """The text of a text message; None for other kinds or an undecodable body."""
    if message.kind != "text":
        return None
    try:
        body = cbor.decode(message.body, MAX_FRAME_BYTES)
    except WireError:
        return None
    text = body.get("text") if isinstance(body, dict) else None
    return text if isinstance(text, str) else None


def message_json(message: StoredMessage) -> dict[str, Any]:
    return {
        "id": message.id.hex(),
        "conversation_id": message.conversation_id.hex(),
        "peer": str(message.peer),
        "direction": message.direction.value,
        "kind": message.kind,
        "text": _message_text(message),
        "sent_at_ms": message.sent_at_ms,
        "stored_at_ms": message.stored_at_ms,
        "status": message.status.value,
        "request": message.request,
    }


def status_json(change: StatusChange) -> dict[str, Any]:
    return {"status": change.status.value, "at_ms": change.at_ms, "detail": change.detail}


def conversation_json(conversation: Conversation, names: Mapping[PeerId, str]) -> dict[str, Any]:
    return {
        "id": conversation.id.hex(),
        "peer": str(conversation.peer),
        "name": names.get(conversation.peer),
        "last_message_at_ms": conversation.last_message_at_ms,
        "unread": conversation.unread,
        "request": conversation.request,
    }
