"""JSON in and out of the local API: request checking, record views and error bodies.

How this works: a request body is read once, parsed strictly (an object, no
NaN, known fields only) into :class:`JSONObject`, whose typed getters raise
:class:`RequestError` with a message that names the field. Every error the API
returns has the body ``{"error": {"code": "...", "message": "..."}}`` (its
schema, :data:`ERROR`, is beside :func:`error_response`); :data:`ERROR_STATUS`
maps the project's error tree to a status and a code. Records become JSON in
:mod:`p2pdm.api.views`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from p2pdm.api.schema import Schema, obj
from p2pdm.core.model import EventType
from p2pdm.errors import (
    ActionRefused,
    ConfigError,
    GroupRefused,
    IdempotencyConflict,
    InviteError,
    InviteExpired,
    MediaRefused,
    NameRefused,
    NotConnected,
    NotFound,
    P2PDMError,
    PeerBlocked,
    ProfileRefused,
    SessionError,
    StoreError,
    WireError,
)
from p2pdm.node.events import TooManyListeners

if TYPE_CHECKING:
    from p2pdm.node.node import Node

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "ERROR",
    "ERROR_STATUS",
    "JSON_MEDIA_TYPE",
    "MAX_CURSOR",
    "Handler",
    "JSONObject",
    "RequestError",
    "error_response",
    "p2pdm_error_response",
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
    (IdempotencyConflict, 422, "idempotency_key_reused"),
    (ActionRefused, 422, "action_refused"),
    (GroupRefused, 422, "group_refused"),
    (NameRefused, 409, "name_refused"),
    (PeerBlocked, 409, "peer_blocked"),
    (MediaRefused, 422, "media_refused"),
    (ProfileRefused, 422, "profile_refused"),
    (TooManyListeners, 503, "too_many_listeners"),
    (NotConnected, 503, "not_connected"),
    (StoreError, 500, "store_error"),
    (P2PDMError, 422, "rejected"),
)


#: A route's handler: the request and the node in, a response out.
Handler = Callable[[Request, "Node"], Awaitable[Response]]

#: Most items in a list field of a request body (token contacts).
MAX_LIST_ITEMS: Final = 256


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


ERROR: Final[Schema] = obj(
    {
        "error": obj(
            {
                "code": {
                    "type": "string",
                    "description": "stable, for programs: not_found, invalid, …",
                },
                "message": {"type": "string", "description": "one sentence, for people"},
            }
        )
    }
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

    def has(self, key: str) -> bool:
        """True if the field is there and not null."""
        return self.data.get(key) is not None

    def opt_object(self, key: str) -> dict[str, Any] | None:
        """An optional object field (absent or null gives None)."""
        value = self._get(key)
        if value is None or isinstance(value, dict):
            return value
        raise bad_request(f"field {key!r} must be an object, not {_json_type(value)}")

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

    def opt_bool(self, key: str) -> bool | None:
        """An optional boolean field (absent or null gives None)."""
        value = self._get(key)
        if value is None or isinstance(value, bool):
            return value
        raise bad_request(f"field {key!r} must be a boolean, not {_json_type(value)}")

    def opt_int(self, key: str) -> int | None:
        """An optional integer field (absent or null gives None; 1.0 is not one)."""
        value = self._get(key)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise bad_request(f"field {key!r} must be an integer, not {_json_type(value)}")

    def opt_text_list(self, key: str) -> list[str]:
        """An optional list of strings (absent or null gives []), at most MAX_LIST_ITEMS."""
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request(f"field {key!r} must be an array of strings")
        if len(value) > MAX_LIST_ITEMS:
            raise bad_request(f"field {key!r} holds at most {MAX_LIST_ITEMS} items")
        return value

    def rest(self) -> dict[str, Any]:
        """Every field, for bodies whose keys the node checks itself (settings)."""
        self._used.update(self.data)
        return dict(self.data)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise bad_request(f"unknown field {unknown[0]!r}")


def query_int(
    request: HTTPConnection, key: str, default: int | None, lo: int, hi: int
) -> int | None:
    """An integer query parameter in ``[lo, hi]``; raises :class:`RequestError`."""
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise bad_request(f"query parameter {key!r} must be an integer") from None
    if not lo <= value <= hi:
        raise bad_request(f"query parameter {key!r} must be between {lo} and {hi}")
    return value


def check_query(request: HTTPConnection, known: frozenset[str]) -> None:
    """Refuse unknown query parameters, so a typo does not silently do nothing."""
    if not request.scope.get("query_string"):
        return  # none: no need to parse them
    for key in request.query_params:
        if key not in known:
            raise bad_request(f"unknown query parameter {key!r}")


def parse_event_types(text: str | None) -> frozenset[EventType] | None:
    """``types=a,b``: a comma-separated list of known event types; raises RequestError."""
    if text is None or text == "":
        return None
    types = set()
    for name in text.split(","):
        try:
            types.add(EventType(name.strip()))
        except ValueError:
            known = ", ".join(t.value for t in EventType)
            raise bad_request(f"unknown event type {name.strip()[:40]!r}; known: {known}") from None
    return frozenset(types)
