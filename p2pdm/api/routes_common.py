"""What the route tables (``routes_*.py``, spliced into ``app.ROUTES``) share:
the scopes, the common path and query parameters, the common answers."""

from __future__ import annotations

from typing import Final

from p2pdm.api.payload import DEFAULT_PAGE_SIZE, MAX_CURSOR
from p2pdm.api.schema import MESSAGE_ID_PATTERN, NAME, path_param
from p2pdm.api.schema import query_int as query_int_param
from p2pdm.core.model import TokenScope
from p2pdm.limits import MAX_PAGE_SIZE

__all__ = [
    "ADMIN",
    "BODY",
    "CONVERSATION",
    "MESSAGE_ID",
    "NOT_FOUND",
    "PAGE",
    "PEER",
    "READ",
    "SEND",
]

READ, SEND, ADMIN = TokenScope.READ, TokenScope.SEND, TokenScope.ADMIN

CONVERSATION: Final = path_param(
    "conversation",
    {"type": "string", "minLength": 1},
    "the conversation id (32 hex characters); or, for the one-to-one conversation, "
    "the contact's name or PeerID",
)
MESSAGE_ID: Final = path_param(
    "message_id",
    {"type": "string", "pattern": MESSAGE_ID_PATTERN},
    "the message id (32 hex characters)",
)
PAGE: Final = (
    query_int_param("limit", "most messages", 1, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE),
    query_int_param("before", "the next_before of the previous page", 0, MAX_CURSOR, None),
)
PEER: Final = path_param(
    "peer",
    NAME,
    "a PeerID, or a contact's name (ignoring case); text that is a PeerID always means that PeerID",
)
NOT_FOUND: Final = {"404": ""}  # the shared wording
BODY: Final = {"413": "", "415": ""}
