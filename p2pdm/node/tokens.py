"""Scoped API tokens: making them, checking them, and what each one may do.

How this works: a token is 32 random bytes (256 bits) shown once, base64url,
with the prefix ``p2pdm_``; the store keeps only its SHA-256
(:class:`~p2pdm.core.model.ApiToken`), so a copy of the store gives no
working token. A request's token is hashed and compared with every stored
hash in constant time (there are at most ``MAX_API_TOKENS``). The token in
``<home>/api_token`` is the owner's: it is not in the store and may do
everything. A :class:`Grant` is what a checked token may do: its scope
(``read`` < ``send`` < ``admin``) and, if limited, the contacts whose
conversations and events it sees.

Both the local API and ``p2pdm token`` use these functions on the store;
``p2pdm token`` opens the store file itself (SQLite in WAL mode lets it
write beside a running node, which reads the tokens on every request), so a
revoked token stops working at once, with or without a node running.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from p2pdm.core.identity import PeerId
from p2pdm.core.model import SCOPE_RANK, ApiToken, TokenScope
from p2pdm.errors import NotFound, SchemaError, TokenError
from p2pdm.limits import MAX_API_TOKENS
from p2pdm.store.base import Store

__all__ = [
    "MAX_TOKEN_CONTACTS",
    "OWNER",
    "SESSION_PREFIX",
    "TOKEN_PREFIX",
    "Grant",
    "authenticate",
    "create_token",
    "hash_token",
    "is_session",
    "revoke_token",
    "token_json",
]

#: Name of the owner's token (``<home>/api_token``); no stored token may take it.
OWNER: Final = "owner"
#: Prefix of every named token, so a leaked one is recognisable (secret scanners).
TOKEN_PREFIX: Final = "p2pdm_"
#: Random bytes in a token: 256 bits, beyond guessing by any local process.
TOKEN_BYTES: Final = 32
#: Most contacts one token may be limited to (each is a term of an SQL ``IN``).
MAX_TOKEN_CONTACTS: Final = 256
#: Token names: short, safe in a shell and a URL path segment.
TOKEN_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Names of the web app's sign-in sessions (:mod:`p2pdm.api.sessions`): stored
#: as admin tokens, listed and revoked apart, never a name ``p2pdm token`` makes.
SESSION_PREFIX: Final = "web-session-"


def is_session(token: ApiToken) -> bool:
    """True for a web sign-in session, stored beside the named tokens."""
    return token.name.startswith(SESSION_PREFIX)


@dataclass(frozen=True, slots=True)
class Grant:
    """What the caller's token may do."""

    name: str
    scope: TokenScope
    #: The contacts it is limited to; None means every conversation.
    contacts: frozenset[PeerId] | None = None

    def allows(self, needed: TokenScope) -> bool:
        return SCOPE_RANK[self.scope] >= SCOPE_RANK[needed]

    def sees(self, peer: PeerId) -> bool:
        return self.contacts is None or peer in self.contacts


#: The owner's grant: everything.
OWNER_GRANT: Final = Grant(OWNER, TokenScope.ADMIN)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def authenticate(given: str, owner_token: str, stored: Iterable[ApiToken]) -> Grant | None:
    """The grant of ``given``, or None if it is no valid token (all compared in constant time)."""
    found = OWNER_GRANT if hmac.compare_digest(given.encode(), owner_token.encode()) else None
    digest = hash_token(given)
    for token in stored:
        if hmac.compare_digest(digest, token.secret_hash) and found is None:
            contacts = frozenset(token.contacts) if token.contacts else None
            found = Grant(token.name, token.scope, contacts)
    return found


def check_token_name(name: str) -> str:
    if not TOKEN_NAME_PATTERN.fullmatch(name) or name == OWNER or name.startswith(SESSION_PREFIX):
        raise SchemaError(
            "a token name is 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit, and neither {OWNER!r} nor starting with {SESSION_PREFIX!r}"
        )
    return name


def parse_scope(text: str) -> TokenScope:
    try:
        return TokenScope(text)
    except ValueError:
        known = ", ".join(s.value for s in TokenScope)
        raise SchemaError(f"unknown scope {text[:20]!r}; use one of {known}") from None


def create_token(
    store: Store,
    scope: str,
    contacts: Iterable[PeerId] = (),
    name: str | None = None,
    *,
    now_ms: int,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> tuple[ApiToken, str]:
    """Store a new token; returns it and its secret (shown once).

    ``contacts`` are PeerIDs, resolved by the caller from what the user typed
    (:func:`p2pdm.node.contact_names.resolve_contact`), so the token is bound to
    those keys whatever the contacts are called later. Raises SchemaError for
    a bad name, scope or an admin token limited to contacts, TokenError for a
    taken name or too many tokens.
    """
    kind = parse_scope(scope)
    peers = tuple(dict.fromkeys(contacts))
    if peers and kind is TokenScope.ADMIN:
        raise SchemaError("an admin token cannot be limited to contacts (it can change tokens)")
    if len(peers) > MAX_TOKEN_CONTACTS:
        raise SchemaError(f"a token is limited to at most {MAX_TOKEN_CONTACTS} contacts")
    raw = random_bytes(TOKEN_BYTES)
    secret = TOKEN_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    if name is None:
        name = f"{kind.value}-{random_bytes(3).hex()}"
    token = ApiToken(check_token_name(name), hash_token(secret), kind, peers, now_ms)
    with store.transaction():
        existing = store.list_tokens()
        if any(t.name == token.name for t in existing):
            raise TokenError(f"an API token named {token.name!r} exists; revoke it or pick another")
        if len(existing) >= MAX_API_TOKENS:
            raise TokenError(f"there are already {MAX_API_TOKENS} API tokens; revoke one")
        store.put_token(token)
    return token, secret


def revoke_token(store: Store, name: str) -> None:
    """Delete a named token; raises NotFound."""
    if name == OWNER:
        raise SchemaError(
            f"the {OWNER} token is <home>/api_token; "
            "to replace it, delete that file and restart the node"
        )
    if not store.delete_token(name):
        raise NotFound(f"no API token named {name[:64]!r}")


def token_json(token: ApiToken) -> dict[str, Any]:
    """A token as the API and ``p2pdm token list --json`` show it (never a secret)."""
    return {
        "name": token.name,
        "scope": token.scope.value,
        "contacts": [str(peer) for peer in token.contacts],
        "created_at_ms": token.created_at_ms,
    }
