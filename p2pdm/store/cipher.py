"""The encrypted store: SQLCipher, for homes with a passphrase.

How this works: SQLCipher (through the ``sqlcipher3`` package, a DB-API
twin of ``sqlite3``) encrypts every page of the database and of its
write-ahead log with AES-256 and authenticates it with HMAC-SHA512, as
Signal Desktop does. The 32-byte key is given raw (``PRAGMA key =
"x'…'"``), so SQLCipher's own PBKDF2 does not run again: the home derives
it with argon2id from the passphrase (see :mod:`p2pdm.daemon.home`). A plain store
found where an encrypted one belongs (a home from before) is exported into
a new encrypted file that then replaces it atomically; its ``-wal`` and
``-shm`` files go with it.
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import sys
from contextlib import closing, suppress
from pathlib import Path
from types import ModuleType
from typing import Any, Final, cast

from p2pdm.errors import StoreError

__all__ = [
    "KEY_BYTES",
    "connect_encrypted",
    "db_errors",
    "encrypt_plain_store",
    "integrity_errors",
    "is_plain_store",
]

#: Raw AES-256 key.
KEY_BYTES: Final = 32
#: The first bytes of every plain SQLite file; an encrypted one starts with its salt.
PLAIN_HEADER: Final = b"SQLite format 3\x00"
_EXPORT_SUFFIX: Final = ".encrypting"
#: sqlcipher3's DB-API module, once something imported it. SQLCipher (with
#: the OpenSSL linked into it, 4.7 MiB) loads on the first encrypted
#: connection, not with every node: a home without a passphrase never does.
_SQLCIPHER_DBAPI: Final = "sqlcipher3.dbapi2"


def adapt_directly(dbapi: ModuleType) -> None:
    """Bind ``bytes`` and ``None`` parameters with one look-up in the module's
    adapter registry.

    The ``sqlite3`` module binds ``int``, ``float`` and ``str`` directly but
    looks every ``bytes`` and ``None`` parameter up in its adapters, then
    asks the ``PrepareProtocol`` type for ``__adapt__``, an AttributeError
    raised and cleared each time: about 250 of them a message (2.6 % of its
    instructions, docs/benchmarks.md). An adapter registered for the exact
    type is found first and gives back the same object: the same value is
    bound (a bytes subclass goes the old way). The registry is the module's,
    for the whole process; these two change no value anyone binds.
    """
    dbapi.register_adapter(bytes, bytes)  # bytes(b) is b itself
    dbapi.register_adapter(type(None), _NULL.__getitem__)


#: What the adapter of None maps it to (itself: SQL NULL).
_NULL: Final = {None: None}

adapt_directly(sqlite3)

_plain_errors: Final[tuple[type[Exception], ...]] = (sqlite3.Error,)
_plain_integrity: Final[tuple[type[Exception], ...]] = (sqlite3.IntegrityError,)
#: Both libraries' classes, built once sqlcipher3 is loaded.
_both: tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]] | None = None


def _error_classes() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    global _both
    if _both is not None:
        return _both
    dbapi = sys.modules.get(_SQLCIPHER_DBAPI)
    if dbapi is None:  # not loaded: none of its errors can exist
        return _plain_errors, _plain_integrity
    _both = (sqlite3.Error, dbapi.Error), (sqlite3.IntegrityError, dbapi.IntegrityError)
    return _both


def db_errors(*also: type[Exception]) -> tuple[type[Exception], ...]:
    """What either library raises (callers map it to StoreError), and
    ``also``, for an ``except`` clause: ``except db_errors() as exc``. Its
    expression is evaluated when an exception reaches it, so sqlcipher3's
    classes are there whenever one of its errors can be."""
    return _error_classes()[0] + also


def integrity_errors() -> tuple[type[Exception], ...]:
    """A constraint refused a write (a unique index: the row is there
    already), in either library; used as :func:`db_errors`."""
    return _error_classes()[1]


def _sqlcipher() -> ModuleType:
    """sqlcipher3, imported on first use."""
    module = importlib.import_module("sqlcipher3")  # 4.7 MiB: see _SQLCIPHER_DBAPI
    adapt_directly(module)
    return module


def _key_pragma(key: bytes) -> str:
    if len(key) != KEY_BYTES:
        raise StoreError(f"a store key is {KEY_BYTES} bytes")
    return f"PRAGMA key = \"x'{key.hex()}'\""


def connect_encrypted(path: str, key: bytes, timeout: float) -> sqlite3.Connection:
    """An autocommit connection to the SQLCipher database at ``path`` under ``key``.

    Nothing is read yet: a wrong key shows on the first query.
    """
    db: Any = _sqlcipher().connect(
        path, isolation_level=None, check_same_thread=False, timeout=timeout
    )
    # SQLCipher logs a failed HMAC check to stderr; the caller reports it once.
    db.execute("PRAGMA cipher_log_level = NONE")
    db.execute(_key_pragma(key))
    return cast(sqlite3.Connection, db)


def is_plain_store(path: Path) -> bool:
    """True if ``path`` is a plain (unencrypted) SQLite file."""
    try:
        with open(path, "rb") as file:
            return file.read(len(PLAIN_HEADER)) == PLAIN_HEADER
    except FileNotFoundError:
        return False


def encrypt_plain_store(path: Path, key: bytes) -> None:
    """Replace the plain store at ``path`` by an encrypted copy; raises StoreError.

    The copy is made beside it, synced, then renamed over it; the plain
    ``-wal``/``-shm`` files are removed. A failure leaves the plain store as it was.
    """
    target = path.with_name(path.name + _EXPORT_SUFFIX)
    with suppress(FileNotFoundError):
        target.unlink()
    try:
        # Fold the plain WAL into the file, so the export sees every commit.
        with closing(sqlite3.connect(path, isolation_level=None)) as plain:
            plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with closing(_sqlcipher().connect(str(path), isolation_level=None)) as db:
            db.execute("PRAGMA cipher_log_level = NONE")
            (user_version,) = db.execute("PRAGMA user_version").fetchone()
            db.execute(
                f"ATTACH DATABASE ? AS encrypted KEY \"x'{key.hex()}'\"",
                (str(target),),
            )
            db.execute("SELECT sqlcipher_export('encrypted')")
            db.execute(f"PRAGMA encrypted.user_version = {int(user_version):d}")
            db.execute("DETACH DATABASE encrypted")
        os.chmod(target, 0o600)
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(target, path)
    except db_errors(OSError) as exc:
        with suppress(FileNotFoundError):
            target.unlink()
        raise StoreError(f"cannot encrypt the message store {path}: {exc}") from exc
    for suffix in ("-wal", "-shm", "-journal"):
        with suppress(FileNotFoundError):
            Path(str(path) + suffix).unlink()
