"""One SQLite file: opening it safely, and transactions done by hand.

How this works: the connection is in autocommit mode (``isolation_level=None``)
and this module issues every ``BEGIN``/``COMMIT`` itself, so nothing happens
behind the caller's back. :meth:`Database.writing` makes one store call
atomic: a ``BEGIN IMMEDIATE`` transaction of its own, or, inside
:meth:`Database.transaction`, a savepoint, so a failed call never leaves half
its rows behind and never breaks the caller's transaction. WAL mode lets
readers run beside the writer; ``synchronous=FULL`` (the default) makes a
commit survive power loss, because the node acks a message to its sender as
soon as it is stored; ``NORMAL`` survives a crash of the process but not of
the machine, and commits several times faster (no fsync per commit). The
file and its ``-wal``/``-shm`` companions are mode 0600: they hold session
keys. Given a key, the file is a SQLCipher database, encrypted at rest
(:mod:`p2pdm.store.cipher`); a plain one found there is encrypted first.
Every database error leaves as :class:`~p2pdm.errors.StoreError` naming what
failed. :class:`HotReads` keeps what the message path would read again for
every message (a contact, a conversation, the event log's lane counters…)
until a write changes it; any rollback forgets it. Inside a group it also
holds the sessions saved, written once each when the group commits (a
savepoint's rollback puts back those it found).

A commit may be left to a worker thread (:meth:`Database.commit_later`): the
outermost transaction or group begun in that block runs all its statements
but the ``COMMIT`` (the fsync), and leaves it due in a
:class:`PendingCommit`. The lock is released; whoever takes it next (the
worker thread, or any store call of any thread) commits it first, so the
connection is never used by two threads at once and nothing reads or writes
beside a commit that is due. If that commit fails, it rolls back as a
failed commit always did, forgets what was read, and calls the block's
``on_failure`` under the lock, before any other store call runs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final, Literal

from p2pdm.core.model import Contact, Conversation, StoredMessage
from p2pdm.errors import NotFound, P2PDMError, StoreError
from p2pdm.store.cipher import connect_encrypted, db_errors, encrypt_plain_store, is_plain_store
from p2pdm.store.pending import PendingCommit, nothing
from p2pdm.store.schema import migrate, schema_version
from p2pdm.store.search_text import SEARCH_TEXT_FUNCTION, search_text

__all__ = [
    "BUSY_TIMEOUT_MS",
    "FILE_MODE",
    "IN_MEMORY",
    "MAX_HOT_READS",
    "NOT_READ",
    "SAVE_SESSION",
    "SYNCHRONOUS_MODES",
    "Database",
    "HotReads",
    "PendingCommit",
]

#: How long a write waits for another connection (a second process on the
#: same home, a backup tool) to release the file before it fails.
BUSY_TIMEOUT_MS: Final = 5_000

#: Mode of the database file and its -wal/-shm files: owner only.
FILE_MODE: Final = 0o600

#: The path that gives a throwaway database in memory (no file, no WAL).
IN_MEMORY: Final = ":memory:"

#: SQLite durability levels a store may use (see the module docstring).
SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL")

#: Entries of each of HotReads' maps: a node writes to a few hundred peers at
#: most at a time, and a flood of strangers' envelopes must not grow them
#: (past it a map starts again, empty).
MAX_HOT_READS: Final = 1_024

#: What HotReads' maps give for a key never read (None is an answer there).
NOT_READ: Final = object()

#: Saves a session (peer, state, updated_at_ms): at once, or at a group's commit.
SAVE_SESSION: Final = (
    "INSERT INTO sessions (peer, state, updated_at_ms) VALUES (?, ?, ?) "
    "ON CONFLICT (peer) DO UPDATE SET state = excluded.state, "
    "updated_at_ms = excluded.updated_at_ms"
)

_SAVEPOINT: Final = "store_call"
#: The savepoint of a transaction inside a group (see Database.group).
_GROUPED: Final = "grouped_transaction"


def _make_private(path: Path) -> None:
    """Create ``path`` mode 0600 if missing; tighten it to 0600 if it is wider."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        os.close(fd)
        if stat.S_IMODE(path.stat().st_mode) & ~FILE_MODE:
            path.chmod(FILE_MODE)
    except OSError as exc:
        raise StoreError(f"cannot create message store {path}: {exc.strerror}") from exc


