"""The in-memory store's tables for the local API: event log queries, idempotency keys, tokens."""

from __future__ import annotations

from collections.abc import Callable, Collection

from p2pdm.core.identity import PeerId
from p2pdm.core.model import (
    ApiToken,
    Event,
    EventType,
)
from p2pdm.errors import StoreError
from p2pdm.limits import MAX_API_TOKENS
from p2pdm.store.base import (
    idempotency_cutoff_ms,
    page_limit,
)
from p2pdm.store.memory_state import Dicts

__all__ = ["APIDicts"]


class APIDicts(Dicts):
    """Event log, idempotency keys and API tokens of a :class:`~p2pdm.store.memory.MemoryStore`."""

    def set_event_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` after every write that added an event (None: stop)."""
        self._listener = listener

    def events(
        self,
        after: int,
        limit: int,
        types: Collection[EventType] | None = None,
        peers: Collection[PeerId] | None = None,
    ) -> list[Event]:
        """Events with ``id > after``, oldest first, at most ``limit`` (capped at
        MAX_PAGE_SIZE); only of ``types`` and about ``peers`` when given."""
        return self._live().events.after(after, page_limit(limit), types, peers)

    def event_bounds(self) -> tuple[int, int]:
        """``(oldest kept id, newest id ever)``; ``(0, 0)`` before the first event."""
        log = self._live().events
        return log.oldest(), log.last_id

    def events_pruned(self) -> tuple[int, int]:
        """Highest event id pruned from the main log, and from the request events."""
        pruned = self._live().events.pruned
        return pruned[0], pruned[1]

    # --- idempotency keys --------------------------------------------------

    def remember_send(self, scope: str, key: str, message_id: bytes, at_ms: int) -> None:
        """Record which message ``key`` made; raises StoreError if the key is taken."""
        sends = self._live().sends
        cutoff = idempotency_cutoff_ms(at_ms)
        for old in [k for k, (_, made) in sends.items() if made < cutoff]:
            del sends[old]
        if (scope, key) in sends:
            raise StoreError(f"idempotency key {key!r} is already used")
        sends[scope, key] = (message_id, at_ms)
        while len(sends) > self._max_keys:
            del sends[next(iter(sends))]

    def sent_with(self, scope: str, key: str) -> bytes | None:
        """The id of the message ``key`` made, if it is still remembered."""
        found = self._live().sends.get((scope, key))
        return None if found is None else found[0]

    # --- named API tokens ----------------------------------------------------

    def put_token(self, token: ApiToken) -> None:
        """Add a token; raises StoreError for a taken name or hash, or past MAX_API_TOKENS."""
        tokens = self._live().tokens
        if len(tokens) >= MAX_API_TOKENS:
            raise StoreError(f"there are already {MAX_API_TOKENS} API tokens; revoke one")
        if token.name in tokens or any(t.secret_hash == token.secret_hash for t in tokens.values()):
            raise StoreError(f"an API token named {token.name!r} exists")
        tokens[token.name] = token

    def list_tokens(self) -> list[ApiToken]:
        """Every named token, by name."""
        tokens = self._live().tokens
        return [tokens[name] for name in sorted(tokens)]

    def delete_token(self, name: str) -> bool:
        return self._live().tokens.pop(name, None) is not None
