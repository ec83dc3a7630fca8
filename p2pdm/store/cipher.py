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

import os
import sqlite3
from contextlib import closing, suppress
from pathlib import Path
from typing import Any, Final, cast

import sqlcipher3

from p2pdm.errors import StoreError

__all__ = [
    "DB_ERRORS",
    "INTEGRITY_ERRORS",
    "KEY_BYTES",
    "connect_encrypted",
    "encrypt_plain_store",
    "is_plain_store",
]

#: Raw AES-256 key.
KEY_BYTES: Final = 32
#: The first bytes of every plain SQLite file; an encrypted one starts with its salt.
PLAIN_HEADER: Final = b"SQLite format 3\x00"
#: What either library raises; callers map it to StoreError.
DB_ERRORS: Final = (sqlite3.Error, sqlcipher3.dbapi2.Error)
#: A constraint refused a write (a unique index: the row is there already).
INTEGRITY_ERRORS: Final = (sqlite3.IntegrityError, sqlcipher3.dbapi2.IntegrityError)
_EXPORT_SUFFIX: Final = ".encrypting"


def _key_pragma(key: bytes) -> str:
    if len(key) != KEY_BYTES:
        raise StoreError(f"a store key is {KEY_BYTES} bytes")
    return f"PRAGMA key = \"x'{key.hex()}'\""


def connect_encrypted(path: str, key: bytes, timeout: float) -> sqlite3.Connection:
    """An autocommit connection to the SQLCipher database at ``path`` under ``key``.

    Nothing is read yet: a wrong key shows on the first query.
    """
    db: Any = sqlcipher3.connect(
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
        with closing(sqlcipher3.connect(str(path), isolation_level=None)) as db:
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
    except (*DB_ERRORS, OSError) as exc:
        with suppress(FileNotFoundError):
            target.unlink()
        raise StoreError(f"cannot encrypt the message store {path}: {exc}") from exc
    for suffix in ("-wal", "-shm", "-journal"):
        with suppress(FileNotFoundError):
            Path(str(path) + suffix).unlink()
