"""What every part of the SQLite store shares: the database calls and the event hook.

How this works: :class:`~p2pdm.store.sqlite.SQLiteStore` is assembled from
one mixin per aggregate (contacts, messages, outbox, mailbox, keys, the API
tables), each a subclass of :class:`Tables`; the store's constructor sets the
attributes declared here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Final

from p2pdm.store.base import RequestCaps
from p2pdm.store.database import Database, HotReads

__all__ = ["IN_CHUNK", "NO_CURSOR", "Tables"]

#: The largest seq SQLite can hold (a signed 64-bit integer): the cursor of a
#: first page, and the ceiling for a ``before`` given from outside.
NO_CURSOR: Final = (1 << 63) - 1

#: Seqs per ``IN (…)`` list, well under SQLite's parameter cap.
IN_CHUNK: Final = 500


class Tables:
    """The store's database calls and bounds, as the mixins see them."""

    _reading: Callable[[str], AbstractContextManager[sqlite3.Connection]]
    _writing: Callable[[str], AbstractContextManager[sqlite3.Connection]]
    #: A write of one statement at most (no savepoint inside a transaction).
    _writing_one: Callable[[str], AbstractContextManager[sqlite3.Connection]]
    _event_caps: tuple[int, int]
    _request_caps: RequestCaps
    _max_keys: int
    _listener: Callable[[], None] | None
    #: Settings read before (:attr:`Database.settings_read`).
    _settings_read: dict[str, object]
    #: What the message pipeline reads per message (:class:`HotReads`).
    _hot: HotReads
    _db: Database

    def _notify(self) -> None:
        """Wake the event listener after a write that added events (after the
        commit, for a commit left to a worker thread)."""
        if self._listener is not None and not self._db.holds_notify():
            self._listener()

    def _notify_now(self) -> None:
        if self._listener is not None:
            self._listener()