def _rollback_quietly(db: sqlite3.Connection, savepoint: str | None = None) -> None:
    """Undo after a failure without hiding it; SQLite may have rolled back already."""
    with contextlib.suppress(*db_errors()):
        if not db.in_transaction:
            return
        if savepoint is None:
            db.execute("ROLLBACK")
        else:
            db.execute(f"ROLLBACK TO {savepoint}")
            db.execute(f"RELEASE {savepoint}")


#: What a savepoint's rollback puts back (:meth:`HotReads.mark`).
Mark = tuple[dict[str, int], dict[str, int], dict[bytes, tuple[bytes, int]] | None]


class HotReads:
    """What the message pipeline reads for every message, remembered until
    a write could change it: a statement fewer a message each.

    The store call that writes one of these drops its entry before it
    writes; any rollback drops them all (it may undo a write they saw). One
    connection writes the file (a second process on the same home would
    not be seen: the same assumption as the settings read once).
    """

    __slots__ = (
        "contacts",
        "conversations",
        "lanes",
        "lanes_due",
        "moved",
        "no_deposits",
        "no_held",
        "serial",
        "sessions_due",
        "settling",
        "unanswered",
    )

    def __init__(self) -> None:
        #: Contacts read (None: not a contact), by peer id; a contact's
        #: ``blocked`` flag is in it, so blocking drops it too.
        self.contacts: dict[bytes, Contact | None] = {}
        #: Conversations read (None: none yet), by id: a send reads its timer,
        #: a received message whether it is muted. Storing a message brings
        #: its entry up to date as the row is; other writes drop them.
        self.conversations: dict[bytes, Conversation | None] = {}
        #: Conversations known to hold neither a message from the peer nor
        #: one of ours it read (``conversation_answered`` is False).
        self.unanswered: set[bytes] = set()
        #: ``held_actions`` is known to be empty: no message has an action
        #: waiting for it (the table nearly always is).
        self.no_held = False
        #: ``deposits`` is known to be empty (no envelope of ours waits in a
        #: mailbox): an acked envelope has none to forget.
        self.no_deposits = False
        #: The message the last ``set_status`` left, inside the transaction it
        #: ran in: (transaction serial, total changes after it, message id,
        #: the message as stored). An ack's "sent" mark and "delivered" move
        #: the same message one after the other: the second reads nothing.
        self.moved: tuple[int, int, bytes, StoredMessage] | None = None
        #: Counts the outermost transactions begun, so a ``moved`` of an
        #: earlier one is never taken for the current one's.
        self.serial = 0
        #: The event log's lanes: the last ``lane_seq`` given, by counter
        #: name, and those not written to ``counters`` yet. The counter is
        #: written once when the outermost transaction commits (an ack's two
        #: events, a burst's events: one write), not once an event.
        self.lanes: dict[str, int] = {}
        self.lanes_due: dict[str, int] = {}
        #: Sessions saved inside a group, by peer: (state, updated_at_ms),
        #: written once each when the group commits (a burst to or from one
        #: peer saves its session once, not once a message); read from here
        #: until then. None outside a group (saved at once).
        self.sessions_due: dict[bytes, tuple[bytes, int]] | None = None
        #: A commit is due (Database.commit_later): what is remembered may
        #: still be rolled back, so the reads that would answer from here
        #: without the lock take it instead (and so commit it first).
        self.settling = False

    def clear(self) -> None:
        self.contacts.clear()
        self.conversations.clear()
        self.unanswered.clear()
        self.no_held = False
        self.no_deposits = False
        self.moved = None
        self.lanes.clear()
        self.lanes_due.clear()
        if self.sessions_due is not None:
            self.sessions_due = {}

    def mark(self) -> Mark:
        """The lanes and due sessions as a savepoint begins: its rollback puts them back."""
        due = None if self.sessions_due is None else dict(self.sessions_due)
        return dict(self.lanes), dict(self.lanes_due), due

    def restore(self, mark: Mark) -> None:
        self.lanes.update(mark[0])
        self.lanes_due.update(mark[1])
        if self.sessions_due is not None and mark[2] is not None:
            self.sessions_due = dict(mark[2])

    def remember_contact(self, peer: bytes, contact: Contact | None) -> None:
        if len(self.contacts) >= MAX_HOT_READS:
            self.contacts.clear()
        self.contacts[peer] = contact

    def remember_conversation(self, conversation_id: bytes, found: Conversation | None) -> None:
        if len(self.conversations) >= MAX_HOT_READS:
            self.conversations.clear()
        self.conversations[conversation_id] = found

    def remember_unanswered(self, conversation_id: bytes) -> None:
        if len(self.unanswered) >= MAX_HOT_READS:
            self.unanswered.clear()
        self.unanswered.add(conversation_id)


