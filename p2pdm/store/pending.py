"""A commit left due for a worker thread: what the store's caller holds.

How this works: :meth:`p2pdm.store.database.Database.commit_later` runs a
transaction's statements but leaves its ``COMMIT`` (the fsync) due; the
caller finishes it in a worker thread with :meth:`PendingCommit.finish`
while the event loop goes on. A store without such commits (the memory
store) hands out one that is already done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from p2pdm.errors import StoreError

__all__ = ["PendingCommit", "nothing"]


def nothing() -> None:
    """No in-memory state to put back."""


class PendingCommit:
    """The commit a :meth:`Database.commit_later` block left due, if any.

    :meth:`finish` commits it (from any thread; again: nothing) and raises
    the commit's StoreError if it failed (then nothing of it is stored). A
    store call of any thread commits it first as well. :meth:`notify` wakes
    the event listeners the block's writes held back (on the event loop,
    after the commit).
    """

    __slots__ = (
        "_notify",
        "_settle",
        "armed",
        "due",
        "error",
        "notify_due",
        "on_failure",
        "owner",
        "what",
    )

    def __init__(
        self,
        settle: Callable[[], None] | None,
        on_failure: Callable[[], None] = nothing,
        notify: Callable[[], None] = nothing,
    ) -> None:
        self._settle = settle
        self._notify = notify
        #: Called under the store's lock if the commit fails (drop in-memory state).
        self.on_failure = on_failure
        #: The thread whose block it is: only its transaction is left due.
        self.owner = threading.get_ident()
        #: A transaction was left due (once a block), and still waits for its COMMIT.
        self.armed = False
        self.due = False
        self.error: StoreError | None = None
        #: What was left due ("a store group"), for its error.
        self.what = "a store transaction"
        #: Writes in the block added events: listeners are woken after the commit.
        self.notify_due = False

    def finish(self) -> None:
        """Commit now if it is still due; raises StoreError if the commit failed."""
        if self._settle is not None and self.due:
            self._settle()
        if self.error is not None:
            raise self.error

    def notify(self) -> None:
        """Wake the event listeners if the block's writes added events."""
        if self.notify_due:
            self.notify_due = False
            self._notify()
