"""The message store in one SQLite file in the node home: the queries.

How this works: :class:`~p2pdm.store.database.Database` opens the file (WAL,
mode 0600, migrations, durability level) and makes every call below atomic,
with its errors as :class:`~p2pdm.errors.StoreError`; the store is assembled
from one mixin per aggregate, each mapping its part of the contract of
:class:`~p2pdm.store.base.Store` onto the tables of ``schema.py``: contacts
(``sqlite_contacts``), conversations and messages (``sqlite_messages``), the
outbox (``sqlite_outbox``), the mailbox (``sqlite_mailbox``), settings,
sessions and prekeys (``sqlite_keys``), the API's tables (``sqlite_api``), and
the profile and handle claims (``sqlite_profile``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from p2pdm.limits import (
    MAX_IDEMPOTENCY_KEYS,
    MAX_STORED_EVENTS,
    MAX_STORED_REQUEST_EVENTS,
)
from p2pdm.store.base import RequestCaps
from p2pdm.store.database import Database, PendingCommit
from p2pdm.store.sqlite_actions import ActionTables
from p2pdm.store.sqlite_api import APITables
from p2pdm.store.sqlite_blobs import BlobTables
from p2pdm.store.sqlite_blocking import BlockTables
from p2pdm.store.sqlite_contacts import ContactTables
from p2pdm.store.sqlite_expiry import ExpiryTables
from p2pdm.store.sqlite_groups import GroupTables
from p2pdm.store.sqlite_key_waits import KeyWaitTables
from p2pdm.store.sqlite_keys import KeyTables
from p2pdm.store.sqlite_mailbox import MailboxTables
from p2pdm.store.sqlite_outbox import OutboxTables
from p2pdm.store.sqlite_profile import ProfileTables

__all__ = ["SQLiteStore"]


class SQLiteStore(
    KeyTables,
    ContactTables,
    BlockTables,
    ExpiryTables,
    ActionTables,
    OutboxTables,
    MailboxTables,
    APITables,
    ProfileTables,
    BlobTables,
    GroupTables,
    KeyWaitTables,
):
    """The :class:`~p2pdm.store.base.Store` of a node: one SQLite file.

    Raises StoreError if the file cannot be opened, is not a p2pdm store, or
    was written by a newer p2pdm. ``":memory:"`` gives a throwaway store.
    ``synchronous`` is ``"FULL"`` (survives power loss; the node's choice) or
    ``"NORMAL"`` (survives a process crash only; for benchmarks and tests).
    ``max_events``, ``max_request_events``, ``max_idempotency_keys`` and
    ``request_caps`` bound the event log (its main part and the request
    events), the idempotency keys and the pending message requests (smaller
    values let tests reach the bounds quickly).
    ``key`` (32 bytes) makes it an encrypted store (SQLCipher).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        key: bytes | None = None,
        max_events: int = MAX_STORED_EVENTS,
        max_request_events: int = MAX_STORED_REQUEST_EVENTS,
        max_idempotency_keys: int = MAX_IDEMPOTENCY_KEYS,
        request_caps: RequestCaps = RequestCaps(),  # noqa: B008 (frozen)
    ) -> None:
        self._db = Database(path, synchronous=synchronous, key=key)
        self._reading = self._db.reading
        self._writing = self._db.writing
        self._writing_one = functools.partial(self._db.writing, one_statement=True)
        self._settings_read = self._db.settings_read
        self._hot = self._db.hot
        self._event_caps = (max_events, max_request_events)
        self._request_caps = request_caps
        self._max_keys = max_idempotency_keys
        self._listener: Callable[[], None] | None = None

    @classmethod
    def open(cls, path: str | Path, *, synchronous: str = "FULL") -> SQLiteStore:
        """Open (creating and migrating as needed) the store at ``path``."""
        return cls(path, synchronous=synchronous)

    @property
    def path(self) -> str:
        return self._db.path

    # --- lifecycle -------------------------------------------------------

    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with the text of each statement run (benchmarks
        count them); None stops it."""
        with self._db.reading("tracing statements") as db:
            db.set_trace_callback(callback)

    def close(self) -> None:
        """Close the file; an open transaction is rolled back. Closing twice is harmless."""
        self._db.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def transaction(self, *, undivided: bool = False) -> AbstractContextManager[None]:
        """All writes inside commit together, or none if the block raises.

        ``undivided``: no savepoint per store call; a failed call spoils the
        whole transaction (:meth:`Database.transaction`). Raises StoreError
        when nested or when the commit fails.
        """
        return self._db.transaction(undivided=undivided)

    def group(self) -> AbstractContextManager[None]:
        """Commit the transactions inside as one (one fsync for a burst).

        Raises StoreError when nested, inside a transaction, or when the commit fails.
        """
        return self._db.group()

    def commit_later(
        self, on_failure: Callable[[], None] = lambda: None
    ) -> AbstractContextManager[PendingCommit]:
        """The first transaction or group committed in the block leaves its
        COMMIT due in the :class:`PendingCommit` given, for a worker thread
        (:meth:`Database.commit_later`); ``on_failure`` puts back in-memory
        state if that commit fails. Event listeners are woken by its
        :meth:`~PendingCommit.notify`."""
        return self._db.commit_later(on_failure, self._notify_now)

    def settle(self) -> None:
        """Commit here and now what a commit_later block left due."""
        self._db.settle()