class Database:
    """An open, migrated SQLite store file. Raises StoreError if it cannot be opened.

    One connection, shared by threads under a lock; a transaction holds the
    lock until it ends. With ``key`` (32 bytes) the file is encrypted.
    """

    def __init__(
        self, path: str | Path, *, synchronous: str = "FULL", key: bytes | None = None
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise StoreError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
        self._synchronous = synchronous.upper()
        self.path = str(path)
        self._lock = threading.RLock()
        self._in_transaction = False
        self._in_group = False
        #: The open transaction is undivided (see transaction), and a store
        #: call inside it failed.
        self._undivided = False
        self._spoiled = False
        #: The commit_later block open (its thread's next outermost commit is
        #: left due), and the commit left due, if any.
        self._deferring: PendingCommit | None = None
        self._due: PendingCommit | None = None
        self._db: sqlite3.Connection | None = None
        #: Settings read before, by key: the receive path reads one a message.
        #: A write drops its key; a rollback drops them all (it may undo one).
        self.settings_read: dict[str, object] = {}
        self.hot = HotReads()
        in_memory = self.path == IN_MEMORY
        if not in_memory:
            if key is not None and is_plain_store(Path(path)):
                encrypt_plain_store(Path(path), key)
            _make_private(Path(path))
        try:
            if key is None:
                db = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    timeout=BUSY_TIMEOUT_MS / 1000,
                )
            else:
                db = connect_encrypted(self.path, key, BUSY_TIMEOUT_MS / 1000)
        except db_errors() as exc:
            raise StoreError(f"cannot open message store {self.path}: {exc}") from exc
        try:
            self._configure(db, in_memory)
            migrate(db)
        except db_errors() as exc:
            db.close()
            hint = "is it a p2pdm store, and is the disk writable?"
            if key is not None:
                hint = "wrong key: it belongs to another identity or passphrase, or is damaged"
            raise StoreError(f"cannot open message store {self.path}: {exc} ({hint})") from exc
        except BaseException:
            db.close()
            raise
        self._db = db

    def _configure(self, db: sqlite3.Connection, in_memory: bool) -> None:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        db.execute("PRAGMA foreign_keys = ON")
        # Deleted rows (old ratchet states, read messages) are zeroed, not left
        # in free pages; some SQLite builds have this off by default.
        db.execute("PRAGMA secure_delete = ON")
        # The search index's triggers read each message's text through it.
        db.create_function(SEARCH_TEXT_FUNCTION, 2, search_text, deterministic=True)
        # Reads the header: a file that is not a database fails here, before
        # anything is written to it.
        schema_version(db)
        (mode,) = db.execute("PRAGMA journal_mode = WAL").fetchone()
        if not in_memory and str(mode).lower() != "wal":
            raise StoreError(f"message store {self.path}: cannot switch to WAL mode ({mode})")
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        if not in_memory:
            # SQLite gives them the database file's mode; tighten any left by others.
            for suffix in ("-wal", "-shm"):
                companion = Path(self.path + suffix)
                if companion.exists() and stat.S_IMODE(companion.stat().st_mode) & ~FILE_MODE:
                    companion.chmod(FILE_MODE)

    def close(self) -> None:
        """Close the file; an open transaction is rolled back. Closing twice is harmless."""
        with self._locked():
            if self._db is None:
                return
            db, self._db = self._db, None
            self._in_transaction = False
            _rollback_quietly(db)
            try:
                db.close()
            except db_errors() as exc:
                raise StoreError(f"closing message store {self.path} failed: {exc}") from exc

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The lock, with any commit left due done first (in this thread)."""
        with self._lock:
            if self._due is not None:
                self._settle_due()
            yield

    def settle(self) -> None:
        """Commit what a commit_later block left due, here and now (nothing if none)."""
        with self._lock:
            if self._due is not None:
                self._settle_due()

    def _settle_due(self) -> None:
        """Under the lock: COMMIT the transaction left due; on failure roll
        back and put back in-memory state (its ``on_failure``), as a failed
        commit always did."""
        pending, self._due = self._due, None
        assert pending is not None
        self.hot.settling = False
        pending.due = False
        db = self._connection()
        try:
            db.execute("COMMIT")
        except db_errors() as exc:
            self._undo(db, None)
            pending.error = StoreError(f"committing {pending.what} failed: {exc}")
            pending.notify_due = False
            with contextlib.suppress(P2PDMError):  # the store stays the truth; the error is kept
                pending.on_failure()

    @contextlib.contextmanager
    def commit_later(
        self, on_failure: Callable[[], None] = nothing, notify: Callable[[], None] = nothing
    ) -> Iterator[PendingCommit]:
        """The first outermost transaction or group this thread commits in the
        block runs all its statements but the COMMIT, left due in the
        :class:`PendingCommit` given (finish it in a worker thread: the fsync
        there). Event listeners are not woken in the block (``notify``: after
        the commit). Blocks do not nest."""
        if self._deferring is not None:
            raise StoreError("commit_later blocks do not nest")
        pending = PendingCommit(self.settle, on_failure, notify)
        self._deferring = pending
        try:
            yield pending
        finally:
            self._deferring = None

    def holds_notify(self) -> bool:
        """True (and the listeners' wake-up noted) inside this thread's
        commit_later block: they are woken after its commit."""
        pending = self._deferring
        if pending is None or pending.owner != threading.get_ident():
            return False
        pending.notify_due = True
        return True

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError(f"message store {self.path} is closed")
        return self._db

    def transaction(self, *, undivided: bool = False) -> _Transaction:
        """All writes inside commit together, or none if the block raises.

        Inside :meth:`group` it is a savepoint, committed with the group.
        ``undivided``: the store calls inside take no savepoint of their own
        (two statements fewer each, for hot paths that never carry on after
        a failed call); if one fails, nothing of the transaction is stored,
        and StoreError is raised when the block ends even if it caught the
        failure. A call that raises NotFound having written nothing (the
        row it looked for is not there) spoils nothing: the block may catch
        it. Raises StoreError when nested or when the commit fails.
        """
        return _Transaction(self, undivided)

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Commit the transactions inside as one: a single fsync for a burst.

        Each transaction inside still succeeds or fails alone (a savepoint);
        all of them become durable together when the group ends. If the
        group's commit fails, none of them is stored and StoreError is raised.
        Groups do not nest and cannot be opened inside a transaction.
        """
        with self._locked():
            if self._in_group or self._in_transaction:
                raise StoreError("a store group cannot be nested or opened in a transaction")
            self.hot.sessions_due = {}
            try:
                with self._atomic("_in_group", None, "a store group"):
                    yield
            finally:
                self.hot.sessions_due = None

    @contextlib.contextmanager
    def _atomic(self, flag: str, savepoint: str | None, what: str) -> Iterator[None]:
        """Begin (a transaction, or ``savepoint`` inside one), run the block with
        the attribute ``flag`` set, then commit, or roll back if it raises."""
        db, mark = self._begin(savepoint, what)
        setattr(self, flag, True)
        try:
            yield
        except BaseException:
            setattr(self, flag, False)
            self._undo(db, savepoint, mark)
            raise
        setattr(self, flag, False)
        self._end(db, savepoint, mark, what)

    def _begin(self, savepoint: str | None, what: str) -> tuple[sqlite3.Connection, Mark | None]:
        """Under the lock: begin a transaction (or ``savepoint`` inside one);
        the connection, and the hot reads' mark to put back on its rollback."""
        db = self._connection()
        begin = "BEGIN IMMEDIATE" if savepoint is None else f"SAVEPOINT {savepoint}"
        try:
            db.execute(begin)
        except db_errors() as exc:
            raise StoreError(f"starting {what} failed: {exc}") from exc
        if savepoint is None:
            self.hot.serial += 1
            return db, None
        return db, self.hot.mark()

    def _end(
        self, db: sqlite3.Connection, savepoint: str | None, mark: Mark | None, what: str
    ) -> None:
        """Under the lock: commit what :meth:`_begin` began (an outermost
        transaction in this thread's commit_later block: left due), or roll
        back and raise StoreError if the commit fails."""
        try:
            if savepoint is None:
                self._write_due(db)
                pending = self._deferring
                if (
                    pending is not None
                    and not pending.armed
                    and pending.owner == threading.get_ident()
                ):
                    # Left due: committed by the next holder of the lock.
                    pending.armed = pending.due = True
                    pending.what = what
                    self._due = pending
                    self.hot.settling = True
                    return
                db.execute("COMMIT")
            else:
                db.execute(f"RELEASE {savepoint}")
        except db_errors() as exc:
            self._undo(db, savepoint, mark)
            raise StoreError(f"committing {what} failed: {exc}") from exc

    def _write_due(self, db: sqlite3.Connection) -> None:
        """Before the outermost commit: the event log's lane counters given
        out, and the sessions a group saved."""
        due = self.hot.lanes_due
        if due:
            db.executemany(
                "UPDATE counters SET value = ? WHERE name = ?",
                [(value, name) for name, value in due.items()],
            )
            due.clear()
        sessions = self.hot.sessions_due
        if sessions:
            db.executemany(
                SAVE_SESSION, [(peer, state, at) for peer, (state, at) in sessions.items()]
            )
            sessions.clear()

    def _undo(
        self,
        db: sqlite3.Connection,
        savepoint: str | None,
        mark: Mark | None = None,
    ) -> None:
        """Roll back (to ``savepoint``); forget what was read, but the lanes as
        they were at the savepoint (``mark``): what was committed before it
        in the transaction stays due."""
        self.settings_read.clear()
        self.hot.clear()
        if savepoint is not None and mark is not None:
            self.hot.restore(mark)
        _rollback_quietly(db, savepoint)

    def reading(self, what: str) -> _Reading:
        """The connection, for queries; sqlite3 errors become StoreError("<what> failed")."""
        return _Reading(self, what)

    def writing(self, what: str, *, one_statement: bool = False) -> _Writing:
        """The connection, for one atomic write: all of it or, if the block raises, none.

        ``one_statement``: the block changes the database with one statement
        at most (reads besides it are free). SQLite undoes a failed statement
        by itself, so inside a transaction or group such a write needs no
        savepoint of its own: two statements fewer on the hot paths (saving a
        session, marking an id seen, queueing an envelope).
        """
        return _Writing(self, what, one_statement)


# The store's context managers are classes, not generators: a message opens
# about fifteen (33 generator context managers before, each of these wrapping
# others), and a block of one costs about a third of the instructions it did
# (docs/benchmarks.md, "The store's Python, seventh pass").


def _enter(database: Database) -> sqlite3.Connection:
    """Take the store's lock, finish any commit left due, and give the
    connection (the lock released again if that raises: closed, or the
    due commit failed)."""
    database._lock.acquire()
    try:
        if database._due is not None:
            database._settle_due()
        db = database._db
        return database._connection() if db is None else db  # raises: closed
    except BaseException:
        database._lock.release()
        raise


class _Reading:
    """:meth:`Database.reading`: the lock (with any commit due done first) and
    the connection; database errors in the block become StoreError."""

    __slots__ = ("_database", "_what")

    def __init__(self, database: Database, what: str) -> None:
        self._database = database
        self._what = what

    def __enter__(self) -> sqlite3.Connection:
        return _enter(self._database)

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> Literal[False]:
        try:
            if exc is not None:
                _raise_store_error(self._what, exc)
            return False
        finally:
            self._database._lock.release()


class _Writing:
    """:meth:`Database.writing`: one atomic write, under the lock."""

    __slots__ = (
        "_changes",
        "_connection",
        "_database",
        "_mark",
        "_one",
        "_plain",
        "_savepoint",
        "_undivided",
        "_what",
    )

    def __init__(self, database: Database, what: str, one_statement: bool) -> None:
        self._database = database
        self._what = what
        self._one = one_statement

    def __enter__(self) -> sqlite3.Connection:
        database = self._database
        db = _enter(database)
        try:
            self._connection = db
            inside = database._in_transaction
            undivided = database._undivided and inside
            if undivided or (self._one and (inside or database._in_group)):
                # No savepoint: SQLite undoes a failed statement by itself.
                self._plain = True
                self._undivided = undivided
                self._changes = db.total_changes
                return db
            self._plain = False
            savepoint = _SAVEPOINT if inside or database._in_group else None
            self._savepoint = savepoint
            if savepoint is None:
                database.hot.serial += 1
                self._mark = None
            else:
                self._mark = database.hot.mark()
            try:
                db.execute("BEGIN IMMEDIATE" if savepoint is None else f"SAVEPOINT {savepoint}")
            except BaseException as exc:
                _raise_store_error(self._what, exc)
                raise
            return db
        except BaseException:
            database._lock.release()
            raise

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> Literal[False]:
        database = self._database
        try:
            db = self._connection
            if self._plain:
                if exc is not None:
                    # SQLite undid a failed statement; a failed call of several
                    # spoils the undivided transaction instead, unless it found
                    # nothing to change and wrote nothing (NotFound: a receipt's
                    # message not stored, an envelope acked meanwhile).
                    untouched = isinstance(exc, NotFound) and db.total_changes == self._changes
                    database._spoiled = database._spoiled or (
                        self._undivided and not self._one and not untouched
                    )
                    _raise_store_error(self._what, exc)
                return False
            savepoint = self._savepoint
            try:
                if exc is not None:
                    database._undo(db, savepoint, self._mark)
                else:
                    try:
                        if savepoint is None:
                            database._write_due(db)
                            db.execute("COMMIT")
                        else:
                            db.execute(f"RELEASE {savepoint}")
                    except db_errors():
                        database._undo(db, savepoint, self._mark)
                        raise
                    return False
            except BaseException as failure:
                _raise_store_error(self._what, failure)
                raise
            _raise_store_error(self._what, exc)
            return False
        finally:
            database._lock.release()


class _Transaction:
    """:meth:`Database.transaction`: under the lock, a transaction (a
    savepoint inside a group) committed when the block ends."""

    __slots__ = ("_connection", "_database", "_mark", "_savepoint", "_undivided")

    _WHAT: Final = "a store transaction"

    def __init__(self, database: Database, undivided: bool) -> None:
        self._database = database
        self._undivided = undivided

    def __enter__(self) -> None:
        database = self._database
        _enter(database)
        try:
            if database._in_transaction:
                raise StoreError("store transactions do not nest")
            savepoint = _GROUPED if database._in_group else None
            database._undivided, database._spoiled = self._undivided, False
            try:
                self._connection, self._mark = database._begin(savepoint, self._WHAT)
            except BaseException:
                database._undivided = database._spoiled = False
                raise
            self._savepoint = savepoint
            database._in_transaction = True
        except BaseException:
            database._lock.release()
            raise

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> Literal[False]:
        database = self._database
        try:
            spoiled = None
            if exc is None and database._spoiled:
                spoiled = StoreError(
                    "a store call failed in an undivided transaction: nothing was stored"
                )
            database._in_transaction = False
            if exc is not None or spoiled is not None:
                database._undo(self._connection, self._savepoint, self._mark)
                if spoiled is not None:
                    raise spoiled
                return False
            database._end(self._connection, self._savepoint, self._mark, self._WHAT)
            return False
        finally:
            database._undivided = database._spoiled = False
            database._lock.release()


def _raise_store_error(what: str, exc: BaseException) -> None:
    """Raise the StoreError a database failure in ``what`` becomes (others pass)."""
    if isinstance(exc, db_errors()):
        raise StoreError(f"{what} failed: {exc}") from exc
    if isinstance(exc, OverflowError):
        raise StoreError(f"{what} failed: a number is beyond 64 bits") from exc
    if isinstance(exc, UnicodeEncodeError):
        raise StoreError(f"{what} failed: text is not valid Unicode ({exc.reason})") from exc
