"""The message store in plain dicts, for tests: same behaviour as the SQLite store.

How this works: the store is assembled from one mixin per aggregate
(``memory_contacts``, ``memory_messages``, ``memory_outbox``,
``memory_mailbox``, ``memory_api``, ``memory_profile``); all state is one
:class:`~p2pdm.store.memory_state.MemoryState`; every method checks its
preconditions before it changes anything, so a call that raises leaves no
trace. :meth:`MemoryStore.transaction` snapshots the state
(:meth:`~p2pdm.store.memory_state.MemoryState.snapshot`: as ``copy.deepcopy``,
sharing the frozen values) and restores it if the block raises. Settings are kept as
JSON text, so a value comes back exactly as it would from SQLite (tuples as
lists, a fresh object each time). The contract suite runs every test against
both stores and a state machine checks they always answer alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from p2pdm.core.identity import PeerId
from p2pdm.errors import StoreError
from p2pdm.limits import (
    MAX_IDEMPOTENCY_KEYS,
    MAX_STORED_EVENTS,
    MAX_STORED_REQUEST_EVENTS,
)
from p2pdm.store.base import (
    RequestCaps,
    decode_setting,
    encode_setting,
)
from p2pdm.store.memory_actions import ActionDicts
from p2pdm.store.memory_api import APIDicts
from p2pdm.store.memory_blobs import BlobDicts
from p2pdm.store.memory_blocking import BlockDicts
from p2pdm.store.memory_contacts import ContactDicts
from p2pdm.store.memory_expiry import ExpiryDicts
from p2pdm.store.memory_groups import GroupDicts
from p2pdm.store.memory_key_waits import KeyWaitDicts
from p2pdm.store.memory_mailbox import MailboxDicts
from p2pdm.store.memory_outbox import OutboxDicts
from p2pdm.store.memory_profile import ProfileDicts
from p2pdm.store.memory_state import MemoryState
from p2pdm.store.pending import PendingCommit, nothing

__all__ = ["MemoryStore"]


class MemoryStore(
    ContactDicts,
    BlockDicts,
    ExpiryDicts,
    ActionDicts,
    OutboxDicts,
    MailboxDicts,
    APIDicts,
    ProfileDicts,
    BlobDicts,
    GroupDicts,
    KeyWaitDicts,
):
    """A :class:`~p2pdm.store.base.Store` that lives and dies with the process."""

    def __init__(
        self,
        *,
        max_events: int = MAX_STORED_EVENTS,
        max_request_events: int = MAX_STORED_REQUEST_EVENTS,
        max_idempotency_keys: int = MAX_IDEMPOTENCY_KEYS,
        request_caps: RequestCaps = RequestCaps(),  # noqa: B008 (frozen)
    ) -> None:
        self._state = MemoryState()
        self._closed = False
        self._in_transaction = False
        self._in_group = False
        self._event_caps = (max_events, max_request_events)
        self._request_caps = request_caps
        self._max_keys = max_idempotency_keys
        self._listener: Callable[[], None] | None = None

    # --- lifecycle -------------------------------------------------------

    def close(self) -> None:
        """Close the store: later calls raise StoreError. Closing twice is harmless."""
        self._closed = True

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """The transactions inside are kept together, or none if the block raises."""
        if self._in_group or self._in_transaction:
            raise StoreError("a store group cannot be nested or opened in a transaction")
        snapshot = self._live().snapshot()
        self._in_group = True
        try:
            yield
        except BaseException:
            self._state = snapshot
            raise
        finally:
            self._in_group = False

    @contextlib.contextmanager
    def commit_later(self, on_failure: Callable[[], None] = nothing) -> Iterator[PendingCommit]:
        """Commits are at once here: the commit given is already done."""
        yield PendingCommit(None)

    def settle(self) -> None:
        """Nothing is ever left due here."""

    @contextlib.contextmanager
    def transaction(self, *, undivided: bool = False) -> Iterator[None]:
        """All writes inside commit together, or none if the block raises.

        ``undivided`` changes nothing here (a memory store takes no savepoints).
        Raises StoreError when nested.
        """
        if self._in_transaction:
            raise StoreError("store transactions do not nest")
        snapshot = self._live().snapshot()
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._state = snapshot
            raise
        finally:
            self._in_transaction = False
        self._live()  # a store closed inside the block cannot commit

    # --- settings --------------------------------------------------------

    def get_setting(self, key: str, default: object = None) -> object:
        text = self._live().settings.get(key)
        return default if text is None else decode_setting(text)

    def set_setting(self, key: str, value: object) -> None:
        """Store a JSON-able value; raises StoreError for anything else."""
        state = self._live()
        state.settings[key] = encode_setting(key, value)

    def settings(self) -> dict[str, object]:
        state = self._live()
        return {key: decode_setting(state.settings[key]) for key in sorted(state.settings)}

    # --- replay protection -----------------------------------------------

    def has_seen(self, message_id: bytes) -> bool:
        return message_id in self._live().seen

    def mark_seen(self, message_id: bytes, at_ms: int) -> None:
        """Remember an accepted id; seeing it again extends how long it is remembered."""
        seen = self._live().seen
        seen[message_id] = max(at_ms, seen.get(message_id, at_ms))

    def purge_seen(self, before_ms: int) -> int:
        """Forget ids last seen before ``before_ms``; returns how many."""
        seen = self._live().seen
        old = [message_id for message_id, at in seen.items() if at < before_ms]
        for message_id in old:
            del seen[message_id]
        return len(old)

    # --- sessions and own prekeys ----------------------------------------

    def get_session(self, peer: PeerId) -> bytes | None:
        return self._live().sessions.get(peer)

    def put_session(self, peer: PeerId, state: bytes, at_ms: int) -> None:
        self._live().sessions[peer] = bytes(state)

    def delete_session(self, peer: PeerId) -> None:
        self._live().sessions.pop(peer, None)

    def get_prekeys(self) -> bytes | None:
        return self._live().prekeys

    def put_prekeys(self, state: bytes) -> None:
        self._live().prekeys = bytes(state)
