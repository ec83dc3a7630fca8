"""Building blocks of the API's OpenAPI description, and the route table's row type.

How this works: each module that writes JSON keeps the JSON Schema of what it
writes beside the function that writes it (``views.py``, ``payload.py``), each
handler in ``app.py`` keeps the schema of the body it reads beside it, and each
row of :data:`~p2pdm.api.app.ROUTES` carries its operation's :class:`Doc`.
``openapi.py`` only assembles them. The patterns here are the ones the server
enforces (``app.py`` checks every path parameter against its pattern), so a
request valid by the document is one the server accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from p2pdm.core.identity import PeerId
from p2pdm.core.model import TokenScope
from p2pdm.limits import MAX_NAME_BYTES
from p2pdm.node.tokens import OWNER, SESSION_PREFIX, TOKEN_NAME_PATTERN

__all__ = [
    "BOOL",
    "HEX_ID",
    "INT",
    "MESSAGE_ID_PATTERN",
    "MS",
    "NAME",
    "PEER_ID",
    "PEER_ID_PATTERN",
    "PEER_ID_SCHEMA",
    "SCOPE",
    "STRING",
    "TOKEN_NAME",
    "Doc",
    "Route",
    "Schema",
    "obj",
    "path_param",
    "query_int",
    "ref",
]

Schema = dict[str, Any]

_BASE58: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _chars(lo: str, hi: str) -> str:
    """A character class of the base58 characters from ``lo`` to ``hi`` (inclusive)."""
    chars = _BASE58[_BASE58.index(lo) : _BASE58.index(hi) + 1]
    if len(chars) == 1:
        return chars
    runs: list[str] = []  # ASCII-contiguous runs, written a-z
    start = prev = chars[0]
    for char in [*chars[1:], ""]:
        if char and ord(char) == ord(prev) + 1:
            prev = char
            continue
        runs.append(
            start if start == prev else f"{start}{'-' if ord(prev) > ord(start) + 1 else ''}{prev}"
        )
        start = prev = char
    return f"[{''.join(runs)}]"


_ANY: Final = _chars(_BASE58[0], _BASE58[-1])


def _not_below(low: str) -> str:
    """A pattern of the base58 strings of ``len(low)`` characters sorting at or after ``low``."""
    if not low:
        return ""
    head, rest = low[0], low[1:]
    tail = f"{_chars(head, head)}{_not_below(rest)}"
    if head == _BASE58[-1]:
        return tail
    after = _chars(_BASE58[_BASE58.index(head) + 1], _BASE58[-1])
    return f"(?:{tail}|{after}{_ANY}{{{len(rest)}}})" if rest else f"(?:{tail}|{after})"


def _not_above(high: str) -> str:
    """A pattern of the base58 strings of ``len(high)`` characters sorting at or before ``high``."""
    if not high:
        return ""
    head, rest = high[0], high[1:]
    tail = f"{_chars(head, head)}{_not_above(rest)}"
    if head == _BASE58[0]:
        return tail
    before = _chars(_BASE58[0], _BASE58[_BASE58.index(head) - 1])
    return f"(?:{tail}|{before}{_ANY}{{{len(rest)}}})" if rest else f"(?:{tail}|{before})"


def _peer_id_pattern() -> str:
    """Exactly the text forms of Ed25519 PeerIDs: base58 keeps numeric order for
    strings of one length, so they are the 52-character strings from the PeerID of
    the key 00…00 to that of ff…ff."""
    low = str(PeerId.from_public_key(b"\x00" * 32))
    high = str(PeerId.from_public_key(b"\xff" * 32))
    common = 0
    while low[common] == high[common]:
        common += 1
    first_low, first_high = low[common], high[common]
    inner = _chars(_BASE58[_BASE58.index(first_low) + 1], _BASE58[_BASE58.index(first_high) - 1])
    width = len(low) - common - 1
    return (
        f"^{low[:common]}(?:{first_low}{_not_below(low[common + 1 :])}"
        f"|{inner}{_ANY}{{{width}}}"
        f"|{first_high}{_not_above(high[common + 1 :])})$"
    )


#: Every Ed25519 PeerID and nothing else (what ``PeerId.parse`` accepts).
PEER_ID_PATTERN: Final = _peer_id_pattern()
#: A message or conversation id: 16 bytes in hex.
MESSAGE_ID_PATTERN: Final = "^[0-9a-fA-F]{32}$"


def _not_blank_pattern() -> str:
    """A character that is not blank as Python's ``str.strip`` sees it, spelt out
    (``\\S`` differs between regex engines: ASCII-only in some, as in ECMA-262)."""
    blanks = [c for c in map(chr, range(0x3001)) if c.isspace()]
    return "[^" + "".join(f"\\u{ord(c):04x}" for c in blanks) + "]"


#: A name with something in it: the node strips blanks and refuses what is left empty.
NOT_BLANK_PATTERN: Final = _not_blank_pattern()

STRING: Final[Schema] = {"type": "string"}
INT: Final[Schema] = {"type": "integer"}
BOOL: Final[Schema] = {"type": "boolean"}
MS: Final[Schema] = {"type": "integer", "description": "milliseconds since the Unix epoch"}
#: The PeerID component (its pattern is long: the document spells it once).
PEER_ID_SCHEMA: Final[Schema] = {
    "type": "string",
    "pattern": PEER_ID_PATTERN,
    "description": "a libp2p PeerID of an Ed25519 key (12D3KooW and 44 base58 characters)",
}
PEER_ID: Final[Schema] = {"$ref": "#/components/schemas/PeerID"}
HEX_ID: Final[Schema] = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
NAME: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_BYTES,
    "pattern": NOT_BLANK_PATTERN,
    "description": f"not blank, at most {MAX_NAME_BYTES} bytes of UTF-8 "
    "(surrounding blanks are dropped)",
}
TOKEN_NAME: Final[Schema] = {
    "type": "string",
    "pattern": f"^(?!{OWNER}$)(?!{SESSION_PREFIX}){TOKEN_NAME_PATTERN.pattern}$",
    "description": f"letters, digits, '.', '_' or '-', starting with a letter or digit; "
    f"not {OWNER!r}, not starting with {SESSION_PREFIX!r} (web sign-in sessions)",
}
SCOPE: Final[Schema] = {
    "type": "string",
    "enum": [s.value for s in TokenScope],
    "description": "read < send < admin; each includes the ones before it",
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """A closed object schema whose properties are required unless named optional."""
    return {
        "type": "object",
        "properties": properties,
        "required": [key for key in properties if key not in optional],
        "additionalProperties": False,
    }


def path_param(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def query_int(name: str, description: str, lo: int, hi: int, default: int | None) -> Schema:
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


@dataclass(frozen=True)
class Doc:
    """What the document says of one operation.

    ``ok`` is (status, body schema or None for no body, description), its
    body of ``ok_media_type``; ``also`` holds other 2xx answers the same way.
    ``errors`` maps each error status the operation can give beyond those of
    every operation (``openapi.COMMON_ERRORS``) to what it means here; an
    empty description takes the shared wording of ``openapi.ERROR_RESPONSES``.
    ``body`` is the request body's schema (a JSON object), ``schemas`` the
    components this operation introduces (its request body's), by name.
    """

    operation_id: str
    summary: str
    ok: tuple[str, Schema | None, str]
    errors: Mapping[str, str] = field(default_factory=dict)
    parameters: tuple[Schema, ...] = ()
    body: Schema | None = None
    schemas: Mapping[str, Schema] = field(default_factory=dict)
    also: Mapping[str, tuple[Schema, str]] = field(default_factory=dict)
    ok_media_type: str = "application/json"
    #: The request body's media type (a file upload takes any).
    body_media_type: str = "application/json"

    def path_patterns(self) -> dict[str, re.Pattern[str]]:
        """The path parameters the server checks against a pattern, by name."""
        return {
            p["name"]: re.compile(p["schema"]["pattern"])
            for p in self.parameters
            if p["in"] == "path" and "pattern" in p["schema"]
        }

    def query_names(self) -> frozenset[str]:
        """The query parameters the operation takes; the server refuses others."""
        return frozenset(p["name"] for p in self.parameters if p["in"] == "query")


class Route(NamedTuple):
    """One row of the route table: path, method, handler, scope it needs, its document."""

    path: str
    method: str
    handler: Any  # payload.Handler; Any here keeps this module free of Starlette
    scope: TokenScope
    doc: Doc
